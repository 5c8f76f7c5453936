"""The production deployment, on loopback (docs/reliability.md "Deployment"): the command
lines of deploy/systemd/ (deploy/run_local.py reads them from the units) — migrations
once, 2 server processes, 2 push workers — on one PostgreSQL and one Redis of the test's
own, with the fake WeChat as a real server all of them share, and nginx with the shipped
deploy/nginx/qinqing.conf in front when it is installed.

Every rule that must hold across processes is driven through both servers at once: the
limits (5 members per binder, 2 binders per member per month), the bot's dedupe, the
institution nonce's single use and the single flight of the WeChat access token.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from deploy.run_local import Fleet, nginx_binary, nginx_files
from fakes.wechat import start_fake_wechat
from fakes.wechat.protocol import P_FACE_USERIDKEY, P_STABLE_TOKEN, P_SUBSCRIBE
from fakes.wechat.simulator import WeChatSimulator, text_xml
from server.redis_client import connect
from server.settings import Settings
from tests.conftest import PG_URL
from tests.factories import bearer, signed_headers, verified_user
from tests.family.helpers import (
    ALICE,
    BABY,
    BOB,
    CAROL,
    DAUGHTER,
    DAVE,
    FATHER,
    MOTHER,
    NEWBORN,
    SON,
    WIFE,
    prepare,
    submit,
)
from tests.reliability.servers import (
    low_ports,
    private_postgres,
    private_redis,
    private_redis_cluster,
)

ROOT = Path(__file__).resolve().parents[2]
INSTITUTION = ("H00001", "演示人民医院", "420100")
# the workers claim one notice at a time and look often: both take part at once
WORKER_OVERLAY = "[push]\nbatch_size = 1\nlanes = 1\nidle_poll_seconds = 0.2\n"


class RoundRobin:
    """A TestClient look-alike for tests/ helpers: each request goes to the next server
    process in turn, so every flow hops between processes (tokens, state, limits are
    shared through PostgreSQL and Redis, nothing lives in one process)."""

    def __init__(self, session: aiohttp.ClientSession, bases: list[str]) -> None:
        self.session = session
        self.bases = bases
        self._next = itertools.cycle(bases)

    async def request(self, method: str, path: str, *, base: str | None = None, **kw: Any) -> Any:
        resp = await self.session.request(method, (base or next(self._next)) + path, **kw)
        await resp.read()  # the body is kept: .json() / .text() later, connection released
        return resp

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.request("POST", path, **kw)


@contextmanager
def backends(redis_kind: str) -> Iterator[tuple[str, str]]:
    """PostgreSQL, and one Redis or a 3-master Redis Cluster (the ``redis+cluster://``
    switch, docs/reliability.md "Redis Cluster")."""
    redis_cm = private_redis() if redis_kind == "redis" else private_redis_cluster()
    with redis_cm as r, private_postgres() as pg:
        yield r.url, pg.url


@asynccontextmanager
async def deployment(
    tmp_path: Path, wechat_api: str, redis_kind: str
) -> AsyncIterator[tuple[Fleet, dict[str, Any]]]:
    """Migrations, the registry and one institution through the CLI, then 2 servers and
    2 workers from the units; yields the fleet and what the test needs to know."""
    with backends(redis_kind) as (redis_url, pg_url):
        env = {
            "APP_ENV": "local",  # demo secrets (production refuses them)
            "DATABASE_URL": pg_url,
            "REDIS_URL": redis_url,
            "WECHAT_API_BASE": wechat_api,
            "DATA_DIR": str(tmp_path / "data"),
        }
        logs = tmp_path / "logs"
        logs.mkdir()
        fleet = Fleet(env, logs)
        overlay = tmp_path / "worker.toml"
        overlay.write_text(WORKER_OVERLAY, encoding="utf-8")
        try:
            await asyncio.to_thread(fleet.migrate)
            demo_registry = str(ROOT / "config" / "demo_registry.csv")
            await asyncio.to_thread(fleet.cli, "registry", "import", demo_registry, "--no-progress")
            out = await asyncio.to_thread(fleet.cli, "institution", "add", *INSTITUTION)
            secret = out.strip().splitlines()[-1].strip()
            web = low_ports(2)
            metrics = low_ports(2)
            for port in web:
                fleet.web(port)
            for port in metrics:
                fleet.worker(port, {"CONFIG_FILE": str(overlay)})
            await asyncio.to_thread(fleet.wait_ready, web + metrics)
            yield fleet, {
                "web": web, "redis": redis_url, "pg": pg_url, "secret": secret,
                "bases": [f"http://127.0.0.1:{p}" for p in web],
            }
        finally:
            fleet.stop_all()


async def until(pred: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.skipif(
    bool(PG_URL), reason="starts its own PostgreSQL and Redis: once is enough (scripts/test pass 1)"
)
@pytest.mark.parametrize("redis_kind", ["redis", "cluster"])
async def test_two_servers_two_workers_hold_every_shared_rule(tmp_path: Path, redis_kind: str) -> None:
    runner, wechat_api, wx = await start_fake_wechat()
    try:
        async with (
            deployment(tmp_path, wechat_api, redis_kind) as (fleet, d),
            aiohttp.ClientSession() as s,
        ):
            rr = RoundRobin(s, d["bases"])
            b1, b2 = d["bases"]
            await _binding_limits(rr, b1, b2, d)
            await _bot_dedupe(s, b1, b2, d)
            await _nonce_and_token_single_flight(rr, s, b1, b2, d, wx)
            if nginx_binary() is not None and redis_kind == "redis":  # nginx: once is enough
                await _through_nginx(s, tmp_path, d)
    finally:
        await runner.cleanup()


# ---- the limits -------------------------------------------------------------------------


async def _binding_limits(rr: RoundRobin, b1: str, b2: str, d: dict[str, Any]) -> None:
    """2 binders per member per month and 5 members per binder, concurrent submits spread
    over both processes: only PostgreSQL's row locks can keep these."""
    users = {}
    for name, person in (("alice", ALICE), ("bob", BOB), ("carol", CAROL), ("dave", DAVE)):
        users[name] = bearer(await verified_user(rr, name, person))  # type: ignore[arg-type]
    three = [users[n] for n in ("alice", "bob", "carol")]
    apps = [await prepare(rr, h, MOTHER, "parent") for h in three]  # type: ignore[arg-type]
    got = await asyncio.gather(
        *(_submit_at(rr, base, h, a) for base, h, a in zip((b1, b2, b1), three, apps, strict=True))
    )
    assert sorted(st for st, _ in got) == [200, 200, 409], got
    assert [b["error"]["code"] for st, b in got if st == 409] == ["MONTHLY_BINDER_LIMIT"]
    people = (ALICE, BOB, CAROL)
    d["mother_binders"] = [(h, p) for h, p, (st, _) in zip(three, people, got, strict=True) if st == 200]

    dave = users["dave"]
    adults = [(FATHER, "parent"), (WIFE, "spouse")]
    minors = [(SON, "child"), (DAUGHTER, "child"), (BABY, "child"), (NEWBORN, "child")]
    dave_apps = [await prepare(rr, dave, p, r) for p, r in adults]  # type: ignore[arg-type]
    dave_apps += [
        await prepare(rr, dave, p, r, kinds=("birth_certificate",))  # type: ignore[arg-type]
        for p, r in minors
    ]
    got = await asyncio.gather(
        *(_submit_at(rr, (b1, b2)[i % 2], dave, a) for i, a in enumerate(dave_apps))
    )
    assert sorted(st for st, _ in got) == [200] * 5 + [409], got
    assert [b["error"]["code"] for st, b in got if st == 409] == ["MEMBER_LIMIT_REACHED"]
    # dave is no registered guardian: his minors wait for a reviewer, holding their slots
    assert {b["state"] for st, b in got if st == 200} <= {"active", "pending_review"}


async def _submit_at(rr: RoundRobin, base: str, h: dict[str, str], app_id: str) -> tuple[int, Any]:
    fixed = RoundRobin(rr.session, [base])
    resp = await submit(fixed, h, app_id)  # type: ignore[arg-type]
    return resp.status, await resp.json()


# ---- the bot ------------------------------------------------------------------------------


async def _bot_dedupe(s: aiohttp.ClientSession, b1: str, b2: str, d: dict[str, Any]) -> None:
    """WeChat retries a push it got no answer to, possibly to another process: the same
    MsgId through both processes at once is answered once — one claim, one reply, the
    retries get that same reply."""
    settings = Settings.load(env={})
    sim = WeChatSimulator(
        token=settings.wechat.oa_token, appid=settings.wechat.oa_appid,
        encoding_aes_key=settings.wechat.oa_encoding_aes_key,
    )  # fmt: skip
    openid = "oa-zed"
    # safe mode (encrypted), as production runs: plain pushes are refused with a key set
    push = sim.push(text_xml("怎么绑定家人", openid=openid, msg_id=987654321), "safe")

    async def deliver(base: str) -> tuple[int, str]:
        async with s.post(f"{base}/wechat/official", params=push.query, data=push.body) as r:
            return r.status, await r.text()

    got = await asyncio.gather(*(deliver(b) for b in (b1, b2, b1, b2)))
    assert all(st == 200 for st, _ in got), got
    replies = {sim.open_reply(body, push) for _, body in got}
    assert len(replies) == 1, replies  # one answer, the same bytes for every delivery
    (reply,) = replies
    assert "<Content>" in reply and "绑定" in reply
    r = connect(d["redis"])
    try:
        # the follower's message counter: the claim ran once for four deliveries
        counters = [k async for k in r.scan_iter(match="bot:rl:*")]
        assert len(counters) == 1 and int(await r.get(counters[0]) or 0) == 1
    finally:
        await r.aclose()


# ---- the institution nonce and the access token ----------------------------------------------


async def _nonce_and_token_single_flight(
    rr: RoundRobin, s: aiohttp.ClientSession, b1: str, b2: str, d: dict[str, Any], wx: Any
) -> None:
    """A settlement signed once, sent to both processes at once: one applied, the other
    401 NONCE_REPLAYED. Its notices go out through the two workers while both servers
    open face sessions — all four need the mini-program's access token at the same
    moment, right after WeChat expired it: the fake WeChat sees one token fetch."""
    binders = d["mother_binders"]
    for h, _ in binders:  # their notices go out as mini-program subscribe messages
        resp = await rr.post(
            "/api/v1/notices/subscriptions",
            json={"results": {"DEMO_MP_FAMILY_SETTLEMENT": "accept"}}, headers=h,
        )  # fmt: skip
        assert resp.status == 200, await resp.text()

    wx.expire_all_tokens()  # every process' cached token now gets 42001
    wx.configure(stall_seconds=0.5)  # WeChat is slow: the refresh is in flight a while
    fetches = wx.calls[P_STABLE_TOKEN]
    rejected = (wx.errors[P_FACE_USERIDKEY], wx.errors[P_SUBSCRIBE])

    body = json.dumps({
        "setl_id": "S-FLEET-1", "mdtrt_id": "MD-FLEET-1", "med_type": "11",
        "certno": MOTHER[2], "setl_time": "2026-11-20T10:30:00+08:00",
        "medfee_sumamt": "150.00", "hifp_pay": "100.00", "fund_pay_sumamt": "100.00",
        "psn_part_amt": "50.00",
    }, ensure_ascii=False).encode()  # fmt: skip
    headers = signed_headers(INSTITUTION[0], d["secret"], body, nonce="fleet-nonce-0001")

    async def settle(base: str) -> tuple[int, Any]:
        async with s.post(f"{base}/api/v1/institution/settlements", data=body, headers=headers) as r:
            return r.status, await r.json()

    async def face(base: str, h: dict[str, str], person: tuple[str, str, str]) -> int:
        name, id_type, id_number = person
        payload = {"purpose": "realname", "name": name, "id_type": id_type, "id_number": id_number}
        async with s.post(f"{base}/api/v1/face/sessions", json=payload, headers=h) as r:
            return r.status

    settled, *faces = await asyncio.gather(
        asyncio.gather(settle(b1), settle(b2)),
        face(b1, *binders[0]),
        face(b2, *binders[1]),
    )
    assert sorted(st for st, _ in settled) == [201, 401], settled
    assert [b["error"]["code"] for st, b in settled if st == 401] == ["NONCE_REPLAYED"]
    assert faces == [201, 201]

    pg = await asyncpg.connect(d["pg"])
    try:
        async def both_sent() -> bool:
            rows = await pg.fetch("SELECT state, leased_by FROM notices WHERE kind = 'family_settlement'")
            return len(rows) == 2 and all(r["state"] in ("sent", "delivered") for r in rows)

        await until(both_sent, "the two settlement notices sent")
        leased = {r["leased_by"] for r in await pg.fetch("SELECT leased_by FROM notices WHERE kind = 'family_settlement'")}
    finally:
        await pg.close()
    wx.configure(stall_seconds=0)
    assert len(leased) == 2, f"both workers sent one: {leased}"
    assert wx.sent_counts["subscribe"] >= 2
    # each of the four processes was turned away with the expired token (42001) once —
    # each needed a new one — and WeChat was asked for a token once in all
    assert (wx.errors[P_FACE_USERIDKEY] - rejected[0], wx.errors[P_SUBSCRIBE] - rejected[1]) == (2, 2)
    assert wx.calls[P_STABLE_TOKEN] - fetches == 1, "one token fetch for 2 servers + 2 workers"


# ---- nginx in front ----------------------------------------------------------------------


async def _through_nginx(s: aiohttp.ClientSession, tmp_path: Path, d: dict[str, Any]) -> None:
    """deploy/nginx/qinqing.conf with the ports substituted: ``nginx -t`` passes, TLS in
    front of both processes, the redirect, the body limit, the client's address."""
    binary = nginx_binary()
    assert binary is not None
    work = tmp_path / "nginx"
    listen, redirect = low_ports(2)
    conf = nginx_files(work, listen=listen, redirect_listen=redirect, upstreams=d["web"])
    check = await asyncio.to_thread(
        subprocess.run, [binary, "-t", "-c", str(conf), "-e", str(work / "error.log")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    proc = await asyncio.create_subprocess_exec(
        binary, "-c", str(conf), "-e", str(work / "error.log"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"https://127.0.0.1:{listen}"
    try:
        async def up() -> bool:
            try:
                async with s.get(f"{base}/readyz", ssl=False) as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await until(up, "nginx in front of the servers")
        # a whole login through the proxy
        async with s.post(f"{base}/api/v1/auth/login", json={"code": "demo-nginx-1"}, ssl=False) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["access_token"]
        async with s.get(f"http://127.0.0.1:{redirect}/readyz", allow_redirects=False) as r:
            assert r.status == 301 and r.headers["Location"].startswith("https://")
        # over client_max_body_size: nginx refuses on the header, before any body is read
        assert await _status_line(listen, "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                                  f"Content-Length: {10 * 1024 * 1024}\r\n\r\n") == 413
        log = (work / "access.log").read_text()
        assert "/api/v1/auth/login" in log and "/readyz" in log
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def _status_line(port: int, head: str) -> int:
    """Send a raw request head over TLS (no body); the status code of the answer."""
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    try:
        writer.write(head.encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1])
    finally:
        writer.close()
