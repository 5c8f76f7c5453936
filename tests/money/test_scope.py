"""共济 pays only the 政策范围内 part (SPEC.md "scope", seed 002), through the signed API.

The 2207 breakdown: 全自费 ``fulamt_ownpay_amt`` + 超限价 ``overlmt_selfpay`` + 先行自付
``preselfpay_amt`` + 符合范围 ``inscp_scp_amt`` = ``medfee_sumamt``. 全自费 and 超限价 are
outside the scope: the member's own account pays them where the region allows
(config/policy.toml ``own_account_out_of_scope``: nationally yes, Gansu no), else cash;
共济 never does.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import Account, Settlement
from tests.factories import add_person, authorize, error_of, post_signed, verified_user
from tests.money.conftest import settlement_body

# 统筹 100.00 + 个人负担 100.00 = 200.00, of which 全自费 30.00 and 超限价 10.00 are out of scope
BREAKDOWN = {
    "fulamt_ownpay_amt": "30.00",
    "overlmt_selfpay": "10.00",
    "preselfpay_amt": "5.00",
    "inscp_scp_amt": "155.00",
}


async def _family(client: TestClient, app: web.Application, region: str, own: int) -> Any:
    member = await add_person(app, "李秀英", region=region, balance_fen=own)
    son = await add_person(app, "张伟", region=region, birth=date(1990, 3, 7), balance_fen=100_000)
    assert (await authorize(client, await verified_user(client, "son", son), member)).status == 201
    return member, son


@pytest.mark.parametrize(
    ("region", "own", "split"),
    [
        # national policy: the own account may pay 全自费 and 超限价 — it covers those 40.00
        # first, then 10.00 in scope; 共济 pays the other 50.00 in scope
        ("420100", 5_000, ("50.00", "50.00", "0.00", "0.00")),
        # an empty own account: 共济 pays the 60.00 in scope, the 40.00 out of scope is cash
        ("420100", 0, ("0.00", "60.00", "40.00", "0.00")),
        # a rich own account pays everything it may: all 100.00
        ("420100", 20_000, ("100.00", "0.00", "0.00", "100.00")),
        # Gansu: the own account pays only in scope; 40.00 out of scope is cash regardless
        ("620100", 5_000, ("50.00", "10.00", "40.00", "0.00")),
        ("620100", 20_000, ("60.00", "0.00", "40.00", "140.00")),
    ],
)
async def test_mutual_aid_pays_only_in_scope(
    client: TestClient,
    app: web.Application,
    institution: dict[str, str],
    region: str,
    own: int,
    split: tuple[str, str, str, str],
) -> None:
    member, son = await _family(client, app, region, own)
    who = {"code": institution["code"], "secret": institution["secret"]}
    body = settlement_body("S1", "100.00", psn_no=member.psn_no, **BREAKDOWN)
    preview = await (await post_signed(client, "/settlements/preview", body, **who)).json()
    resp = await post_signed(client, "/settlements", body, **who)
    assert resp.status == 201, await resp.text()
    out = await resp.json()
    assert (out["acct_pay"], out["acct_mulaid_pay"], out["psn_cash_pay"], out["balc"]) == split
    assert {k: out[k] for k in BREAKDOWN} == BREAKDOWN  # echoed in the answer
    assert {**preview, "state": "settled"} == out
    # reversed: every 分 back where it came from
    resp = await post_signed(client, "/settlements/S1/reversal", {"setl_id": "S1"}, **who)
    assert resp.status == 200
    assert (await Account.get(person_id=member.id)).balance_fen == own
    assert (await Account.get(person_id=son.id)).balance_fen == 100_000


async def test_without_the_breakdown_everything_is_in_scope(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member, _ = await _family(client, app, "620100", 0)
    who = {"code": institution["code"], "secret": institution["secret"]}
    resp = await post_signed(
        client, "/settlements", settlement_body("S1", "100.00", psn_no=member.psn_no), **who
    )
    out = await resp.json()
    assert (out["acct_mulaid_pay"], out["psn_cash_pay"]) == ("100.00", "0.00")
    assert "fulamt_ownpay_amt" not in out


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        # the four do not add up to medfee_sumamt
        (
            {"inscp_scp_amt": "150.00"},
            {*BREAKDOWN, "medfee_sumamt"},
        ),
        # only 全自费 sent: the absent parts count 0, so the sum cannot hold
        (
            {"overlmt_selfpay": None, "preselfpay_amt": None, "inscp_scp_amt": None},
            {*BREAKDOWN, "medfee_sumamt"},
        ),
        # the fund pays inside 符合范围 only: 120.00 of fund but 符合范围 is 110.00
        (
            {"fulamt_ownpay_amt": "80.00", "inscp_scp_amt": "105.00"},
            {"fund_pay_sumamt", "inscp_scp_amt"},
        ),
    ],
)
async def test_inconsistent_breakdowns_are_422_naming_the_fields(
    client: TestClient,
    app: web.Application,
    institution: dict[str, str],
    change: dict[str, Any],
    fields: set[str],
) -> None:
    member, _ = await _family(client, app, "420100", 5_000)
    who = {"code": institution["code"], "secret": institution["secret"]}
    body = settlement_body("S1", "100.00", psn_no=member.psn_no, **BREAKDOWN)
    if "fund_pay_sumamt" in fields:
        body.update(hifp_pay="110.00", fund_pay_sumamt="110.00", psn_part_amt="90.00")
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    for path in ("/settlements", "/settlements/preview"):
        resp = await post_signed(client, path, body, **who)
        assert resp.status == 422, await resp.text()
        err = await error_of(resp)
        assert err["code"] == "AMOUNTS_INCONSISTENT"
        assert set(err["fields"]) == fields
        assert set(err["fields"].values()) == {"AMOUNTS_INCONSISTENT"}
    assert await Settlement.all().count() == 0
    assert (await Account.get(person_id=member.id)).balance_fen == 5_000
