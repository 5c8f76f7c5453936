"""Policy-driven split rules through the webhook: inpatient by region, quotas, reversal targets."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain import ledger
from server.domain.clock import cn_today
from server.domain.models import Account, Authorization
from tests.factories import add_person, authorize, bearer, post_signed, verified_user
from tests.money.conftest import settlement_body

HANGZHOU, CHENGDU, YICHANG = "330100", "510100", "420500"


async def _balance(person: Any) -> int:
    return (await Account.get(person_id=person.id)).balance_fen


async def test_zhejiang_excludes_inpatient_mutual_aid(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "赵母", region=HANGZHOU, balance_fen=1_000)
    son = await add_person(app, "赵强", region=HANGZHOU, birth=date(1985, 9, 9), balance_fen=50_000)
    assert (await authorize(client, await verified_user(client, "zhao", son), member)).status == 201
    who = {"code": institution["code"], "secret": institution["secret"]}
    inpatient = settlement_body("S21", "100.00", psn_no=member.psn_no, med_type="21")
    out = await (await post_signed(client, "/settlements", inpatient, **who)).json()
    assert (out["acct_pay"], out["acct_mulaid_pay"], out["psn_cash_pay"]) == (
        "10.00",
        "0.00",
        "90.00",
    )
    outpatient = settlement_body("S11", "100.00", psn_no=member.psn_no, med_type="11")
    out = await (await post_signed(client, "/settlements", outpatient, **who)).json()
    assert (out["acct_pay"], out["acct_mulaid_pay"], out["psn_cash_pay"]) == (
        "0.00",
        "100.00",
        "0.00",
    )
    assert await _balance(son) == 40_000


async def _cross_province(
    client: TestClient, app: web.Application, balance: int, quota: int
) -> tuple[Any, dict[str, Any], Any, dict[str, Any]]:
    """A daughter in Chengdu authorizes her mother in Hubei with a 共济额度."""
    daughter = await add_person(
        app, "陈静", region=CHENGDU, birth=date(1960, 2, 14), balance_fen=balance
    )
    tokens = await verified_user(client, "chen", daughter)
    mother = await add_person(app, "陈母", region=YICHANG, birth=date(1935, 1, 1))
    auth = await (await authorize(client, tokens, mother, quota_fen=quota)).json()
    return daughter, tokens, mother, auth


async def test_cross_province_pays_from_the_quota_only(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    daughter, tokens, mother, auth = await _cross_province(client, app, 100_000, 5_000)
    who = {"code": institution["code"], "secret": institution["secret"]}
    out = await (
        await post_signed(
            client, "/settlements", settlement_body("S1", "80.00", psn_no=mother.psn_no), **who
        )
    ).json()
    assert (out["acct_mulaid_pay"], out["psn_cash_pay"]) == ("50.00", "30.00")
    assert await _balance(daughter) == 95_000  # only the quota set aside was spent
    assert (await Authorization.get(id=auth["id"])).quota_remaining_fen == 0
    # reversal refills the quota; once the relationship ends, the quota returns to her balance
    assert (
        await post_signed(client, "/settlements/S1/reversal", {"setl_id": "S1"}, **who)
    ).status == 200
    assert (await Authorization.get(id=auth["id"])).quota_remaining_fen == 5_000
    resp = await client.delete(
        f"/api/v1/mutual-aid/authorizations/{auth['id']}", headers=bearer(tokens)
    )
    assert resp.status == 204
    assert await _balance(daughter) == 100_000
    assert await ledger.verify_account((await Account.get(person_id=daughter.id)).id)


async def test_reversal_after_the_quota_ended_returns_to_the_balance(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    daughter, tokens, mother, auth = await _cross_province(client, app, 10_000, 4_000)
    who = {"code": institution["code"], "secret": institution["secret"]}
    await post_signed(
        client, "/settlements", settlement_body("S1", "30.00", psn_no=mother.psn_no), **who
    )
    assert (
        await client.delete(
            f"/api/v1/mutual-aid/authorizations/{auth['id']}", headers=bearer(tokens)
        )
    ).status == 204
    assert await _balance(daughter) == 7_000  # 1 000 of the quota came back
    assert (
        await post_signed(client, "/settlements/S1/reversal", {"setl_id": "S1"}, **who)
    ).status == 200
    assert await _balance(daughter) == 10_000
    assert await ledger.verify_account((await Account.get(person_id=daughter.id)).id)


async def test_revoked_authorizer_no_longer_pays(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "王母", region=YICHANG)
    son = await add_person(app, "王芳", region=YICHANG, birth=date(1992, 8, 15), balance_fen=10_000)
    tokens = await verified_user(client, "wang", son)
    auth = await (await authorize(client, tokens, member)).json()
    await client.delete(f"/api/v1/mutual-aid/authorizations/{auth['id']}", headers=bearer(tokens))
    who = {"code": institution["code"], "secret": institution["secret"]}
    out = await (
        await post_signed(
            client, "/settlements", settlement_body("S1", "30.00", psn_no=member.psn_no), **who
        )
    ).json()
    assert (out["acct_mulaid_pay"], out["psn_cash_pay"]) == ("0.00", "30.00")
    assert await _balance(son) == 10_000


async def test_yearly_totals_per_person(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "李秀英", balance_fen=5_000)
    son = await add_person(app, "张伟", birth=date(1990, 3, 7), balance_fen=20_000)
    assert (await authorize(client, await verified_user(client, "son", son), member)).status == 201
    who = {"code": institution["code"], "secret": institution["secret"]}
    for i, part in enumerate(("30.00", "40.00")):
        await post_signed(
            client, "/settlements", settlement_body(f"S{i}", part, psn_no=member.psn_no), **who
        )
    year = cn_today().year
    assert await ledger.yearly_totals(son.id, year) == {"import": 20_000, "mutual_aid": -2_000}
    assert await ledger.yearly_totals(member.id, year) == {"import": 5_000, "settlement": -5_000}
