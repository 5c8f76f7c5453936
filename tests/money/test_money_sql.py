"""server.domain.money_sql: each hand-written statement against the real database.

The suite runs twice (SQLite, then PostgreSQL), so each query here is checked on both
dialects; the row-lock test needs PostgreSQL (SQLite has no row locks).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from tortoise import connections
from tortoise.transactions import in_transaction

from server import keys
from server.domain import ledger, money_sql
from server.domain.models import Account, Authorization, LedgerEntry, User
from tests import conftest
from tests.factories import add_binding, add_person


async def _user(person: Any, tag: str) -> User:
    return await User.create(openid=f"sql-{tag}-{uuid.uuid4().hex[:8]}", person_id=person.id)


async def _authorization(
    authorizer: User, person: Any, member: Any, *, created: datetime, **extra: Any
) -> Authorization:
    auth = await Authorization.create(
        authorizer_id=authorizer.id,
        authorizer_person_id=person.id,
        member_id=member.id,
        relationship="child",
        notice_version="test",
        notice_sha256="0" * 64,
        **extra,
    )
    await Authorization.filter(id=auth.id).update(created_at=created)
    return auth


async def test_paying_member_by_each_key(app: web.Application) -> None:
    pii = app[keys.pii_key]
    member = await add_person(app, "李秀英", balance_fen=1_000)
    son = await add_person(app, "张伟", birth=date(1990, 3, 7), balance_fen=20_000)
    husband = await add_person(
        app, "张建国", birth=date(1956, 1, 1), balance_fen=30_000, region="330100"
    )
    daughter = await add_person(app, "张丽", birth=date(1992, 5, 5), balance_fen=5_000)
    son_user, husband_user = await _user(son, "son"), await _user(husband, "husband")
    daughter_user = await _user(daughter, "daughter")
    own_users = [await _user(member, "own1"), await _user(member, "own2")]
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
    # authorization order is creation order, whatever the ids say
    later = await _authorization(son_user, son, member, created=t0 + timedelta(hours=1))
    earlier = await _authorization(
        husband_user, husband, member, created=t0, quota_fen=8_000, quota_remaining_fen=8_000
    )
    await _authorization(
        daughter_user, daughter, member, created=t0 - timedelta(days=1), state="revoked"
    )
    await add_binding(son_user.id, member)
    await add_binding(daughter_user.id, member)
    unbound = await add_binding(husband_user.id, member)
    unbound.state = "unbound"
    await unbound.save()

    conn = connections.get("default")
    by_id = await money_sql.paying_member(conn, "id", member.id)
    assert by_id is not None
    assert by_id == await money_sql.paying_member(conn, "psn_no", member.psn_no)
    assert by_id == await money_sql.paying_member(conn, "id_hash", member.id_hash)
    assert (by_id.id, by_id.psn_no, by_id.region_code, by_id.status) == (
        member.id,
        member.psn_no,
        "420100",
        "active",
    )
    assert pii.decrypt(by_id.name_enc, purpose="name") == "李秀英"
    assert sorted(by_id.binder_ids) == sorted([son_user.id, daughter_user.id])
    assert sorted(by_id.user_ids) == sorted(u.id for u in own_users)
    assert [a.id for a in by_id.authorizations] == [earlier.id, later.id]
    first, second = by_id.authorizations
    assert (first.authorizer_user_id, first.authorizer_person_id, first.quota_fen) == (
        husband_user.id,
        husband.id,
        8_000,
    )
    assert (first.region_code, first.status) == ("330100", "active")
    assert pii.decrypt(first.name_enc, purpose="name") == "张建国"
    assert (second.authorizer_user_id, second.quota_fen, second.region_code) == (
        son_user.id,
        None,
        "420100",
    )


async def test_paying_member_alone_or_unknown(app: web.Application) -> None:
    alone = await add_person(app, "赵敏", balance_fen=0, insurance_type="resident")
    conn = connections.get("default")
    found = await money_sql.paying_member(conn, "psn_no", alone.psn_no)
    assert found is not None
    assert (found.binder_ids, found.user_ids, found.authorizations) == ([], [], [])
    assert await money_sql.paying_member(conn, "psn_no", "NO-SUCH-PERSON") is None
    assert await money_sql.paying_member(conn, "id", -1) is None


async def test_lock_person_accounts(app: web.Application) -> None:
    a = await add_person(app, "甲", balance_fen=100)
    b = await add_person(app, "乙", birth=date(1970, 2, 2), balance_fen=250)
    resident = await add_person(app, "丙", birth=date(1980, 4, 4), insurance_type="resident")
    async with in_transaction() as conn:
        rows = await money_sql.lock_person_accounts(conn, [b.id, resident.id, a.id, b.id])
    accounts = (
        await Account.filter(person_id__in=[a.id, b.id])
        .order_by("id")
        .values("id", "person_id", "balance_fen")
    )
    assert rows == [
        money_sql.LockedAccount(x["id"], x["person_id"], x["balance_fen"]) for x in accounts
    ]
    assert {r.person_id: r.balance_fen for r in rows} == {a.id: 100, b.id: 250}
    async with in_transaction() as conn:
        assert await money_sql.lock_person_accounts(conn, []) == []


async def test_bucket_updates_and_entries(app: web.Application) -> None:
    a = await add_person(app, "甲", balance_fen=1_000)
    b = await add_person(app, "乙", birth=date(1970, 2, 2), balance_fen=2_000)
    user = await _user(b, "b")
    quota = await _authorization(
        user, b, a, created=datetime.now(timezone.utc), quota_fen=500, quota_remaining_fen=500
    )
    acct_a = await Account.get(person_id=a.id)
    acct_b = await Account.get(person_id=b.id)
    now = datetime(2026, 11, 20, 10, 30, tzinfo=timezone.utc)
    async with in_transaction() as conn:
        await money_sql.set_account_balances(conn, {acct_a.id: 901, acct_b.id: 1_777}, now=now)
        await money_sql.set_quota_remaining(conn, {str(quota.id): 321})
        await money_sql.insert_ledger_entries(
            conn,
            [
                money_sql.NewLedgerEntry(acct_a.id, None, -99, 901, "settlement", "S1"),
                money_sql.NewLedgerEntry(acct_b.id, quota.id, -179, 321, "mutual_aid", "S1"),
            ],
            settlement_id=None,
            now=now,
        )
        await money_sql.set_account_balances(conn, {}, now=now)  # nothing to do: no statement
        await money_sql.set_quota_remaining(conn, {})
        await money_sql.insert_ledger_entries(conn, [], settlement_id=None, now=now)
    fresh_a, fresh_b = await Account.get(id=acct_a.id), await Account.get(id=acct_b.id)
    assert (fresh_a.balance_fen, fresh_b.balance_fen) == (901, 1_777)
    assert fresh_a.updated_at == now and fresh_b.updated_at == now
    assert (await Authorization.get(id=quota.id)).quota_remaining_fen == 321
    entries = await LedgerEntry.filter(note="S1").order_by("id").values(
        "account_id", "authorization_id", "amount_fen", "balance_after_fen", "kind",
        "settlement_id", "created_at",
    )  # fmt: skip
    assert [
        (e["account_id"], e["amount_fen"], e["balance_after_fen"], e["kind"]) for e in entries
    ] == [(acct_a.id, -99, 901, "settlement"), (acct_b.id, -179, 321, "mutual_aid")]
    assert entries[0]["authorization_id"] is None
    assert str(entries[1]["authorization_id"]) == str(quota.id)
    assert all(e["settlement_id"] is None and e["created_at"] == now for e in entries)


@pytest.mark.skipif(not conftest.PG_URL, reason="row locks need PostgreSQL")
async def test_lock_waits_for_the_holder(app: web.Application) -> None:
    """A second settlement's lock waits until the first commits, then reads its balance."""
    person = await add_person(app, "甲", balance_fen=1_000)
    account = await Account.get(person_id=person.id)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with in_transaction() as conn:
            await money_sql.lock_person_accounts(conn, [person.id])
            await money_sql.set_account_balances(
                conn, {account.id: 400}, now=datetime.now(timezone.utc)
            )
            holding.set()
            await release.wait()

    async def waiter() -> list[money_sql.LockedAccount]:
        await holding.wait()
        async with in_transaction() as conn:
            return await money_sql.lock_person_accounts(conn, [person.id])

    first = asyncio.create_task(holder())
    second = asyncio.create_task(waiter())
    try:
        await holding.wait()
        db = connections.get("default")
        for _ in range(500):  # bounded: until PostgreSQL reports the second one blocked
            rows = await db.execute_query_dict(
                "SELECT count(*) AS n FROM pg_locks WHERE NOT granted"
            )
            if rows[0]["n"]:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the second lock never waited")
        assert not second.done()
    finally:
        release.set()
        await first
    assert [r.balance_fen for r in await second] == [400]
    assert await ledger.balance_of(person.id) == 400
