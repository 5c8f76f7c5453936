"""The reusable pieces: progress reporting, the CLI's flags, the streamed export, the
bench's ID generator, and the ledger's lock under a concurrent settlement (PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import sys
import weakref
from pathlib import Path

import pytest
from aiohttp import web

from server import keys
from server.bulk.export import export_csv
from server.bulk.registry_import import import_csv
from server.bulk.report import Progress
from server.bulk.session import open_session
from server.domain import ledger
from server.domain.identity import make_resident_id, parse_id
from server.domain.models import Account, InsuredPerson, LedgerEntry
from tests.bulk.helpers import row, write_csv
from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[2]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal() -> None:
    out = _Tty()
    p = Progress("registry import", stream=out)
    clock = [p.started]
    p._now = lambda: clock[0]  # type: ignore[method-assign]
    clock[0] += 2.0
    p.update(50_000, 0.25)
    assert out.getvalue().startswith("\rregistry import [#######.......................]  25.0%")
    assert "50,000 rows  25,000 rows/s  ETA 0:00:06" in out.getvalue()
    clock[0] += 0.1  # redrawn at most 5 times a second
    p.update(51_000, 0.26)
    assert out.getvalue().count("\r") == 1
    p.done(200_000)
    assert out.getvalue().endswith("\n") and "100.0%" in out.getvalue()


def test_progress_is_log_lines_elsewhere(caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    p = Progress("registry import", stream=out, interval=10.0)
    clock = [p.started]
    p._now = lambda: clock[0]  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="server.bulk"):
        clock[0] += 5.0
        p.update(10_000, 0.1)  # within the interval: nothing
        clock[0] += 5.0
        p.update(20_000, 0.2)
        p.done(100_000)
    assert out.getvalue() == ""  # no bar in a log
    assert [r.getMessage() for r in caplog.records] == [
        "registry import: 20,000 rows (20.0% of the file), 2,000 rows/s, elapsed 0:00:10, ETA 0:00:40"
    ]


def test_the_cli_validates_and_reports(tmp_path: Path) -> None:
    """``python -m server registry import``: --dry-run writes nothing, the reject report
    lands beside the file by default, and a clean file loads."""
    import subprocess

    path = write_csv(tmp_path / "reg.csv", [row(0), row(1), row(2).replace(",420100,", ",990100,")])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "TEST_"))}
    env.update({"DATA_DIR": str(tmp_path / "data"), "APP_ENV": "local"})
    argv = [sys.executable, "-m", "server", "registry", "import", str(path), "--no-progress"]

    dry = subprocess.run([*argv, "--dry-run"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "(dry run: nothing written)" in dry.stdout and "would be created 2" in dry.stdout
    assert "rejects by reason: unknown_region 1" in dry.stdout
    rejects = list(csv.DictReader(io.StringIO(Path(f"{path}.rejects.csv").read_text(encoding="utf-8"))))
    assert [(r["line"], r["reason"]) for r in rejects] == [("4", "unknown_region")]

    strict = subprocess.run([*argv, "--strict"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert strict.returncode == 1 and "第 4 行 region_code" in strict.stderr

    ok = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "created 2, updated 0, unchanged 0, rejected 1" in ok.stdout
    again = subprocess.run([*argv, "--rejects", "-"], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert "created 0, updated 0, unchanged 2, rejected 1" in again.stdout


async def test_export_streams_a_query_to_csv(app: web.Application, tmp_path: Path) -> None:
    pii = app[keys.pii_key]
    await import_csv(write_csv(tmp_path / "reg.csv", [row(i) for i in range(25)]), pii=pii)
    out = tmp_path / "balances.csv"
    async with open_session() as session:
        n = await export_csv(
            session, out, header=["psn_no", "balance_fen"], chunk=4,
            sql="SELECT p.psn_no, a.balance_fen FROM accounts a "
                "JOIN insured_persons p ON p.id = a.person_id WHERE a.balance_fen >= $1 ORDER BY a.balance_fen",
            args=[4000], transform=lambda r: (r[0], f"{r[1] / 100:.2f}"),
        )
    rows = list(csv.reader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert n == 11 and rows[0] == ["psn_no", "balance_fen"] and len(rows) == 12
    assert rows[1][1] == "40.00" and rows[-1][1] == "240.00"


def test_the_bench_generator_makes_valid_distinct_ids() -> None:
    from datetime import date

    from bench.bulk_data import IdFactory

    ids = IdFactory()
    numbers = [ids.number(i) for i in range(0, 3_000_000, 997)]
    assert len(set(numbers)) == len(numbers)
    for n in numbers[::50]:
        born = date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
        assert make_resident_id(n[:6], born, n[14:17]) == n  # identity.py is the reference
        parse_id("resident_id", n, today=date(2100, 1, 1))


@pytest.mark.skipif(not PG_URL, reason="row locks: PostgreSQL (SQLite serialises writers)")
async def test_the_import_waits_for_a_settlements_lock_and_sets_from_its_result(
    app: web.Application, tmp_path: Path
) -> None:
    from tortoise.transactions import in_transaction

    pii = app[keys.pii_key]
    path = write_csv(tmp_path / "reg.csv", [row(2)])  # an employee with 2,000 分
    await import_csv(path, pii=pii)
    person = await InsuredPerson.get()
    account = await Account.get(person_id=person.id)
    write_csv(path, [row(2, balance=5000)])
    locked, release = asyncio.Event(), asyncio.Event()

    async def settlement() -> None:
        async with in_transaction():
            balances = await ledger.lock_accounts([account.id])
            locked.set()
            await release.wait()
            bucket = ledger.bucket_key(account.id, None)
            await ledger.apply_postings([ledger.Posting(account.id, -700, "settlement")],
                                        {bucket: balances[account.id]})

    other = asyncio.create_task(settlement())
    await locked.wait()
    load = asyncio.create_task(import_csv(path, pii=pii))
    conn = Account._meta.db
    for _ in range(500):  # until the import's statement waits on the account's row lock
        _, rows = await conn.execute_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")
        if rows[0]["n"]:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the import never waited for the lock")
    release.set()
    await other
    await load
    amounts = await LedgerEntry.filter(account_id=account.id).order_by("id").values_list("amount_fen", flat=True)
    assert amounts == [2000, -700, 3700]  # the difference from the balance after the settlement
    assert (await Account.get(id=account.id)).balance_fen == 5000
    assert await ledger.verify_account(account.id)


@pytest.mark.skipif(not PG_URL, reason="concurrent writers: PostgreSQL (SQLite serialises them)")
async def test_an_account_opened_meanwhile_is_set_not_duplicated(
    app: web.Application, tmp_path: Path
) -> None:
    """The import opens missing accounts with a plain INSERT; another transaction opening
    the same account first makes it redo the statement conflict-safe, and set that
    account's balance through the ledger instead."""
    from tortoise.transactions import in_transaction

    pii = app[keys.pii_key]
    path = write_csv(tmp_path / "reg.csv", [row(1)])  # a resident without an account
    await import_csv(path, pii=pii)
    person = await InsuredPerson.get()
    write_csv(path, [row(1).replace(",resident,420100,false,", ",employee,420100,true,").replace(",0,", ",900,")])
    opened, release = asyncio.Event(), asyncio.Event()

    async def other_writer() -> None:
        async with in_transaction():
            account = await Account.create(person_id=person.id)
            await ledger.apply_postings([ledger.Posting(account.id, 100, "import")],
                                        {ledger.bucket_key(account.id, None): 0})
            opened.set()
            await release.wait()

    other = asyncio.create_task(other_writer())
    await opened.wait()
    load = asyncio.create_task(import_csv(path, pii=pii))
    conn = Account._meta.db
    for _ in range(500):  # until the import's INSERT waits on the other's uncommitted row
        _, rows = await conn.execute_query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")
        if rows[0]["n"]:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the import never waited for the other writer")
    release.set()
    await other
    summary = await load
    assert summary.updated == 1 and summary.balances == 1
    account = await Account.get(person_id=person.id)
    amounts = await LedgerEntry.filter(account_id=account.id).order_by("id").values_list("amount_fen", flat=True)
    assert amounts == [100, 800] and account.balance_fen == 900
    assert await Account.filter(person_id=person.id).count() == 1
    assert await ledger.verify_account(account.id)



@pytest.mark.parametrize("crash", [False, True])
async def test_a_run_gives_the_garbage_collector_back(app: web.Application, tmp_path: Path, crash: bool) -> None:
    """The pipeline turns the cyclic GC off and freezes the heap for a run (its batches
    have no cycles); afterwards — also after a crash — it is on again, nothing frozen,
    and a cycle made during the run is collected."""
    import gc

    from server.bulk.pipeline import Hooks

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    made: list[object] = []

    def during(batch: int) -> None:
        assert not gc.isenabled() and gc.get_freeze_count() > 0
        made.append(weakref.ref(Cycle()))
        if crash:
            raise RuntimeError("crash")

    path = write_csv(tmp_path / "reg.csv", [row(i) for i in range(3)])
    assert gc.isenabled()
    try:
        await import_csv(path, pii=app[keys.pii_key], hooks=Hooks(before_commit=during))
    except RuntimeError:
        assert crash
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert made and made[0]() is not None  # the cycle outlived the run's batches …
    gc.collect()
    assert made[0]() is None  # … and the collector, back on, frees it
