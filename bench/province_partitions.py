"""What native partitioning by month would change, measured on the seeded sample.

Copies ``ledger_entries`` and ``notices`` into tables partitioned by month of
``created_at`` (``PARTITION BY RANGE``, one partition per calendar month, UTC), with the
indexes the hot queries use, then times on both layouts:

* the ledger's yearly totals of one member (the ``yearly_totals`` statement's shape: by
  account and a year's range of ``created_at``) — the partitioned table is pruned to the
  year's months but probes one index per month;
* the notice claim (``state = 'pending'`` oldest first, ``FOR UPDATE SKIP LOCKED``,
  rolled back);
* retention: removing the oldest month of notices — ``DELETE`` on the plain table (rolled
  back) against ``DROP TABLE`` of that month's partition.

The copies are dropped at the end; the server's tables are not touched.
"""

from __future__ import annotations

import random
import time
from datetime import date, datetime, timezone
from typing import Any

from bench.province_seed import Generator, Volumes, account_of


def _months(first: datetime, last: datetime) -> list[tuple[datetime, datetime]]:
    out = []
    y, m = first.year, first.month
    while True:
        start = datetime(y, m, 1, tzinfo=timezone.utc)
        if start > last:
            return out
        y2, m2 = (y + 1, 1) if m == 12 else (y, m + 1)
        out.append((start, datetime(y2, m2, 1, tzinfo=timezone.utc)))
        y, m = y2, m2


async def _partitioned_copy(conn: Any, table: str, indexes: list[str]) -> list[str]:
    lo, hi = await conn.fetchrow(f"SELECT min(created_at), max(created_at) FROM {table}")
    await conn.execute(f"CREATE TABLE {table}_p (LIKE {table} INCLUDING DEFAULTS) "
                       "PARTITION BY RANGE (created_at)")
    names = []
    for start, end in _months(lo, hi):
        name = f"{table}_p_{start:%Y%m}"
        await conn.execute(f"CREATE TABLE {name} PARTITION OF {table}_p "
                           f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
        names.append(name)
    await conn.execute(f"INSERT INTO {table}_p SELECT * FROM {table}")
    for ddl in indexes:
        await conn.execute(ddl.format(t=f"{table}_p"))
    await conn.execute(f"ANALYZE {table}_p")
    return names


def _pct(values: list[float]) -> dict[str, float]:
    values.sort()
    return {"p50_ms": round(values[len(values) // 2], 3),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 3)}


async def _time(conn: Any, sql: str, args: list[list[Any]], *, rollback: bool = False) -> dict[str, float]:
    times = []
    for a in args:
        tx = conn.transaction() if rollback else None
        if tx:
            await tx.start()
        started = time.perf_counter()
        await conn.fetch(sql, *a)
        times.append((time.perf_counter() - started) * 1000)
        if tx:
            await tx.rollback()
    return _pct(times)


async def _buffers(conn: Any, sql: str, args: list[Any]) -> str:
    tx = conn.transaction()
    await tx.start()
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)
    finally:
        await tx.rollback()
    plan = "\n".join(r[0] for r in rows)
    return plan


YEARLY = ("SELECT l.kind, sum(l.amount_fen) FROM {t} l JOIN accounts a ON a.id = l.account_id "
          "WHERE a.person_id = $1 AND l.authorization_id IS NULL AND l.created_at >= $2 "
          "AND l.created_at < $3 GROUP BY l.kind")
CLAIM = ("SELECT id FROM {t} WHERE state = 'pending' AND (next_attempt_at IS NULL OR "
         "next_attempt_at <= now()) ORDER BY created_at LIMIT 100 FOR UPDATE SKIP LOCKED")


async def experiment(conn: Any, v: Volumes, today: date, *, iterations: int) -> dict[str, Any]:
    started = time.perf_counter()
    ledger_parts = await _partitioned_copy(conn, "ledger_entries", [
        "CREATE INDEX ON {t} (account_id, created_at)", "CREATE INDEX ON {t} (settlement_id)"])
    notice_parts = await _partitioned_copy(conn, "notices", [
        "CREATE INDEX ON {t} (created_at) WHERE state = 'pending'",
        "CREATE INDEX ON {t} (recipient_id, created_at)", "CREATE INDEX ON {t} (state)"])
    copy_seconds = round(time.perf_counter() - started, 1)
    try:
        gen, rnd = Generator(v, today), random.Random(5)
        year0 = datetime(today.year, 1, 1, tzinfo=timezone.utc)
        year1 = datetime(today.year + 1, 1, 1, tzinfo=timezone.utc)
        members = [gen.settlement_member(1 + rnd.randrange(v.settlements)) for _ in range(iterations)]
        args = [[m, year0, year1] for m in members]
        out: dict[str, Any] = {"months": len(ledger_parts), "copy_seconds": copy_seconds}
        for label, t in (("plain", "ledger_entries"), ("partitioned", "ledger_entries_p")):
            await _time(conn, YEARLY.format(t=t), args[:20])  # warm
            out[f"ledger_yearly_{label}"] = await _time(conn, YEARLY.format(t=t), args)
            plan = await _buffers(conn, YEARLY.format(t=t), args[0])
            out[f"ledger_yearly_{label}_plan"] = plan
        for label, t in (("plain", "notices"), ("partitioned", "notices_p")):
            await _time(conn, CLAIM.format(t=t), [[]] * 20, rollback=True)
            out[f"claim_{label}"] = await _time(conn, CLAIM.format(t=t), [[]] * iterations,
                                                rollback=True)
        oldest = notice_parts[0]
        rows = await conn.fetchval(f"SELECT count(*) FROM {oldest}")
        lo, hi = await conn.fetchrow(f"SELECT min(created_at), max(created_at) FROM {oldest}")
        tx = conn.transaction()
        await tx.start()
        try:
            t0 = time.perf_counter()
            status = await conn.execute(
                "DELETE FROM notices WHERE created_at >= $1 AND created_at <= $2", lo, hi)
            delete_s = time.perf_counter() - t0
        finally:
            await tx.rollback()
        t0 = time.perf_counter()
        await conn.execute(f"DROP TABLE {oldest}")
        drop_s = time.perf_counter() - t0
        out["retention"] = {"month": oldest[-6:], "rows": int(rows),
                            "delete_rows": int(status.split()[-1]),
                            "delete_seconds": round(delete_s, 3), "drop_seconds": round(drop_s, 4)}
        out["sample_account"] = account_of(members[0])
        return out
    finally:
        await conn.execute("DROP TABLE IF EXISTS ledger_entries_p, notices_p CASCADE")
