"""The signed institution webhook: every refusal, 422s at the edge, idempotency by setl_id."""

from __future__ import annotations

import json
import time
from datetime import date
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import Account, LedgerEntry, Notice, Settlement
from tests.factories import (
    add_binding,
    add_person,
    error_of,
    post_signed,
    signed_headers,
    verified_user,
)
from tests.money.conftest import settlement_body


async def _nothing_recorded(member: Any, balance: int) -> None:
    assert await Settlement.all().count() == 0
    assert await Notice.all().count() == 0
    assert (await Account.get(person_id=member.id)).balance_fen == balance


@pytest.fixture
def settings(make_settings: Any) -> Any:
    """Institution rows are cached 5 s by default; these tests re-key and deactivate at once."""
    return make_settings(**{"institution_api.cache_seconds": 0})


@pytest.fixture
async def member(app: web.Application) -> Any:
    return await add_person(app, "李秀英", balance_fen=10_000)


async def _raw(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return await client.post("/api/v1/institution/settlements", data=body, headers=headers)


async def test_signature_refusals_record_nothing(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    code, secret = institution["code"], institution["secret"]
    body = json.dumps(settlement_body("S1", "10.00", psn_no=member.psn_no)).encode()

    resp = await _raw(client, body, {"Content-Type": "application/json"})
    assert resp.status == 401 and (await error_of(resp))["code"] == "SIGNATURE_MISSING"

    headers = signed_headers(code, "wrong-secret", body)
    resp = await _raw(client, body, headers)
    assert resp.status == 401 and (await error_of(resp))["code"] == "SIGNATURE_INVALID"

    headers = signed_headers(code, secret, body)
    tampered = body.replace(b"10.00", b"11.00")
    resp = await _raw(client, tampered, headers)
    assert resp.status == 401 and (await error_of(resp))["code"] == "SIGNATURE_INVALID"

    for skew in (-301, 301):
        headers = signed_headers(code, secret, body, timestamp=int(time.time()) + skew)
        resp = await _raw(client, body, headers)
        assert resp.status == 401 and (await error_of(resp))["code"] == "TIMESTAMP_EXPIRED"

    resp = await _raw(client, body, signed_headers("NOPE", secret, body))
    assert resp.status == 401 and (await error_of(resp))["code"] == "INSTITUTION_UNKNOWN"

    resp = await _raw(client, body, signed_headers(code, secret, body, nonce="short"))
    assert resp.status == 401 and (await error_of(resp))["code"] == "NONCE_INVALID"
    await _nothing_recorded(member, 10_000)

    # a forged request does not burn the nonce; the genuine one goes through once
    nonce = "nonce-123456789"
    resp = await _raw(client, body, signed_headers(code, "forged", body, nonce=nonce))
    assert resp.status == 401
    headers = signed_headers(code, secret, body, nonce=nonce)
    resp = await _raw(client, body, headers)
    assert resp.status == 201, await resp.text()
    resp = await _raw(client, body, headers)
    assert resp.status == 401 and (await error_of(resp))["code"] == "NONCE_REPLAYED"
    assert await Settlement.all().count() == 1
    assert await LedgerEntry.filter(kind="settlement").count() == 1


async def test_a_deactivated_or_rekeyed_institution_is_refused(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    from server.domain.institutions import add_institution
    from server.domain.models import Institution

    body = settlement_body("S1", "10.00", psn_no=member.psn_no)
    new_secret = await add_institution(
        code=institution["code"], name="测试人民医院", region_code="420100", pii=app[keys.pii_key]
    )
    resp = await post_signed(
        client, "/settlements", body, code=institution["code"], secret=institution["secret"]
    )
    assert resp.status == 401 and (await error_of(resp))["code"] == "SIGNATURE_INVALID"
    await Institution.filter(code=institution["code"]).update(active=False)
    resp = await post_signed(
        client, "/settlements", body, code=institution["code"], secret=new_secret
    )
    assert resp.status == 401 and (await error_of(resp))["code"] == "INSTITUTION_UNKNOWN"
    await _nothing_recorded(member, 10_000)


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"psn_part_amt": 10.5}, "psn_part_amt", "INVALID"),  # a JSON number, not a string
        ({"psn_part_amt": "10.005"}, "psn_part_amt", "INVALID_FORMAT"),  # three decimals
        ({"psn_part_amt": "-1.00"}, "psn_part_amt", "INVALID_FORMAT"),
        ({"psn_part_amt": "1e3"}, "psn_part_amt", "INVALID_FORMAT"),
        ({"hifp_pay": "01.00"}, "hifp_pay", "INVALID_FORMAT"),
        ({"medfee_sumamt": "999.99"}, "medfee_sumamt", "AMOUNTS_INCONSISTENT"),
        ({"hifp_pay": "120.00"}, "hifp_pay", "AMOUNTS_INCONSISTENT"),  # above fund_pay_sumamt
        ({"med_type": "门诊"}, "med_type", "INVALID_FORMAT"),
        ({"setl_time": "yesterday noon"}, "setl_time", "INVALID_FORMAT"),
        ({"setl_id": "bad id"}, "setl_id", "INVALID_FORMAT"),
        ({"psn_no": None}, "qr_token", "ONE_OF_REQUIRED"),
        ({"certno": "420102195806122242"}, "qr_token", "ONE_OF_REQUIRED"),  # two identifiers
    ],
)
async def test_invalid_bodies_are_422_and_change_nothing(
    client: TestClient,
    institution: dict[str, str],
    member: Any,
    change: dict[str, Any],
    field: str,
    code: str,
) -> None:
    body = settlement_body("S1", "10.00", psn_no=member.psn_no)
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    resp = await post_signed(
        client, "/settlements", body, code=institution["code"], secret=institution["secret"]
    )
    assert resp.status == 422, await resp.text()
    err = await error_of(resp)
    assert err["fields"] == {field: code}
    await _nothing_recorded(member, 10_000)


async def test_malformed_json_is_400(client: TestClient, institution: dict[str, str]) -> None:
    headers = signed_headers(institution["code"], institution["secret"], b"{not json")
    resp = await _raw(client, b"{not json", headers)
    assert resp.status == 400 and (await error_of(resp))["code"] == "MALFORMED_JSON"


async def test_idempotent_by_setl_id(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    who = {"code": institution["code"], "secret": institution["secret"]}
    body = settlement_body("S1", "30.00", psn_no=member.psn_no)
    first = await post_signed(client, "/settlements", body, **who)
    assert first.status == 201
    again = await post_signed(client, "/settlements", body, **who)
    assert again.status == 200 and await again.json() == await first.json()
    assert (await Account.get(person_id=member.id)).balance_fen == 7_000
    assert await Notice.all().count() == 0  # the member has no user and no binder here

    other = dict(body, psn_part_amt="20.00", medfee_sumamt="120.00")
    resp = await post_signed(client, "/settlements", other, **who)
    assert resp.status == 409 and (await error_of(resp))["code"] == "SETTLEMENT_CONFLICT"
    assert (await Account.get(person_id=member.id)).balance_fen == 7_000
    assert await Settlement.all().count() == 1
    # another institution's numbering is its own: tests/money/test_settlement_findings.py


async def test_unknown_member_and_suspended_member(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    who = {"code": institution["code"], "secret": institution["secret"]}
    resp = await post_signed(
        client, "/settlements", settlement_body("S1", "1.00", psn_no="P404"), **who
    )
    assert resp.status == 404 and (await error_of(resp))["code"] == "MEMBER_NOT_FOUND"
    resp = await post_signed(
        client, "/settlements", settlement_body("S1", "1.00", qr_token="v1.nope"), **who
    )
    assert resp.status == 409 and (await error_of(resp))["code"] == "VOUCHER_INVALID"
    suspended = await add_person(app, "孙磊", balance_fen=1_000, status="suspended")
    resp = await post_signed(
        client, "/settlements", settlement_body("S1", "1.00", certno=suspended.id_number), **who
    )
    assert resp.status == 409 and (await error_of(resp))["code"] == "MEMBER_NOT_INSURED"
    assert await Settlement.all().count() == 0


async def test_reversal_refusals(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    from tests.factories import add_institution

    who = {"code": institution["code"], "secret": institution["secret"]}
    resp = await post_signed(client, "/settlements/S404/reversal", {"setl_id": "S404"}, **who)
    assert resp.status == 404 and (await error_of(resp))["code"] == "SETTLEMENT_NOT_FOUND"
    assert (
        await post_signed(
            client, "/settlements", settlement_body("S1", "30.00", psn_no=member.psn_no), **who
        )
    ).status == 201
    resp = await post_signed(client, "/settlements/S1/reversal", {"setl_id": "S2"}, **who)
    assert resp.status == 422
    secret2 = await add_institution(app, "H20002", "另一家药店")
    resp = await post_signed(
        client, "/settlements/S1/reversal", {"setl_id": "S1"}, code="H20002", secret=secret2
    )
    assert resp.status == 404
    assert (await Account.get(person_id=member.id)).balance_fen == 7_000


async def test_pooled_fund_never_touches_accounts(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    who = {"code": institution["code"], "secret": institution["secret"]}
    body = settlement_body("S1", "0.00", hifp_pay="5000.00", psn_no=member.psn_no)
    resp = await post_signed(client, "/settlements", body, **who)
    out = await resp.json()
    assert (out["acct_pay"], out["acct_mulaid_pay"], out["psn_cash_pay"]) == (
        "0.00",
        "0.00",
        "0.00",
    )
    assert (await Account.get(person_id=member.id)).balance_fen == 10_000
    assert await LedgerEntry.filter(settlement_id__not_isnull=True).count() == 0


async def test_member_without_account_pays_from_authorizer_then_cash(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    from tests.factories import authorize

    child = await add_person(app, "张小明", birth=date(2018, 5, 20), insurance_type="resident")
    father = await add_person(app, "张伟", birth=date(1990, 3, 7), balance_fen=2_000)
    tokens = await verified_user(client, "father", father)
    await add_binding(tokens["user"]["id"], child, "child")
    assert (await authorize(client, tokens, child, "child")).status == 201
    who = {"code": institution["code"], "secret": institution["secret"]}
    resp = await post_signed(
        client, "/settlements", settlement_body("S1", "35.50", certno=child.id_number), **who
    )
    out = await resp.json()
    assert (out["acct_pay"], out["acct_mulaid_pay"], out["psn_cash_pay"], out["balc"]) == (
        "0.00",
        "20.00",
        "15.50",
        "0.00",
    )
    kinds = sorted(
        await Notice.filter(recipient_id=tokens["user"]["id"]).values_list("kind", flat=True)
    )
    assert kinds == ["family_settlement", "mutual_aid_debit"]
