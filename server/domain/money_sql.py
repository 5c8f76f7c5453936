"""The money area's hand-written SQL: only the statements a benchmark showed pay.

Everything else in settlements, the ledger and 家庭共济 goes through the ORM. These run
on every 2207 settlement, where building the query with the ORM cost more CPU than the
database spent on it. Measured with ``bench/scenario_settlements.py`` (one server
process, PostgreSQL, median server CPU per settlement over 3 interleaved rounds; 1.84 ms
with all of them) by putting each back on the ORM in turn:

* :func:`paying_member` — the member, their active authorizations with each authorizer's
  region / status / name, the active binders and the member's own users in one round
  trip; as four ORM queries: 3.41 ms (+1.57);
* :func:`lock_person_accounts` — ``SELECT … FOR UPDATE`` of the accounts by person; as
  an ORM ``select_for_update().only(…)``: 2.21 ms (+0.37);
* :func:`set_account_balances` / :func:`set_quota_remaining` and
  :func:`insert_ledger_entries` — one UPDATE … CASE per table and one multi-row INSERT;
  as ``bulk_update`` + ``bulk_create``: +0.05 / +0.45 ms in two series (a busy machine),
  and 0.21 → 0.85 ms CPU for a 3-posting call measured in-process.

(The settlement row itself goes through ``Settlement.create``: −0.12 / +0.08 ms in the
scenario, ~0.1 ms in-process — not worth a second copy of the model's columns.)

Statements are written once, for PostgreSQL (``$n`` placeholders, ``FOR UPDATE``,
``string_agg``); :func:`_dialect` adapts them for SQLite (``?n``, ``group_concat``, no
row locks: SQLite serialises writers). Only placeholders are ever generated, never values.
Each function is tested on both databases (``tests/money/test_money_sql.py``).
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from tortoise.backends.base.client import BaseDBAsyncClient

from server.domain.clock import parse_uuid

MemberKey = Literal["id", "id_hash", "psn_no"]


@functools.lru_cache(maxsize=256)
def _dialect(dialect: str, sql: str) -> str:
    if dialect == "postgres":
        return sql
    sql = re.sub(r"\$(\d+)", r"?\1", sql).replace(" FOR UPDATE", "")
    return sql.replace("string_agg(", "group_concat(")


def _placeholders(start: int, n: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n))


async def _rows(conn: BaseDBAsyncClient, sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    sql = _dialect(conn.capabilities.dialect, sql)
    return [dict(r) for r in await conn.execute_query_dict(sql, list(values))]


async def _execute(conn: BaseDBAsyncClient, sql: str, values: Sequence[Any]) -> None:
    await conn.execute_query(_dialect(conn.capabilities.dialect, sql), list(values))


# --- who pays -----------------------------------------------------------------------


@dataclass(frozen=True)
class PayingAuthorization:
    """An active 家庭共济 authorization of the member, with its authorizer's registry row."""

    id: uuid.UUID
    authorizer_user_id: int
    authorizer_person_id: int
    quota_fen: int | None
    region_code: str
    status: str
    name_enc: str


@dataclass(frozen=True)
class PayingMember:
    """The member of a settlement and everything the split and the notices need."""

    id: int
    psn_no: str
    name_enc: str
    region_code: str
    status: str
    binder_ids: list[int]  # users with an active binding to the member
    user_ids: list[int]  # the member's own mini-program users
    authorizations: list[PayingAuthorization]  # in authorization order


_MEMBER_SELECT = (
    "SELECT m.id, m.psn_no, m.name_enc, m.region_code, m.status, "
    "(SELECT string_agg(CAST(b.binder_id AS TEXT), ',') FROM bindings b "
    " WHERE b.member_id = m.id AND b.state = 'active') AS binders, "
    "(SELECT string_agg(CAST(u.id AS TEXT), ',') FROM users u WHERE u.person_id = m.id) AS member_users, "
    "a.id AS auth_id, a.authorizer_id, a.authorizer_person_id, a.quota_fen, "
    "p.region_code AS auth_region, p.status AS auth_status, p.name_enc AS auth_name_enc "
    "FROM insured_persons m "
    "LEFT JOIN authorizations a ON a.member_id = m.id AND a.state = 'active' "
    "LEFT JOIN insured_persons p ON p.id = a.authorizer_person_id "
)
_MEMBER_BY: dict[MemberKey, str] = {
    "id": _MEMBER_SELECT + "WHERE m.id = $1 ORDER BY a.created_at, a.id",
    "id_hash": _MEMBER_SELECT + "WHERE m.id_hash = $1 ORDER BY a.created_at, a.id",
    "psn_no": _MEMBER_SELECT + "WHERE m.psn_no = $1 ORDER BY a.created_at, a.id",
}


def _ids(csv: str | None) -> list[int]:
    return [int(x) for x in dict.fromkeys(csv.split(","))] if csv else []


async def paying_member(
    conn: BaseDBAsyncClient, by: MemberKey, value: int | str
) -> PayingMember | None:
    """The insured person whose ``by`` column equals ``value`` (one round trip); None if none."""
    rows = await _rows(conn, _MEMBER_BY[by], [value])
    if not rows:
        return None
    m = rows[0]
    return PayingMember(
        id=int(m["id"]),
        psn_no=m["psn_no"],
        name_enc=m["name_enc"],
        region_code=m["region_code"],
        status=m["status"],
        binder_ids=_ids(m["binders"]),
        user_ids=_ids(m["member_users"]),
        authorizations=[
            PayingAuthorization(
                id=auth_id,
                authorizer_user_id=int(r["authorizer_id"]),
                authorizer_person_id=int(r["authorizer_person_id"]),
                quota_fen=None if r["quota_fen"] is None else int(r["quota_fen"]),
                region_code=r["auth_region"],
                status=r["auth_status"],
                name_enc=r["auth_name_enc"],
            )
            for r in rows
            if (auth_id := parse_uuid(r["auth_id"])) is not None
        ],
    )


# --- row locks ----------------------------------------------------------------------


@dataclass(frozen=True)
class LockedAccount:
    id: int
    person_id: int
    balance_fen: int


@functools.lru_cache(maxsize=32)
def _lock_sql(n: int) -> str:
    return (
        "SELECT id, person_id, balance_fen FROM accounts "
        f"WHERE person_id IN ({_placeholders(1, n)}) ORDER BY id FOR UPDATE"
    )


async def lock_person_accounts(
    conn: BaseDBAsyncClient, person_ids: Sequence[int]
) -> list[LockedAccount]:
    """Lock the accounts of these persons in account id order (``FOR UPDATE``; on SQLite
    the write transaction is the lock). Persons without an account are left out."""
    ids = list(dict.fromkeys(person_ids))
    if not ids:
        return []
    rows = await _rows(conn, _lock_sql(len(ids)), ids)
    return [LockedAccount(int(r["id"]), int(r["person_id"]), int(r["balance_fen"])) for r in rows]


# --- the ledger's writes ------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _set_column_sql(table: str, column: str, n: int, stamped: bool) -> str:
    cases = " ".join(f"WHEN ${2 * i + 1} THEN CAST(${2 * i + 2} AS BIGINT)" for i in range(n))
    sql = f"UPDATE {table} SET {column} = CASE id {cases} END"
    nxt = 2 * n + 1
    if stamped:
        sql += f", updated_at = ${nxt}"
        nxt += 1
    return sql + f" WHERE id IN ({_placeholders(nxt, n)})"


async def set_account_balances(
    conn: BaseDBAsyncClient, balances: Mapping[int, int], *, now: datetime
) -> None:
    """``accounts.balance_fen`` := the given value for each account id (one statement)."""
    if not balances:
        return
    values: list[Any] = []
    for account_id, balance in balances.items():
        values += [account_id, balance]
    values.append(now)
    values += list(balances)
    await _execute(conn, _set_column_sql("accounts", "balance_fen", len(balances), True), values)


async def set_quota_remaining(conn: BaseDBAsyncClient, remaining: Mapping[str, int]) -> None:
    """``authorizations.quota_remaining_fen`` := the value for each authorization id."""
    if not remaining:
        return
    values: list[Any] = []
    for authorization_id, value in remaining.items():
        values += [authorization_id, value]
    values += list(remaining)
    sql = _set_column_sql("authorizations", "quota_remaining_fen", len(remaining), False)
    await _execute(conn, sql, values)


@dataclass(frozen=True)
class NewLedgerEntry:
    account_id: int
    authorization_id: uuid.UUID | None
    amount_fen: int
    balance_after_fen: int
    kind: str
    note: str | None


_ENTRY_COLUMNS = (
    "account_id, authorization_id, amount_fen, balance_after_fen, kind, settlement_id, note, "
    "created_at"
)


@functools.lru_cache(maxsize=32)
def _insert_entries_sql(n: int) -> str:
    rows = ", ".join(f"({_placeholders(8 * i + 1, 8)})" for i in range(n))
    return f"INSERT INTO ledger_entries ({_ENTRY_COLUMNS}) VALUES {rows}"


async def insert_ledger_entries(
    conn: BaseDBAsyncClient,
    entries: Sequence[NewLedgerEntry],
    *,
    settlement_id: int | None,
    now: datetime,
) -> None:
    """Append ledger entries (one statement)."""
    if not entries:
        return
    values: list[Any] = []
    for e in entries:
        auth = str(e.authorization_id) if e.authorization_id else None
        values += [
            e.account_id,
            auth,
            e.amount_fen,
            e.balance_after_fen,
            e.kind,
            settlement_id,
            e.note,
            now,
        ]
    await _execute(conn, _insert_entries_sql(len(entries)), values)


__all__ = [
    "LockedAccount",
    "MemberKey",
    "NewLedgerEntry",
    "PayingAuthorization",
    "PayingMember",
    "insert_ledger_entries",
    "lock_person_accounts",
    "paying_member",
    "set_account_balances",
    "set_quota_remaining",
]
