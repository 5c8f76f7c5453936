"""Set-based ledger postings for bulk loads: one statement per batch, never a row loop.

The ledger's invariants (server/domain/ledger.py, SPEC.md "Money") hold here too:

* balances change only through ``ledger_entries``: every changed account gets exactly
  one entry of the difference, with ``balance_after_fen`` = its new balance, so an
  account's balance stays the sum of its own-balance entries (``ledger.verify_account``);
* accounts are locked in id order (the order ``ledger.lock_accounts`` and the
  settlements use, so no cycle of waits) and the difference is taken from the balance
  read *under* the lock, so a settlement committed meanwhile is never overwritten;
  SQLite serialises writers, so its transaction is the lock;
* no balance goes below zero: targets are ≥ 0 by the caller's validation, and a negative
  one raises INSUFFICIENT_BALANCE, which rolls the caller's transaction back.

Plans are pinned by the SQL's shape, not left to the planner: the batch drives (a
subquery fenced by ``OFFSET 0``), every look-up into a large table is a scalar subquery
or a ``LATERAL`` probe by a unique index. The staging table has no statistics and the
registry grows during a run; a planner left free chose, some batches, a sequential scan
of a whole table per batch (measured: the run went quadratic).

The callers describe their rows as SQL:

* ``persons`` — a SELECT of ``person_id, initial`` (``open_accounts``);
* ``wanted`` — a SELECT with an ``account_id`` column and whatever ``target`` needs;
  ``target`` is an expression over it (``s``) and the locked account (``a``): the
  registry's ``s.balance_fen``, or a monthly credit's ``a.balance_fen + s.amount_fen``
  (issue 13: the same statement).
"""

from __future__ import annotations

from datetime import datetime

from server.bulk.session import BulkSession
from server.domain.ledger import insufficient

_ENTRY_COLUMNS = (
    "account_id, authorization_id, amount_fen, balance_after_fen, kind, settlement_id, note, created_at"
)


def account_of_person(person_id: str) -> str:
    """SQL: the personal account id of a person (NULL without one), one index probe."""
    return f"(SELECT x.id FROM accounts x WHERE x.person_id = {person_id})"


async def post_balances(
    session: BulkSession,
    *,
    wanted: str,
    initial: str,
    target: str,
    now: datetime,
    kind: str,
    note: str | None,
) -> int:
    """Bring the personal accounts of ``wanted`` (a SELECT with a ``person_id`` column and
    whatever the expressions need, as ``s``) to ``target`` through the ledger, opening the
    missing ones with ``initial``; the number of ledger entries written.

    PostgreSQL: one statement — each person's account looked up once, the missing ones
    opened (balance ``initial``, one entry of that amount), the others locked in id order
    and moved to ``target`` (one entry of the difference), all entries in one INSERT.
    An account another transaction opened meanwhile breaks the plain INSERT; the
    statement is then redone with ``ON CONFLICT DO NOTHING``, which skips it (after
    waiting for that transaction), and a second statement, which sees it, sets it.
    SQLite: ``open_accounts`` then ``set_balances``.
    """
    if session.dialect != "postgres":
        persons = f"SELECT s.person_id, {initial} AS initial FROM ({wanted}) s"
        opened = await open_accounts(session, persons=persons, now=now, kind=kind, note=note)
        moved = await set_balances(session, wanted=_with_account(wanted), target=target, now=now,
                                   kind=kind, note=note)
        return opened + moved
    statement = _POST.format(wanted=wanted, initial=initial, account=account_of_person("s.person_id"),
                             locked=_LOCKED.format(wanted="SELECT * FROM w", target=target),
                             columns=_ENTRY_COLUMNS, conflict="-- conflict")
    # Plain INSERT of the accounts found missing (the snapshot says so): an ON CONFLICT
    # insert costs a second probe and a speculative insertion a row (measured: ~6 µs a
    # row on the registry's upsert). Only a concurrent writer breaks it; then again,
    # conflict-safe.
    got = await session.fetch_unless_conflict(statement, now, kind, note)
    if got is None:
        safe = statement.replace("-- conflict", "ON CONFLICT (person_id) DO NOTHING")
        got = await session.fetch(safe, now, kind, note)
    posted, negative, raced = got[0]
    if negative:
        raise insufficient()  # the caller's transaction rolls the batch back
    if raced:
        posted += await set_balances(session, wanted=_with_account(wanted), target=target,
                                     now=now, kind=kind, note=note)
    return int(posted)


_POST = """
    WITH w AS MATERIALIZED (
        SELECT s.*, {account} AS account_id
        FROM (SELECT * FROM ({wanted}) x OFFSET 0) s WHERE s.person_id IS NOT NULL
    ), opened AS (
        INSERT INTO accounts (person_id, balance_fen, updated_at)
        SELECT s.person_id, ({initial}), $1 FROM w s WHERE s.account_id IS NULL
        ORDER BY s.person_id
        {conflict}
        RETURNING id, balance_fen
    ), target AS ({locked}
    ), moved AS (
        UPDATE accounts a SET balance_fen = t.after, updated_at = $1
        FROM target t WHERE a.id = t.id
        RETURNING a.id, t.after - t.before AS amount, t.after
    ), entries AS (
        SELECT id, balance_fen AS amount, balance_fen AS after FROM opened WHERE balance_fen <> 0
        UNION ALL
        SELECT id, amount, after FROM moved
    ), posted AS (
        INSERT INTO ledger_entries ({columns})
        SELECT id, NULL, amount, after, $2, NULL, $3, $1 FROM entries ORDER BY id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM posted),
           (SELECT count(*) FROM opened WHERE balance_fen < 0)
             + (SELECT count(*) FROM target WHERE after < 0),
           (SELECT count(*) FROM w WHERE account_id IS NULL) - (SELECT count(*) FROM opened)
    """


def open_new(persons: str) -> str:
    """CTEs ``opened`` and ``posted`` (PostgreSQL, parameters $1 now, $2 kind, $3 note):
    the personal accounts of persons created *in the same statement* (``persons``: a
    SELECT of ``person_id, initial``), each opened at ``initial`` with one ledger entry
    of that amount (none for 0). No account can exist yet for a person that did not, so
    a plain INSERT without a look-up; the caller refuses ``opened`` rows below zero."""
    return f"""opened AS (
        INSERT INTO accounts (person_id, balance_fen, updated_at)
        SELECT w.person_id, w.initial, $1 FROM ({persons}) w ORDER BY w.person_id
        RETURNING id, balance_fen
    ), posted AS (
        INSERT INTO ledger_entries ({_ENTRY_COLUMNS})
        SELECT id, NULL, balance_fen, balance_fen, $2, NULL, $3, $1
        FROM opened WHERE balance_fen <> 0 ORDER BY id
        RETURNING 1
    )"""


def _with_account(wanted: str) -> str:
    return f"SELECT s.*, {account_of_person('s.person_id')} AS account_id FROM ({wanted}) s"


# The accounts of ``wanted`` whose balance is not ``target`` yet, locked in id order: the
# batch drives (sorted by account id; OFFSET 0 keeps a subquery as written — flattened,
# its look-ups would be copied into every place that uses them) and each account is one
# probe by primary key. The filter comes before the lock (a lock writes
# the row); an account that changed while we waited for its lock is re-checked on its new
# version (READ COMMITTED).
_LOCKED = """
    SELECT a.id, a.balance_fen AS before, ({target}) AS after
    FROM (SELECT * FROM ({wanted}) w WHERE w.account_id IS NOT NULL
          ORDER BY w.account_id OFFSET 0) s
    CROSS JOIN LATERAL (
        SELECT a.id, a.balance_fen FROM accounts a
        WHERE a.id = s.account_id AND a.balance_fen <> ({target})
        FOR UPDATE
    ) a"""


async def open_accounts(
    session: BulkSession, *, persons: str, now: datetime, kind: str, note: str | None
) -> int:
    """Create the personal accounts that do not exist yet for ``persons`` (a SELECT of
    ``person_id, initial``), each with ``initial`` as its balance and one ledger entry of
    that amount (none for 0); the number of entries written. One row version per new
    account instead of two (create at 0, then set)."""
    insert = (
        f"INSERT INTO accounts (person_id, balance_fen, updated_at) "
        f"SELECT w.person_id, w.initial, $1 FROM ({persons}) w WHERE w.person_id IS NOT NULL "
        f"ORDER BY w.person_id ON CONFLICT (person_id) DO NOTHING"
    )
    if session.dialect == "postgres":
        posted, negative = (await session.fetch(
            f"""
            WITH opened AS ({insert} RETURNING id, balance_fen),
            posted AS (
                INSERT INTO ledger_entries ({_ENTRY_COLUMNS})
                SELECT id, NULL, balance_fen, balance_fen, $2, NULL, $3, $1
                FROM opened WHERE balance_fen <> 0 ORDER BY id
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM posted), (SELECT count(*) FROM opened WHERE balance_fen < 0)
            """,
            now, kind, note,
        ))[0]
        if negative:
            raise insufficient()  # the caller's transaction rolls the batch back
        return int(posted)
    # SQLite: the transaction holds the write lock and ids only grow (AUTOINCREMENT), so
    # the accounts above the largest id before are the ones just opened.
    before = await session.fetchval("SELECT coalesce(max(id), 0) FROM accounts")
    await session.execute(insert, now)
    if await session.fetchval("SELECT count(*) FROM accounts WHERE id > $1 AND balance_fen < 0", before):
        raise insufficient()
    await session.execute(
        f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) "
        "SELECT id, NULL, balance_fen, balance_fen, $2, NULL, $3, $1 "
        "FROM accounts WHERE id > $4 AND balance_fen <> 0 ORDER BY id",
        now, kind, note, before,
    )
    return int(await session.fetchval("SELECT changes()") or 0)


async def set_balances(
    session: BulkSession, *, wanted: str, target: str, now: datetime, kind: str, note: str | None
) -> int:
    """Post one ledger entry per account of ``wanted`` whose balance differs from
    ``target`` and set the balance; the number of entries written. Runs inside the
    caller's transaction; a negative target raises INSUFFICIENT_BALANCE."""
    if session.dialect == "postgres":
        posted, negative = (await session.fetch(
            f"""
            WITH target AS ({_LOCKED.format(wanted=wanted, target=target)}
            ), moved AS (
                UPDATE accounts a SET balance_fen = t.after, updated_at = $1
                FROM target t WHERE a.id = t.id
                RETURNING a.id, t.after - t.before AS amount, t.after
            ), posted AS (
                INSERT INTO ledger_entries ({_ENTRY_COLUMNS})
                SELECT id, NULL, amount, after, $2, NULL, $3, $1 FROM moved ORDER BY id
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM posted), (SELECT count(*) FROM target WHERE after < 0)
            """,
            now, kind, note,
        ))[0]
        if negative:
            raise insufficient()
        return int(posted)
    # SQLite: the transaction holds the database's write lock; entries first (they read
    # the balances before), then the balances.
    joined = f"FROM ({wanted}) s JOIN accounts a ON a.id = s.account_id"
    if await session.fetchval(f"SELECT count(*) {joined} WHERE ({target}) < 0"):
        raise insufficient()
    await session.execute(
        f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) "
        f"SELECT a.id, NULL, ({target}) - a.balance_fen, ({target}), $2, NULL, $3, $1 "
        f"{joined} WHERE a.balance_fen <> ({target}) ORDER BY a.id",
        now, kind, note,
    )
    posted = await session.fetchval("SELECT changes()")
    if posted:
        await session.execute(
            f"UPDATE accounts AS a SET balance_fen = ({target}), updated_at = $1 "
            f"FROM ({wanted}) AS s WHERE a.id = s.account_id AND a.balance_fen <> ({target})",
            now,
        )
    return int(posted or 0)
