"""The database's floor for a registry load: the rows, already prepared, COPYed straight
into the registry's own tables (bench/scenario_bulk.py, row "database floor").

Raw COPY (the issue's reference) writes text into one unindexed table. A registry load
must write three tables — ``insured_persons`` (primary key, two unique blind-index /
psn_no indexes), ``accounts`` (primary key, unique person, a foreign key) and
``ledger_entries`` (primary key, (account, time) index, foreign keys) — whatever the
client does. This measures that share alone: every row is validated, hashed and
encrypted first (not measured), then each batch of 20,000 is written the cheapest way
PostgreSQL has: ids taken from the sequences in one call, then one ``COPY`` per table
(heap multi-insert; the indexes and foreign-key checks are what remains). No staging
table, no merge, no duplicate check, no conflict handling: a lower bound, not an import.

    python -m bench.bulk_floor --url postgres://postgres@127.0.0.1:PORT/db --file registry.csv

prints ``copied N rows in S s, client CPU C s`` (C: the COPY phase only).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import time
from datetime import datetime, timezone

from server.bulk.registry_import import LAYOUT, LEDGER_KIND, LEDGER_NOTE
from server.bulk.registry_rows import STAGE_COLUMNS, RowPreparer
from server.bulk.registry_sql import INSERTED
from server.bulk.source import CsvSource
from server.domain.clock import cn_today
from server.domain.pii import PiiCipher

BATCH = 20_000
LOOPBACK_URL = "postgres://postgres@127.0.0.1:"
_AT = {c: i for i, c in enumerate(STAGE_COLUMNS)}
_ENTRY = ["account_id", "authorization_id", "amount_fen", "balance_after_fen", "kind",
          "settlement_id", "note", "created_at"]


async def copy_prepared(url: str, path: str) -> tuple[int, float, float]:
    """(rows, seconds, client CPU seconds) of writing the file's prepared rows."""
    import asyncpg

    pii = PiiCipher({"k1": base64.b64encode(os.urandom(32)).decode()}, "k1", os.urandom(16).hex())
    with CsvSource(path, LAYOUT) as source:
        preparer = RowPreparer(pii, source.columns, today=cn_today())
        batches = [preparer.prepare(rows).records for rows in source.batches(BATCH)]
    now = datetime.now(timezone.utc)
    conn = await asyncpg.connect(url)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for records in batches:
            async with conn.transaction():
                ids = await _ids(conn, "insured_persons_id_seq", len(records))
                await conn.copy_records_to_table(
                    "insured_persons", columns=["id", *INSERTED, "created_at", "updated_at"],
                    records=[(i, *(r[_AT[c]] for c in INSERTED), now, now)
                             for i, r in zip(ids, records, strict=True)])
                owners = [(i, r[_AT["balance_fen"]]) for i, r in zip(ids, records, strict=True)
                          if r[_AT["has_personal_account"]]]
                accounts = await _ids(conn, "accounts_id_seq", len(owners))
                await conn.copy_records_to_table(
                    "accounts", columns=["id", "person_id", "balance_fen", "updated_at"],
                    records=[(a, p, b, now) for a, (p, b) in zip(accounts, owners, strict=True)])
                await conn.copy_records_to_table(
                    "ledger_entries", columns=_ENTRY,
                    records=[(a, None, b, b, LEDGER_KIND, None, LEDGER_NOTE, now)
                             for a, (_, b) in zip(accounts, owners, strict=True) if b])
        return sum(map(len, batches)), time.perf_counter() - started, time.process_time() - cpu
    finally:
        await conn.close()


async def _ids(conn: object, sequence: str, n: int) -> list[int]:
    rows = await conn.fetch(f"SELECT nextval('{sequence}') FROM generate_series(1, $1)", n)  # type: ignore[attr-defined]
    return [r[0] for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bulk_floor", description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--file", required=True)
    args = p.parse_args(argv)
    if not args.url.startswith(LOOPBACK_URL):
        raise SystemExit("bulk_floor only talks to a loopback PostgreSQL")
    rows, seconds, cpu = asyncio.run(copy_prepared(args.url, args.file))
    print(f"copied {rows} rows in {seconds:.3f} s, client CPU {cpu:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
