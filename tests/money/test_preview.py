"""2206 预结算 through the signed API: the answer a 2207 would give, applying nothing.

* a preview stores nothing, sends no notice, leaves the 医保码 usable;
* property (hypothesis): over random families, balances, amounts, 政策范围内 breakdowns and
  visit types, the preview equals what the 2207 that follows does;
* PostgreSQL: a preview answers while a settlement holds the family's row locks, holds no
  lock after its answer, and previews running among settlements never hold them up.
"""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tortoise.transactions import in_transaction

from server import keys
from server.domain import ledger, vouchers
from server.domain.models import Account, Authorization, LedgerEntry, Notice, Settlement
from server.domain.settlements.request import fen_to_yuan
from tests import conftest
from tests.factories import (
    add_binding,
    add_person,
    authorize,
    error_of,
    post_signed,
    verified_user,
)
from tests.money.conftest import settlement_body

pg_only = pytest.mark.skipif(not conftest.PG_URL, reason="row locks need PostgreSQL")


def _who(institution: dict[str, str]) -> dict[str, str]:
    return {"code": institution["code"], "secret": institution["secret"]}


async def _counts() -> tuple[int, int, int]:
    return (
        await Settlement.all().count(),
        await Notice.all().count(),
        await LedgerEntry.all().count(),
    )


@pytest.fixture
async def family(client: TestClient, app: web.Application) -> dict[str, Any]:
    """李秀英 (Wuhan) with a binder and three authorizers: two in Wuhan, one in Chengdu
    through a cross-province 共济额度; 王兰 (Gansu) with one authorizer in Lanzhou."""
    member = await add_person(app, "李秀英", balance_fen=10_000)
    son = await add_person(app, "张伟", birth=date(1990, 3, 7), balance_fen=20_000)
    tokens = await verified_user(client, "son", son)
    await add_binding(tokens["user"]["id"], member)
    assert (await authorize(client, tokens, member)).status == 201
    husband = await add_person(app, "张建国", birth=date(1956, 1, 1), balance_fen=5_000)
    assert (await authorize(client, await verified_user(client, "h", husband), member, "spouse")).status == 201
    daughter = await add_person(app, "张静", region="510100", birth=date(1988, 2, 14), balance_fen=90_000)
    resp = await authorize(client, await verified_user(client, "d", daughter), member, quota_fen=30_000)
    assert resp.status == 201, await resp.text()
    gansu = await add_person(app, "王兰", region="620100", balance_fen=3_000)
    brother = await add_person(app, "王军", region="620100", birth=date(1985, 5, 5), balance_fen=8_000)
    assert (await authorize(client, await verified_user(client, "b", brother), gansu, "parent")).status == 201
    return {
        "wuhan": (member, [member, son, husband, daughter]),
        "gansu": (gansu, [gansu, brother]),
        "quota": (await resp.json())["id"],
        "n": [0],
    }


async def test_a_preview_applies_nothing(
    client: TestClient, app: web.Application, institution: dict[str, str], family: dict[str, Any]
) -> None:
    member, people = family["wuhan"]
    before = await _counts()
    balances = [(await Account.get(person_id=p.id)).balance_fen for p in people]
    token, _ = await vouchers.issue(app[keys.redis_key], member_id=member.id, shown_by_user_id=1)
    body = settlement_body("S1", "250.00", qr_token=token)
    resp = await post_signed(client, "/settlements/preview", body, **_who(institution))
    assert resp.status == 200, await resp.text()
    preview = await resp.json()
    assert preview["state"] == "preview"
    assert (preview["acct_pay"], preview["acct_mulaid_pay"], preview["psn_cash_pay"]) == (
        "100.00",
        "150.00",
        "0.00",
    )
    assert [d["amount"] for d in preview["mulaid_detail"]] == ["150.00"]
    assert preview["balc"] == "0.00" and "balance" not in str(preview["mulaid_detail"])
    assert await _counts() == before  # no settlement, no notice, no ledger entry
    assert [(await Account.get(person_id=p.id)).balance_fen for p in people] == balances
    # the 医保码 was looked at, not used: the 2207 that follows consumes it
    resp = await post_signed(client, "/settlements", body, **_who(institution))
    assert resp.status == 201
    settled = await resp.json()
    assert {**settled, "state": "preview"} == preview
    resp = await post_signed(client, "/settlements/preview", body, **_who(institution))
    assert resp.status == 200 and await resp.json() == settled  # a known setl_id: its answer
    other = dict(body, psn_part_amt="1.00", medfee_sumamt="101.00")
    resp = await post_signed(client, "/settlements/preview", other, **_who(institution))
    assert resp.status == 409 and (await error_of(resp))["code"] == "SETTLEMENT_CONFLICT"
    # by psn_no / certno too; and the refusals a 2207 would give
    for ident in ({"psn_no": member.psn_no}, {"certno": member.id_number}):
        resp = await post_signed(
            client, "/settlements/preview", settlement_body("S2", "1.00", **ident), **_who(institution)
        )
        assert resp.status == 200 and (await resp.json())["psn_no"] == member.psn_no
    for ident, status, code in (
        ({"psn_no": "P404"}, 404, "MEMBER_NOT_FOUND"),
        ({"qr_token": token}, 409, "VOUCHER_INVALID"),
    ):
        resp = await post_signed(
            client, "/settlements/preview", settlement_body("S3", "1.00", **ident), **_who(institution)
        )
        assert resp.status == status and (await error_of(resp))["code"] == code


def _body(setl_id: str, psn_no: str, psn_part: int, parts: tuple[int, int, int], inpatient: bool) -> dict[str, Any]:
    """A consistent 2207 body with (全自费, 超限价, 先行自付) inside ``psn_part`` (or none)."""
    body = settlement_body(
        setl_id, fen_to_yuan(psn_part), psn_no=psn_no, med_type="21" if inpatient else "11"
    )
    if parts != (-1, -1, -1):
        fulamt, overlmt, pre = parts
        medfee = int(Decimal(body["medfee_sumamt"]) * 100)
        body.update(
            fulamt_ownpay_amt=fen_to_yuan(fulamt),
            overlmt_selfpay=fen_to_yuan(overlmt),
            preselfpay_amt=fen_to_yuan(pre),
            inscp_scp_amt=fen_to_yuan(medfee - fulamt - overlmt - pre),
        )
    return body


@st.composite
def visits(draw: st.DrawFn) -> tuple[int, tuple[int, int, int], bool]:
    psn_part = draw(st.integers(0, 200_000))
    if draw(st.booleans()):
        fulamt = draw(st.integers(0, psn_part))
        overlmt = draw(st.integers(0, psn_part - fulamt))
        pre = draw(st.integers(0, psn_part - fulamt - overlmt))
        parts = (fulamt, overlmt, pre)
    else:
        parts = (-1, -1, -1)  # no breakdown: everything in scope
    return psn_part, parts, draw(st.booleans())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(["wuhan", "gansu"]),
    balances=st.lists(st.integers(0, 60_000), min_size=4, max_size=4),
    quota=st.integers(0, 30_000),
    visit=visits(),
)
async def test_preview_equals_the_settlement_that_follows(
    client: TestClient,
    institution: dict[str, str],
    family: dict[str, Any],
    where: str,
    balances: list[int],
    quota: int,
    visit: tuple[int, tuple[int, int, int], bool],
) -> None:
    member, people = family[where]
    for person, balance in zip(people, balances):
        await Account.filter(person_id=person.id).update(balance_fen=balance)
    await Authorization.filter(id=family["quota"]).update(quota_remaining_fen=quota)
    family["n"][0] += 1
    psn_part, parts, inpatient = visit
    body = _body(f"P{family['n'][0]}", member.psn_no, psn_part, parts, inpatient)
    before = await _counts()
    resp = await post_signed(client, "/settlements/preview", body, **_who(institution))
    assert resp.status == 200, await resp.text()
    preview = await resp.json()
    assert await _counts() == before
    resp = await post_signed(client, "/settlements", body, **_who(institution))
    assert resp.status == 201, await resp.text()
    settled = await resp.json()
    assert settled["state"] == "settled" and preview["state"] == "preview"
    assert {**preview, "state": "settled"} == settled
    own_after = (await Account.get(person_id=member.id)).balance_fen
    assert fen_to_yuan(own_after) == preview["balc"]


@pg_only
async def test_a_preview_never_waits_for_a_settlements_locks(
    client: TestClient, institution: dict[str, str], family: dict[str, Any]
) -> None:
    member, people = family["wuhan"]
    body = settlement_body("L1", "30.00", psn_no=member.psn_no)
    ids = [p.id for p in people]
    async with in_transaction() as conn:
        # what a 2207 in flight holds: every account of the family, FOR UPDATE
        await conn.execute_query(
            "SELECT id FROM accounts WHERE person_id = ANY($1::int[]) ORDER BY id FOR UPDATE", [ids]
        )
        resp = await asyncio.wait_for(
            post_signed(client, "/settlements/preview", body, **_who(institution)), timeout=10
        )
        assert resp.status == 200 and (await resp.json())["acct_pay"] == "30.00"
    resp = await post_signed(client, "/settlements/preview", body, **_who(institution))
    assert resp.status == 200
    # and after its answer it holds nothing: every row can be locked at once without waiting
    async with in_transaction() as conn:
        rows = await conn.execute_query_dict(
            "SELECT id FROM accounts WHERE person_id = ANY($1::int[]) FOR UPDATE NOWAIT", [ids]
        )
        assert len(rows) == len(ids)
        await conn.execute_query(
            "SELECT id FROM authorizations WHERE id = $1 FOR UPDATE NOWAIT", [family["quota"]]
        )


@pg_only
async def test_previews_among_settlements_never_hold_them_up(
    client: TestClient, institution: dict[str, str], family: dict[str, Any]
) -> None:
    member, people = family["wuhan"]
    start = sum([(await Account.get(person_id=p.id)).balance_fen for p in people])
    parts = [500 + 97 * i for i in range(30)]

    async def settle(i: int) -> int:
        body = settlement_body(f"C{i}", fen_to_yuan(parts[i]), psn_no=member.psn_no)
        return (await post_signed(client, "/settlements", body, **_who(institution))).status

    async def preview(i: int) -> int:
        body = settlement_body(f"V{i}", fen_to_yuan(parts[i % len(parts)]), psn_no=member.psn_no)
        return (await post_signed(client, "/settlements/preview", body, **_who(institution))).status

    jobs = [settle(i) for i in range(len(parts))] + [preview(i) for i in range(60)]
    statuses = await asyncio.wait_for(asyncio.gather(*jobs), timeout=60)
    assert statuses == [201] * len(parts) + [200] * 60
    after = [(await Account.get(person_id=p.id)).balance_fen for p in people]
    paid = sum(
        r["acct_pay_fen"] + r["acct_mulaid_pay_fen"]
        for r in await Settlement.all().values("acct_pay_fen", "acct_mulaid_pay_fen")
    )
    quota = (await Authorization.get(id=family["quota"])).quota_remaining_fen or 0
    assert sum(after) + quota + paid == start + 30_000  # every 分 accounted for
    assert await Settlement.all().count() == len(parts)
    for p in people:
        assert await ledger.verify_account((await Account.get(person_id=p.id)).id)
