"""3201-style 对账 through the signed API: an institution's Asia/Shanghai day, its own only.

2207 events are dated by ``setl_time`` (the institution's clock), 2208 events by when we
received the reversal; totals in the 2207 names; items paged by cursor.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.clock import SHANGHAI
from tests.factories import add_institution, add_person, error_of, post_signed
from tests.money.conftest import get_signed, settlement_body

D1 = "2026-11-20"


@pytest.fixture
async def member(app: web.Application) -> Any:
    return await add_person(app, "李秀英", balance_fen=1_000_000)


async def _settle(client: TestClient, who: dict[str, str], setl_id: str, psn_part: str, psn_no: str, setl_time: str) -> dict[str, Any]:
    body = settlement_body(setl_id, psn_part, psn_no=psn_no, setl_time=setl_time)
    resp = await post_signed(client, "/settlements", body, **who)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_a_day_of_one_institution(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    hospital = {"code": institution["code"], "secret": institution["secret"]}
    pharmacy = {"code": "Y20002", "secret": await add_institution(app, "Y20002", "另一家药店")}
    times = {
        "S1": "2026-11-19T16:00:00+00:00",  # 2026-11-20 00:00 in Beijing: D1
        "S2": "2026-11-20T10:30:00+08:00",
        "S3": "2026-11-20T23:59:59",  # no offset: Beijing time, D1
        "S4": "2026-11-20T16:00:00Z",  # 2026-11-21 00:00 in Beijing: the next day
    }
    for n, (setl_id, t) in enumerate(times.items(), 1):
        await _settle(client, hospital, setl_id, f"{n}.25", member.psn_no, t)
    await _settle(client, pharmacy, "S2", "99.00", member.psn_no, times["S2"])  # its own S2
    resp = await post_signed(client, "/settlements/S2/reversal", {"setl_id": "S2"}, **hospital)
    reversed_at = datetime.fromisoformat((await resp.json())["reversed_at"])

    resp = await get_signed(client, f"/reconciliation?date={D1}", **hospital)
    assert resp.status == 200, await resp.text()
    day = await resp.json()
    assert (day["date"], day["institution"], day["closed"]) == (D1, institution["code"], True)
    # settlement_body: 统筹 100.00 each; 个人负担 1.25 + 2.25 + 3.25 from the own account
    assert day["settlements"] == {
        "count": 3,
        "medfee_sumamt": "306.75",
        "hifp_pay": "300.00",
        "fund_pay_sumamt": "300.00",
        "psn_part_amt": "6.75",
        "acct_pay": "6.75",
        "acct_mulaid_pay": "0.00",
        "psn_cash_pay": "0.00",
    }
    assert day["reversals"]["count"] == 0 and day["net"] == day["settlements"]
    assert [(i["type"], i["setl_id"], i["state"]) for i in day["items"]] == [
        ("2207", "S1", "settled"),
        ("2207", "S2", "reversed"),
        ("2207", "S3", "settled"),
    ]
    assert day["items"][1]["psn_no"] == member.psn_no and day["next_cursor"] is None
    assert sum(Decimal(i["acct_pay"]) for i in day["items"]) == Decimal(day["settlements"]["acct_pay"])

    # the reversal belongs to the day it was received
    received = reversed_at.astimezone(SHANGHAI).date().isoformat()
    day = await (await get_signed(client, f"/reconciliation?date={received}", **hospital)).json()
    assert day["reversals"]["count"] == 1 and day["reversals"]["psn_part_amt"] == "2.25"
    assert [(i["type"], i["setl_id"]) for i in day["items"] if i["type"] == "2208"] == [("2208", "S2")]
    assert day["closed"] is False

    # the pharmacy sees its own S2 only
    day = await (await get_signed(client, f"/reconciliation?date={D1}", **pharmacy)).json()
    assert [(i["setl_id"], i["psn_part_amt"]) for i in day["items"]] == [("S2", "99.00")]
    assert day["settlements"]["count"] == 1 and day["reversals"]["count"] == 0


async def test_large_days_page_by_cursor(
    client: TestClient, institution: dict[str, str], member: Any
) -> None:
    who = {"code": institution["code"], "secret": institution["secret"]}
    now = datetime.now(SHANGHAI).replace(microsecond=0)
    for i in range(9):
        await _settle(client, who, f"T{i}", "1.00", member.psn_no, now.isoformat())
    for i in (2, 5, 7):
        resp = await post_signed(client, f"/settlements/T{i}/reversal", {"setl_id": f"T{i}"}, **who)
        assert resp.status == 200
    today = now.date().isoformat()
    full = await (await get_signed(client, f"/reconciliation?date={today}", **who)).json()
    if full["reversals"]["count"] != 3:  # midnight passed between settling and reversing
        pytest.skip("the reversals fell on the next day")
    assert len(full["items"]) == 12 and full["net"]["count"] == 6

    seen: list[tuple[str, str]] = []
    cursor = ""
    for _ in range(10):
        resp = await get_signed(
            client, f"/reconciliation?date={today}&limit=5" + (f"&cursor={cursor}" if cursor else ""), **who
        )
        page = await resp.json()
        assert ("settlements" in page) == (not cursor)  # the totals come with the first page
        assert len(page["items"]) <= 5
        seen += [(i["type"], i["setl_id"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [(i["type"], i["setl_id"]) for i in full["items"]]
    assert len(set(seen)) == 12


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("date=2026-13-01", "date", "INVALID_FORMAT"),
        ("date=2026-1-1", "date", "INVALID_FORMAT"),
        ("date=٢٠٢٦-11-20", "date", "INVALID_FORMAT"),
        ("date=1999-12-31", "date", "OUT_OF_RANGE"),
        (f"date={D1}&cursor=2207-x", "cursor", "INVALID_CURSOR"),
        (f"date={D1}&limit=0", "limit", "INVALID"),  # pydantic's greater_than_equal
        ("", "date", "REQUIRED"),
    ],
)
async def test_bad_queries_are_422(
    client: TestClient, institution: dict[str, str], query: str, field: str, code: str
) -> None:
    who = {"code": institution["code"], "secret": institution["secret"]}
    resp = await get_signed(client, f"/reconciliation?{query}", **who)
    assert resp.status == 422, await resp.text()
    assert (await error_of(resp))["fields"] == {field: code}


async def test_unsigned_is_refused(client: TestClient, institution: dict[str, str]) -> None:
    resp = await client.get(f"/api/v1/institution/reconciliation?date={D1}")
    assert resp.status == 401 and (await error_of(resp))["code"] == "SIGNATURE_MISSING"


async def test_the_bureaus_cli_flags_what_differs(
    client: TestClient,
    app: web.Application,
    institution: dict[str, str],
    member: Any,
    settings: Any,
    tmp_path: Any,
) -> None:
    import csv

    from tests.money.conftest import run_cli

    hospital = {"code": institution["code"], "secret": institution["secret"]}
    pharmacy = {"code": "Y20002", "secret": await add_institution(app, "Y20002", "另一家药店")}
    for n, setl_id in enumerate(("S1", "S2", "S3"), 1):
        await _settle(client, hospital, setl_id, f"{n}.25", member.psn_no, f"{D1}T1{n}:00:00+08:00")
    await _settle(client, pharmacy, "S1", "9.00", member.psn_no, f"{D1}T09:00:00+08:00")
    theirs = tmp_path / "theirs.csv"
    theirs.write_text(
        "type,setl_id,setl_time,medfee_sumamt,psn_part_amt,acct_pay\n"
        f"2207,S1,{D1} 11:00:00,101.25,1.25,1.25\n"  # the same instant, written their way
        "2207,S2,,102.25,2.25,2.00\n"  # they think 2.00 came from the account
        "2207,S9,,1.00,1.00,1.00\n"  # we never received it
        "2207,S8,,1٠.00,1.00,1.00\n",  # not an amount
        encoding="utf-8",
    )
    out = tmp_path / "out.csv"
    rc, stdout, stderr = await run_cli(
        settings, "reconcile", "--date", D1, "--institution", institution["code"],
        "--against", str(theirs), "--out", str(out),
    )
    assert rc == 1, stderr  # differences found
    assert "2207: 3 medfee_sumamt=306.75" in stdout and "3 rows differ" not in stdout
    rows = {r["setl_id"]: r for r in csv.DictReader(out.read_text("utf-8").splitlines())}
    assert {k: r["check"] for k, r in rows.items()} == {
        "S1": "ok",
        "S2": "mismatch",
        "S3": "only_ours",
        "S9": "only_theirs",
        "S8": "invalid",
    }
    assert rows["S2"]["difference"] == "acct_pay 2.25≠2.00"
    assert rows["S1"]["psn_no"] == member.psn_no and rows["S3"]["acct_pay"] == "3.25"
    assert "4 rows differ" in stdout

    # all institutions, no comparison: every event of the day, exit 0
    rc, stdout, stderr = await run_cli(settings, "reconcile", "--date", D1, "--out", str(out))
    assert rc == 0, stderr
    rows_all = list(csv.DictReader(out.read_text("utf-8").splitlines()))
    assert sorted((r["institution"], r["setl_id"]) for r in rows_all) == [
        (institution["code"], "S1"), (institution["code"], "S2"), (institution["code"], "S3"),
        ("Y20002", "S1"),
    ]
    rc, _, stderr = await run_cli(settings, "reconcile", "--date", D1, "--against", str(theirs))
    assert rc == 1 and "INSTITUTION_REQUIRED" in stderr
    rc, _, stderr = await run_cli(settings, "reconcile", "--date", "2026-02-30")
    assert rc == 1 and "VALIDATION_FAILED" in stderr
