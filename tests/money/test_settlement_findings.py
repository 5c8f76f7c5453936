"""Issue #17 findings in the settlement webhook, each through the signed API on both backends:

* 9 — amounts and codes are ASCII only (``"1٠.00"`` was settled as 10.00 yuan, ``med_type``
  ``"١١"`` was stored);
* 13 — ``setl_id`` is the institution's own numbering: unique per institution, so another
  institution can neither learn nor squat it;
* 8 — ``setl_time`` at the ends of the calendar is a clear 422, not a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import Account, Notice, Settlement
from tests.factories import add_institution, add_person, error_of, post_signed
from tests.money.conftest import settlement_body

ARABIC_INDIC_ONE_ZERO = "1٠"  # "10" with an Arabic-Indic zero
DEVANAGARI_ONE_ONE = "११"


@pytest.fixture(autouse=True)
def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.WARNING, logger="server.errors"):
        yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an unhandled error"


@pytest.fixture
async def member(app: web.Application) -> Any:
    return await add_person(app, "李秀英", balance_fen=10_000)


async def _nothing_recorded(member: Any) -> None:
    assert await Settlement.all().count() == 0
    assert await Notice.all().count() == 0
    assert (await Account.get(person_id=member.id)).balance_fen == 10_000


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # "1٠.00" was 10.00 yuan to Decimal; the 2207 totals below still add up
        (
            {"psn_part_amt": f"{ARABIC_INDIC_ONE_ZERO}.00", "medfee_sumamt": "110.00"},
            "psn_part_amt",
        ),
        ({"hifp_pay": "١٠٠.00", "fund_pay_sumamt": "100.00"}, "hifp_pay"),
        ({"medfee_sumamt": "1१0.00"}, "medfee_sumamt"),
        ({"psn_part_amt": "10.٠0"}, "psn_part_amt"),
        ({"inscp_scp_amt": "１10.00"}, "inscp_scp_amt"),  # a full-width digit
        ({"med_type": "١١"}, "med_type"),
        ({"med_type": DEVANAGARI_ONE_ONE}, "med_type"),
        ({"psn_no": "P١٢٣"}, "psn_no"),
        ({"mdtrt_id": "MD١"}, "mdtrt_id"),
    ],
)
async def test_non_ascii_digits_are_refused(
    client: TestClient, institution: dict[str, str], member: Any, change: dict[str, str], field: str
) -> None:
    body = settlement_body("S1", "10.00", psn_no=member.psn_no)
    body.update(change)
    for path in ("/settlements", "/settlements/preview"):
        resp = await post_signed(
            client, path, body, code=institution["code"], secret=institution["secret"]
        )
        assert resp.status == 422, await resp.text()
        assert (await error_of(resp))["fields"] == {field: "INVALID_FORMAT"}
    await _nothing_recorded(member)


def test_the_edge_parser_refuses_non_ascii_digits_too() -> None:
    """Below the schema (bench, CLI and tests call it directly): the same rule."""
    from server.domain.errors import DomainError
    from server.domain.settlements.request import parse_request, yuan_to_fen
    from server.http_errors import status_of

    for text in ("1٠.00", "١", "1.٠0", "１"):
        with pytest.raises(DomainError) as info:
            yuan_to_fen(text, "psn_part_amt")
        assert status_of(info.value) == 422
    body = settlement_body("S1", "10.00", psn_no="P1", med_type="١١")
    with pytest.raises(DomainError) as info:
        parse_request(body, institution_code="H1")
    assert info.value.fields == {"med_type": "INVALID_FORMAT"}


async def test_setl_id_is_unique_per_institution(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    hospital = {"code": institution["code"], "secret": institution["secret"]}
    pharmacy = {"code": "Y20002", "secret": await add_institution(app, "Y20002", "另一家药店")}
    other = await add_person(app, "王芳", balance_fen=5_000)

    first = await post_signed(
        client, "/settlements", settlement_body("S1", "30.00", psn_no=member.psn_no), **hospital
    )
    assert first.status == 201
    # the pharmacy's own S1 is its own settlement: no 409, nothing of the hospital's echoed
    mine = settlement_body("S1", "12.00", psn_no=other.psn_no)
    resp = await post_signed(client, "/settlements", mine, **pharmacy)
    assert resp.status == 201, await resp.text()
    out = await resp.json()
    assert (out["setl_id"], out["acct_pay"], out["psn_no"]) == ("S1", "12.00", other.psn_no)
    # the same body from the hospital (its S1 differs) is the hospital's conflict
    resp = await post_signed(client, "/settlements", mine, **hospital)
    assert resp.status == 409 and (await error_of(resp))["code"] == "SETTLEMENT_CONFLICT"
    # each replays its own
    resp = await post_signed(client, "/settlements", mine, **pharmacy)
    assert resp.status == 200 and await resp.json() == out
    assert await Settlement.all().count() == 2
    # and each reverses its own only
    resp = await post_signed(client, "/settlements/S1/reversal", {"setl_id": "S1"}, **pharmacy)
    assert resp.status == 200 and (await resp.json())["acct_pay"] == "12.00"
    assert (await Account.get(person_id=other.id)).balance_fen == 5_000
    assert (await Account.get(person_id=member.id)).balance_fen == 7_000
    states = dict(await Settlement.all().values_list("institution_id", "state"))
    assert states == {institution["code"]: "settled", "Y20002": "reversed"}


@pytest.mark.parametrize(
    "setl_time",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
        "0001-01-01T00:00:00",
        "1999-12-31T23:59:59+08:00",
        "2100-01-01T00:00:00+08:00",
    ],
)
async def test_setl_time_at_the_ends_of_the_calendar_is_422(
    client: TestClient, institution: dict[str, str], member: Any, setl_time: str
) -> None:
    body = settlement_body("S1", "10.00", psn_no=member.psn_no, setl_time=setl_time)
    for path in ("/settlements", "/settlements/preview"):
        resp = await post_signed(
            client, path, body, code=institution["code"], secret=institution["secret"]
        )
        assert resp.status == 422, await resp.text()
        assert (await error_of(resp))["fields"] == {"setl_time": "OUT_OF_RANGE"}
    await _nothing_recorded(member)
