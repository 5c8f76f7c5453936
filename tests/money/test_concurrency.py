"""Many settlements for one family at once (PostgreSQL): exactly the right balances.

SQLite serialises writers and ignores SELECT … FOR UPDATE, so these races only mean
something on PostgreSQL (scripts/test pass 2).
"""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain import ledger
from server.domain.models import Account, Authorization, LedgerEntry, Notice, Settlement
from server.domain.settlements.request import fen_to_yuan
from tests import conftest
from tests.factories import add_binding, add_person, authorize, post_signed, verified_user
from tests.money.conftest import settlement_body

pytestmark = pytest.mark.skipif(not conftest.PG_URL, reason="row locks need PostgreSQL")


async def test_parallel_settlements_for_one_family(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "李秀英", balance_fen=10_000)
    first = await add_person(app, "张伟", birth=date(1990, 3, 7), balance_fen=25_000)
    second = await add_person(app, "张建国", birth=date(1956, 1, 1), balance_fen=15_000)
    first_tokens = await verified_user(client, "first", first)
    second_tokens = await verified_user(client, "second", second)
    await add_binding(first_tokens["user"]["id"], member)
    assert (await authorize(client, first_tokens, member)).status == 201
    assert (await authorize(client, second_tokens, member, "spouse")).status == 201
    who = {"code": institution["code"], "secret": institution["secret"]}
    parts = [1_000 + 137 * i for i in range(40)]  # 40 settlements, 91 420 in all > 50 000 available

    async def one(i: int) -> int:
        body = settlement_body(f"C{i}", fen_to_yuan(parts[i]), psn_no=member.psn_no)
        resp = await post_signed(client, "/settlements", body, **who)
        return resp.status

    statuses = await asyncio.gather(*(one(i) for i in range(len(parts))))
    assert statuses == [201] * len(parts)
    taken = min(50_000, sum(parts))
    own, a1, a2 = 10_000, 25_000, 15_000
    expect_own = max(0, own - taken)
    expect_a1 = max(0, a1 - max(0, taken - own))
    expect_a2 = max(0, a2 - max(0, taken - own - a1))
    balances = [(await Account.get(person_id=p.id)).balance_fen for p in (member, first, second)]
    assert balances == [expect_own, expect_a1, expect_a2] == [0, 0, 0]
    rows = await Settlement.all().values(
        "acct_pay_fen", "acct_mulaid_pay_fen", "psn_cash_pay_fen", "psn_part_amt_fen"
    )
    assert sum(r["acct_pay_fen"] + r["acct_mulaid_pay_fen"] for r in rows) == taken
    assert all(
        r["acct_pay_fen"] + r["acct_mulaid_pay_fen"] + r["psn_cash_pay_fen"]
        == r["psn_part_amt_fen"]
        for r in rows
    )
    for p in (member, first, second):
        assert await ledger.verify_account((await Account.get(person_id=p.id)).id)
    assert await Notice.filter(kind="family_settlement").count() == len(parts)

    # and all of them reversed at once: every balance back exactly
    async def undo(i: int) -> int:
        resp = await post_signed(client, f"/settlements/C{i}/reversal", {"setl_id": f"C{i}"}, **who)
        return resp.status

    assert await asyncio.gather(*(undo(i) for i in range(len(parts)))) == [200] * len(parts)
    balances = [(await Account.get(person_id=p.id)).balance_fen for p in (member, first, second)]
    assert balances == [own, a1, a2]


async def test_parallel_duplicates_apply_once(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "李秀英", balance_fen=10_000)
    who = {"code": institution["code"], "secret": institution["secret"]}
    body = settlement_body("DUP", "12.34", psn_no=member.psn_no)
    responses = await asyncio.gather(
        *(post_signed(client, "/settlements", body, **who) for _ in range(12))
    )
    assert sorted(r.status for r in responses) == [200] * 11 + [201]
    bodies = [await r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies)
    assert (await Account.get(person_id=member.id)).balance_fen == 10_000 - 1_234
    assert await LedgerEntry.filter(kind="settlement").count() == 1


async def test_parallel_authorizations_respect_the_family_size(
    client: TestClient, app: web.Application
) -> None:
    tokens = await verified_user(
        client, "alice", await add_person(app, "张伟", birth=date(1990, 3, 7))
    )
    kids = [await add_person(app, f"张{i}号", birth=date(2010, 1, 1 + i)) for i in range(10)]
    responses = await asyncio.gather(*(authorize(client, tokens, kid, "child") for kid in kids))
    assert sorted(r.status for r in responses) == [201] * 6 + [409] * 4
    assert await Authorization.filter(state="active").count() == 6


async def test_parallel_quota_settlements_and_a_revocation(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    """Cross-province quota: settlements racing a revocation never lose or invent a 分."""
    from server.domain.models import Authorization
    from tests.factories import bearer

    daughter = await add_person(
        app, "陈静", region="510100", birth=date(1960, 2, 14), balance_fen=100_000
    )
    tokens = await verified_user(client, "chen", daughter)
    mother = await add_person(app, "陈母", region="420500", birth=date(1935, 1, 1))
    resp = await authorize(client, tokens, mother, quota_fen=20_000)
    auth = await resp.json()
    who = {"code": institution["code"], "secret": institution["secret"]}

    async def settle(i: int) -> int:
        body = settlement_body(f"Q{i}", "9.99", psn_no=mother.psn_no)
        return (await post_signed(client, "/settlements", body, **who)).status

    async def revoke() -> int:
        await asyncio.sleep(0.01)
        path = f"/api/v1/mutual-aid/authorizations/{auth['id']}"
        return (await client.delete(path, headers=bearer(tokens))).status

    statuses = await asyncio.gather(*(settle(i) for i in range(30)), revoke())
    assert statuses == [201] * 30 + [204]
    account = await Account.get(person_id=daughter.id)
    paid = sum(
        await Settlement.all().values_list("acct_mulaid_pay_fen", flat=True)  # type: ignore[arg-type]
    )
    assert account.balance_fen + paid == 100_000  # every 分 either spent or returned
    assert (await Authorization.get(id=auth["id"])).quota_remaining_fen == 0
    assert await ledger.verify_account(account.id)
