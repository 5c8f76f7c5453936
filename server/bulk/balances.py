"""Set-based ledger postings for bulk loads: one statement per batch, never a row loop.

The ledger's invariants (server/domain/ledger.py, SPEC.md "Money") hold here too:

* balances change only through ``ledger_entries``: every changed account gets exactly
  one entry of the difference, with ``balance_after_fen`` = its new balance, so an
  account's balance stays the sum of its own-balance entries (``ledger.verify_account``);
* accounts are locked in id order (``SELECT … ORDER BY a.id FOR UPDATE OF a`` — the
  order ``ledger.lock_accounts`` and the settlements use, so no cycle of waits) and the
  difference is taken from the balance read *under* the lock, so a settlement committed
  meanwhile is never overwritten (READ COMMITTED re-reads a row it had to wait for);
  SQLite serialises writers, so its transaction is the lock;
* no balance goes below zero: ``target`` is ≥ 0 by the caller's validation, and the
  statement refuses otherwise (a CHECK-style guard, nothing written).

``set_balances`` brings accounts to a target; the target is any SQL expression over the
rows and the locked account (``a``), so a credit is the same statement with
``target="a.balance_fen + s.amount_fen"`` (the monthly account credits of issue 13).
"""

from __future__ import annotations

from datetime import datetime

from server.bulk.session import BulkSession
from server.domain.ledger import insufficient


async def ensure_accounts(
    session: BulkSession, *, rows: str, person_id: str, where: str, now: datetime
) -> None:
    """Create the missing personal accounts (balance 0) of the persons ``rows`` yield."""
    await session.execute(
        f"INSERT INTO accounts (person_id, balance_fen, updated_at) "
        f"SELECT {person_id}, 0, $1 FROM {rows} WHERE {where} ORDER BY {person_id} "
        f"ON CONFLICT (person_id) DO NOTHING",
        now,
    )


async def set_balances(
    session: BulkSession,
    *,
    rows: str,
    account_of: str,
    where: str,
    target: str,
    now: datetime,
    kind: str,
    note: str | None,
) -> int:
    """Post one ledger entry per account whose balance differs from ``target`` and set
    the balance; the number of entries written.

    ``rows``: a FROM list (e.g. ``"stage s JOIN insured_persons p ON p.id_hash = s.id_hash"``);
    ``account_of``: how an account ``a`` joins them (``"a.person_id = p.id"``); ``where``:
    which rows post; ``target``: the new balance (may use ``a.balance_fen``). Runs inside
    the caller's transaction.
    """
    if session.dialect == "postgres":
        rows_out = await session.fetch(
            f"""
            WITH target AS (
                SELECT a.id, a.balance_fen AS before, ({target}) AS after
                FROM {rows} JOIN accounts a ON {account_of}
                WHERE {where} AND a.balance_fen <> ({target})
                ORDER BY a.id
                FOR UPDATE OF a
            ), checked AS (
                SELECT id, before, after FROM target
                WHERE (SELECT min(after) FROM target) >= 0
            ), moved AS (
                UPDATE accounts a SET balance_fen = c.after, updated_at = $1
                FROM checked c WHERE a.id = c.id
                RETURNING a.id, c.after - c.before AS amount, c.after
            ), posted AS (
                INSERT INTO ledger_entries (account_id, authorization_id, amount_fen,
                    balance_after_fen, kind, settlement_id, note, created_at)
                SELECT id, NULL, amount, after, $2, NULL, $3, $1 FROM moved ORDER BY id
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM posted), (SELECT count(*) FROM target WHERE after < 0)
            """,
            now,
            kind,
            note,
        )
        posted, negative = rows_out[0]
        if negative:
            raise insufficient()
        return int(posted)
    # SQLite: the transaction holds the database's write lock; entries first (they read
    # the balances before), then the balances.
    negative = await session.fetchval(
        f"SELECT count(*) FROM {rows} JOIN accounts a ON {account_of} "
        f"WHERE {where} AND ({target}) < 0"
    )
    if negative:
        raise insufficient()
    await session.execute(
        f"INSERT INTO ledger_entries (account_id, authorization_id, amount_fen, "
        f"balance_after_fen, kind, settlement_id, note, created_at) "
        f"SELECT a.id, NULL, ({target}) - a.balance_fen, ({target}), $2, NULL, $3, $1 "
        f"FROM {rows} JOIN accounts a ON {account_of} "
        f"WHERE {where} AND a.balance_fen <> ({target}) ORDER BY a.id",
        now,
        kind,
        note,
    )
    posted = await session.fetchval("SELECT changes()")
    if posted:
        await session.execute(
            f"UPDATE accounts AS a SET balance_fen = ({target}), updated_at = $1 "
            f"FROM {rows} WHERE {account_of} AND {where} AND a.balance_fen <> ({target})",
            now,
        )
    return int(posted or 0)
