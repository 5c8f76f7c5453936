"""Command line: ``python -m server [serve|worker|migrate|makemigrations|registry|institution|
staff|reconcile|ledger|menu]``.

    python -m server                      # serve (default) on HOST:PORT, embedded defaults
    python -m server --host 0.0.0.0 --port 8080
    python -m server migrate              # apply database migrations
    python -m server makemigrations       # write a migration for model changes (developers)
    python -m server registry import FILE.csv [--strict] [--dry-run] [--rejects R.csv]
    python -m server institution add CODE NAME REGION_CODE
    python -m server institution list | disable CODE | enable CODE | rotate CODE [--overlap 24h]
    python -m server staff add NAME --role reviewer|counter|admin --region CODE[,CODE]
    python -m server staff reset NAME [--role R] [--region CODE]   # prints a new password
    python -m server staff disable NAME
    python -m server reconcile --date YYYY-MM-DD [--institution CODE] [--against FILE.csv] [--out FILE.csv]
    python -m server ledger credit FILE.csv   # monthly / yearly credits, idempotent by batch + row
    python -m server worker               # notice delivery worker (see README)
    python -m server menu publish         # publish the official account's custom menu
    python -m server storage reseal       # uploads: seal old plain files, re-wrap under the current PII key
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from server.logs import setup_logging
from server.settings import Settings

if TYPE_CHECKING:
    from server.domain.errors import DomainError


def new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # uvloop is optional (not on Windows)
        return asyncio.new_event_loop()


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    loop = new_loop()
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def self_url(host: str, port: int) -> str:
    """The base URL a client on this machine uses to reach a server listening on
    ``host:port`` (a wildcard address is reached on loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from server import keys
    from server.app import create_app

    host = args.host or settings.server.host
    port = args.port or settings.server.port
    app = create_app(settings)
    # where this process can reach itself (the embedded fake WeChat's receipts go there)
    app[keys.self_url_key] = self_url(host, port)

    async def announce(_: web.Application) -> None:
        base = f"http://{host}:{port}"
        mode = "embedded" if not settings.redis.url else "external Redis"
        print(
            f"\n亲情医保 listening on {base}  (env={settings.server.env}, {mode}, "
            f"db={settings.database_url.split('@')[-1]})\n"
            f"Try it:\n"
            f"  curl -s -X POST {base}/api/v1/auth/login -H 'Content-Type: application/json' "
            f"-d '{{\"code\": \"demo-alice-1\"}}'\n"
            f"  curl -s {base}/api/openapi.json | head -c 300\n",
            flush=True,
        )

    async def freeze_gc(_: web.Application) -> None:
        # Everything built at start-up (models, the bot's knowledge index, settings) lives
        # as long as the process: keep it out of the cyclic GC, whose full collections
        # otherwise stall the loop for 100-180 ms under load (measured, bench/scenario_bot.py).
        gc.collect()
        gc.freeze()

    app.on_startup.append(announce)
    app.on_startup.append(freeze_gc)
    from server.serving import ConnectionLimits, serve

    limits = ConnectionLimits(
        max_connections=settings.server.max_connections,
        header_timeout_s=settings.server.header_timeout_s,
        body_timeout_s=settings.server.body_timeout_s,
    )
    serve(app, host=host, port=port, loop=new_loop(), limits=limits)
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from server.db import migrate

    run(lambda: migrate(settings))
    print("migrations applied")
    return 0


def cmd_makemigrations(args: argparse.Namespace, settings: Settings) -> int:
    from server.db import make_migrations

    run(lambda: make_migrations(settings, name=args.name))
    return 0


def _with_orm(settings: Settings, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    from server.db import open_orm
    from server.domain.pii import PiiCipher

    async def go() -> Any:
        ctx = await open_orm(settings)
        try:
            pii = PiiCipher(settings.pii.keys, settings.pii.current_kid, settings.pii.hash_key)
            return await fn(pii)
        finally:
            await ctx.close_connections()

    return run(go)


def cmd_registry(args: argparse.Namespace, settings: Settings) -> int:
    from server.bulk.registry_import import import_csv
    from server.bulk.report import Progress
    from server.domain.errors import DomainError

    rejects = None if args.rejects == "-" else args.rejects or f"{args.file}.rejects.csv"
    progress = None if args.no_progress else Progress("registry import")
    try:
        summary = _with_orm(
            settings,
            lambda pii: import_csv(
                args.file, pii=pii, strict=args.strict, dry_run=args.dry_run,
                reject_path=rejects, batch_size=args.batch_size, progress=progress,
            ),
        )
    except DomainError as exc:
        print(f"registry import failed: {exc.message}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


def _operator() -> str:
    """Who runs a bureau command, for the lifecycle log (the machine login)."""
    import getpass

    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli"


def _refused(exc: DomainError) -> int:
    """A bureau command refused: the code and the Chinese reason on stderr, exit 1."""
    print(f"{exc.code}: {exc.message}", file=sys.stderr)
    return 1


def cmd_institution(args: argparse.Namespace, settings: Settings) -> int:
    from server.domain import institutions as inst
    from server.domain.errors import DomainError

    actor = _operator()
    try:
        if args.action == "add":
            secret = _with_orm(
                settings,
                lambda pii: inst.add_institution(
                    code=args.code, name=args.name, region_code=args.region_code, pii=pii, actor=actor
                ),
            )
            print(f"institution {args.code} added; its secret (shown once):\n{secret}")
        elif args.action == "list":
            rows = _with_orm(settings, lambda pii: inst.list_institutions())
            print("code\tname\tregion\tstate\told secret verifies until\tlast change")
            for r in rows:
                state = "enabled" if r["active"] else "DISABLED"
                print(
                    f"{r['code']}\t{r['name']}\t{r['region_code']}\t{state}\t"
                    f"{r['old_secret_until'] or '-'}\t{r['last_event'] or '-'}"
                )
        elif args.action in ("disable", "enable"):
            enable = args.action == "enable"
            changed = _with_orm(settings, lambda pii: inst.set_active(args.code, enable, actor=actor))
            ttl = f"{settings.institution_api.cache_seconds:g}"
            what = f"{args.action}d" if changed else f"already {args.action}d"
            print(f"institution {args.code} {what}; every server applies it within {ttl} s")
        elif args.action == "rotate":
            overlap = inst.parse_duration(args.overlap)
            secret, until = _with_orm(
                settings,
                lambda pii: inst.rotate_secret(args.code, pii=pii, overlap=overlap, actor=actor),
            )
            old = f"until {until.isoformat(timespec='seconds')}" if until else "no longer"
            print(
                f"institution {args.code}: new secret (shown once):\n{secret}\n"
                f"the old secret verifies {old}"
            )
    except DomainError as exc:
        return _refused(exc)
    return 0


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from server.domain.errors import DomainError
    from server.domain.settlements import reconcile_file
    from server.domain.settlements.reconciliation import parse_day
    from server.domain.settlements.request import fen_to_yuan

    try:
        day = parse_day(args.date)
        out = args.out or f"reconciliation-{day.isoformat()}" + (
            f"-{args.institution}.csv" if args.institution else ".csv"
        )
        report = _with_orm(
            settings,
            lambda pii: reconcile_file.write(
                day=day, out=out, institution=args.institution, against=args.against
            ),
        )
    except DomainError as exc:
        return _refused(exc)
    echo = sys.stderr if out == "-" else sys.stdout
    print(f"{day.isoformat()} {args.institution or 'all institutions'}: {report.rows} rows → {out}", file=echo)
    for kind in ("2207", "2208"):
        sums = report.sums.get(kind, {})
        amounts = " ".join(f"{k}={fen_to_yuan(v)}" for k, v in sums.items())
        print(f"  {kind}: {report.counts[kind]} {amounts}".rstrip(), file=echo)
    if args.against:
        checks = ", ".join(f"{k} {v}" for k, v in sorted(report.checks.items())) or "nothing to compare"
        print(f"  against {args.against}: {checks}", file=echo)
        if report.differences:
            print(f"  {report.differences} rows differ: see the check / difference columns", file=echo)
            return 1
    return 0


def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from server.domain.credits import KINDS, import_credits
    from server.domain.errors import DomainError
    from server.domain.settlements.request import fen_to_yuan

    try:
        s = _with_orm(settings, lambda pii: import_credits(args.file, pii=pii))
    except DomainError as exc:
        return _refused(exc)
    print(
        f"credits {args.file}: {s.rows} rows in {len(s.batches)} batch(es); "
        f"{s.applied} applied ({fen_to_yuan(s.applied_fen)} yuan), {s.skipped} already applied"
    )
    for kind, fen in sorted(s.by_kind.items()):
        print(f"  {kind} ({KINDS[kind]}): {fen_to_yuan(fen)} yuan")
    return 0


def cmd_staff(args: argparse.Namespace, settings: Settings) -> int:
    """Console staff accounts (API.md "Staff (v1.1)"): the generated password is printed
    once, on a line that says ``password``."""
    from server.domain import staff as staff_domain

    c = settings.console
    hasher = staff_domain.hasher_for(c.argon2_time_cost, c.argon2_memory_kib, c.argon2_parallelism)

    async def go(_: Any) -> tuple[Any, str | None]:
        if args.action == "add":
            if not args.role or not args.region:
                raise ValueError("staff add needs --role and --region")
            return await staff_domain.add_staff(
                name=args.name, role=args.role, regions=args.region, hasher=hasher
            )
        if args.action == "reset":
            return await staff_domain.reset_password(
                args.name, hasher=hasher, role=args.role, regions=args.region
            )
        return await staff_domain.disable_staff(args.name), None

    try:
        staff, password = _with_orm(settings, go)
    except ValueError as exc:
        print(f"staff {args.action}: {exc}", file=sys.stderr)
        return 2
    state = "active" if staff.active else "disabled"
    print(f"staff {staff.name}: role {staff.role}, regions {staff.regions}, {state}")
    if password is not None:
        print(f"password (shown once): {password}")
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from server.push.worker import main as worker_main

    return int(run(lambda: worker_main(settings, concurrency=args.concurrency)) or 0)


def cmd_menu(args: argparse.Namespace, settings: Settings) -> int:
    from bot.menu import publish_from_settings
    from server.gateways.wechat import WeChatError

    async def publish() -> tuple[dict[str, Any], bool]:
        if settings.wechat.api_base:
            return await publish_from_settings(settings, api_base=settings.wechat.api_base), False
        # no WeChat configured: the embedded fake checks the menu as WeChat would
        from server.demo import start_embedded_wechat

        fake = await start_embedded_wechat(settings.wechat)
        try:
            return await publish_from_settings(settings, api_base=fake.api_base), True
        finally:
            await fake.close()

    try:
        menu, to_fake = run(publish)
    except WeChatError as exc:
        print(f"menu not published: {exc.message_zh} (errcode {exc.errcode})", file=sys.stderr)
        return 1
    names = ", ".join(b["name"] for b in menu["button"])
    if to_fake:
        print(
            "WECHAT_API_BASE is not set: the menu was published to the embedded fake WeChat "
            f"only (it accepted it); nothing reached WeChat: {names}"
        )
    else:
        print(f"menu published to {settings.wechat.api_base}: {names}")
    return 0


def cmd_storage(args: argparse.Namespace, settings: Settings) -> int:
    """``storage reseal``: every stored upload encrypted under the current PII key — files
    from before encryption stripped and sealed, data keys of older keys re-wrapped (the
    file rotation of docs/privacy.md; keep the old key configured until this is done)."""
    from collections import Counter
    from pathlib import Path

    from server.domain.pii import PiiCipher
    from server.gateways.storage import LocalStorage

    root = Path(settings.family.upload_dir or settings.data_path / "uploads")
    pii = PiiCipher(settings.pii.keys, settings.pii.current_kid, settings.pii.hash_key)
    storage = LocalStorage(root, keys=pii)

    async def go() -> Counter[str]:
        counts: Counter[str] = Counter()
        for key in list(storage.keys_under()):
            counts[await storage.reseal(key)] += 1
        return counts

    counts = run(go)
    print(
        f"storage reseal under key {settings.pii.current_kid}: {counts['sealed']} sealed, "
        f"{counts['rewrapped']} re-wrapped, {counts['current']} already current"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m server", description="亲情医保 backend")
    p.add_argument("--host", help="listen address (default: HOST or config)")
    p.add_argument("--port", type=int, help="listen port (default: PORT or config)")
    p.add_argument("--config", action="append", default=[], help="extra TOML settings file")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the HTTP server (default)")
    w = sub.add_parser("worker", help="run the notice delivery worker")
    w.add_argument("--concurrency", type=int, default=32)
    sub.add_parser("migrate", help="apply database migrations")
    mk = sub.add_parser("makemigrations", help="write a migration for model changes")
    mk.add_argument("--name", default=None)
    reg = sub.add_parser("registry", help="insurance registry")
    reg_sub = reg.add_subparsers(dest="action", required=True)
    imp = reg_sub.add_parser("import", help="import insured persons from CSV (docs/bulk.md)")
    imp.add_argument("file")
    imp.add_argument("--strict", action="store_true",
                     help="all or nothing: any rejected row rolls the whole file back")
    imp.add_argument("--dry-run", action="store_true", help="validate and count only; write nothing")
    imp.add_argument("--rejects", default=None,
                     help="reject report CSV (default FILE.rejects.csv; '-': none)")
    imp.add_argument("--batch-size", type=int, default=None,
                     help="rows per batch / transaction (default 20000 PostgreSQL, 5000 SQLite)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    inst = sub.add_parser("institution", help="定点医药机构")
    inst_sub = inst.add_subparsers(dest="action", required=True)
    add = inst_sub.add_parser("add", help="add (or re-key at once) an institution; prints its secret")
    add.add_argument("code")
    add.add_argument("name")
    add.add_argument("region_code")
    staff = sub.add_parser("staff", help="console staff accounts")
    staff.add_argument("action", choices=("add", "disable", "reset"))
    staff.add_argument("name")
    staff.add_argument("--role", choices=("reviewer", "counter", "admin"))
    staff.add_argument("--region", help="6-digit region code(s), comma-separated (000000: all)")
    inst_sub.add_parser("list", help="every institution: state, rotation window, last change")
    for action in ("disable", "enable"):
        onoff = inst_sub.add_parser(action, help=f"{action} an institution's signed calls")
        onoff.add_argument("code")
    rot = inst_sub.add_parser("rotate", help="a new secret; the old one verifies during --overlap")
    rot.add_argument("code")
    rot.add_argument("--overlap", default="24h", help="how long both secrets verify: 24h, 90m, 2d, 0")
    rec = sub.add_parser("reconcile", help="3201-style 对账 of one day as CSV, compared with a file")
    rec.add_argument("--date", required=True, help="the Asia/Shanghai day, YYYY-MM-DD")
    rec.add_argument("--institution", help="one institution's code (default: all)")
    rec.add_argument("--against", help="the institution's own CSV to compare with")
    rec.add_argument("--out", help="where to write (default reconciliation-DATE[-CODE].csv; - for stdout)")
    led = sub.add_parser("ledger", help="personal-account ledger")
    led_sub = led.add_subparsers(dest="action", required=True)
    credit = led_sub.add_parser("credit", help="import a batch of credits (idempotent by batch + row)")
    credit.add_argument("file")
    menu = sub.add_parser("menu", help="official-account custom menu")
    menu_sub = menu.add_subparsers(dest="action", required=True)
    menu_sub.add_parser("publish", help="publish the menu through the WeChat gateway")
    store = sub.add_parser("storage", help="uploaded files")
    store_sub = store.add_subparsers(dest="action", required=True)
    store_sub.add_parser("reseal", help="seal plain files, re-wrap data keys under the current PII key")
    return p


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "makemigrations": cmd_makemigrations,
    "registry": cmd_registry,
    "institution": cmd_institution,
    "reconcile": cmd_reconcile,
    "ledger": cmd_ledger,
    "menu": cmd_menu,
    "staff": cmd_staff,
    "storage": cmd_storage,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        settings = Settings.load(*args.config)
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    return COMMANDS[args.command or "serve"](args, settings)


if __name__ == "__main__":
    sys.exit(main())
