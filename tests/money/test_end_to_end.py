"""End to end: authorize → signed settlement → split, ledger, summaries, notices → reversal."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain import ledger, vouchers
from server.domain.models import Account, LedgerEntry, Notice, Settlement
from server.domain.settlements import queries as settlements
from tests.factories import add_binding, add_person, authorize, bearer, post_signed, verified_user
from tests.money.conftest import settlement_body


async def _balance(person) -> int:
    return (await Account.get(person_id=person.id)).balance_fen


async def test_authorize_settle_reverse(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "李秀英", balance_fen=10_000)  # 100.00 own
    daughter = await add_person(
        app, "张伟", birth=__import__("datetime").date(1990, 3, 7), balance_fen=50_000
    )
    husband = await add_person(app, "张建国", balance_fen=30_000)
    daughter_tokens = await verified_user(client, "daughter", daughter)
    husband_tokens = await verified_user(client, "husband", husband)
    member_tokens = await verified_user(client, "granny", member)
    binder_tokens = await verified_user(
        client, "binder", await add_person(app, "王芳", balance_fen=0)
    )
    await add_binding(binder_tokens["user"]["id"], member)

    resp = await authorize(client, daughter_tokens, member, "parent")
    assert resp.status == 201, await resp.text()
    first = await resp.json()
    resp = await authorize(client, husband_tokens, member, "spouse")
    assert resp.status == 201, await resp.text()

    listed = await (
        await client.get("/api/v1/mutual-aid/authorizations", headers=bearer(daughter_tokens))
    ).json()
    assert [a["id"] for a in listed["items"]] == [first["id"]]
    assert listed["items"][0]["member"]["name"] == "李*英"
    received = await (
        await client.get("/api/v1/mutual-aid/authorizations", headers=bearer(member_tokens))
    ).json()
    assert [r["authorizer"]["name"] for r in received["received"]] == ["张*", "张*国"]

    # 个人负担 700.00: own 100.00, then the daughter's 500.00, then the husband's 100.00.
    body = settlement_body("S0001", "700.00", psn_no=member.psn_no)
    resp = await post_signed(
        client, "/settlements", body, code=institution["code"], secret=institution["secret"]
    )
    assert resp.status == 201, await resp.text()
    split = await resp.json()
    assert split["acct_pay"] == "100.00"
    assert split["acct_mulaid_pay"] == "600.00"
    assert split["mulaid_detail"] == [
        {"authorizer": "张*", "amount": "500.00"},
        {"authorizer": "张*国", "amount": "100.00"},
    ]
    assert split["psn_cash_pay"] == "0.00"
    assert split["balc"] == "0.00"
    assert (await _balance(member), await _balance(daughter), await _balance(husband)) == (
        0,
        0,
        20_000,
    )
    for p in (member, daughter, husband):
        assert await ledger.verify_account((await Account.get(person_id=p.id)).id)

    # notices: the binder, both authorizers (their own amounts), the member's own user
    notices = {
        (n.kind, n.recipient_id): n
        for n in await Notice.filter(settlement__setl_id="S0001")  # type: ignore[attr-defined]
    }
    assert set(notices) == {
        ("family_settlement", binder_tokens["user"]["id"]),
        ("mutual_aid_debit", daughter_tokens["user"]["id"]),
        ("mutual_aid_debit", husband_tokens["user"]["id"]),
        ("member_settlement", member_tokens["user"]["id"]),
    }
    family = notices[("family_settlement", binder_tokens["user"]["id"])]
    assert family.state == "pending" and family.title == "家人就医结算通知"
    assert family.data["member_name"] == "李*英"
    assert family.data["institution"] == "测试人民医院"
    assert family.data["psn_part_fen"] == 70_000 and family.data["mulaid_fen"] == 60_000
    assert notices[("mutual_aid_debit", husband_tokens["user"]["id"])].data["mulaid_fen"] == 10_000
    mine = await (await client.get("/api/v1/notices", headers=bearer(daughter_tokens))).json()
    assert [(n["kind"], n["data"]["mulaid_fen"]) for n in mine["items"]] == [
        ("mutual_aid_debit", 50_000)
    ]

    # the binder's view (issue #3 serves it at GET /family/members/{id}/settlements)
    items, total = await settlements.list_for_member(member.id, 2026)
    assert total == 1 and items[0]["setl_id"] == "S0001" and items[0]["acct_mulaid_pay"] == 60_000
    summary = await settlements.yearly_summary(member.id, 2026)
    assert (
        summary["count"] == 1
        and summary["acct_pay"] == 10_000
        and summary["acct_mulaid_pay"] == 60_000
    )
    assert summary["hifp_pay"] == 10_000 and summary["balance"] == 0

    # reversal: every 分 back where it came from, once; correcting notices
    path = "/settlements/S0001/reversal"
    resp = await post_signed(
        client,
        path,
        {"setl_id": "S0001", "reason": "退费"},
        code=institution["code"],
        secret=institution["secret"],
    )
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "reversed"
    assert (await _balance(member), await _balance(daughter), await _balance(husband)) == (
        10_000,
        50_000,
        30_000,
    )
    resp = await post_signed(
        client, path, {"setl_id": "S0001"}, code=institution["code"], secret=institution["secret"]
    )
    assert resp.status == 200
    assert (await _balance(member), await _balance(daughter), await _balance(husband)) == (
        10_000,
        50_000,
        30_000,
    )
    assert await LedgerEntry.filter(kind="reversal").count() == 3
    reversal = await Notice.filter(kind="reversal").values_list("recipient_id", flat=True)
    assert sorted(reversal) == sorted(uid for _, uid in notices)
    assert (await settlements.yearly_summary(member.id, 2026))["count"] == 0
    assert (await Settlement.get(setl_id="S0001")).state == "reversed"


async def test_settlement_by_voucher_pays_as_the_member(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "李秀英", balance_fen=5_000)
    binder = await verified_user(client, "binder", await add_person(app, "王芳"))
    redis = app[keys.redis_key]
    token, _ = await vouchers.issue(
        redis, member_id=member.id, shown_by_user_id=binder["user"]["id"]
    )
    resp = await post_signed(client, "/vouchers/verify", {"qr_token": token}, **_who(institution))
    assert resp.status == 200, await resp.text()
    who = await resp.json()
    assert who["name"] == "李秀英" and who["psn_no"] == member.psn_no and "*" in who["id_number"]
    resp = await post_signed(client, "/vouchers/verify", {"qr_token": token}, **_who(institution))
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "VOUCHER_INVALID"

    token, _ = await vouchers.issue(
        redis, member_id=member.id, shown_by_user_id=binder["user"]["id"]
    )
    body = settlement_body("S0002", "80.00", qr_token=token)
    resp = await post_signed(client, "/settlements", body, **_who(institution))
    assert resp.status == 201, await resp.text()
    out = await resp.json()
    assert (out["acct_pay"], out["psn_cash_pay"], out["balc"]) == ("50.00", "30.00", "0.00")
    # the hospital retries with the same body: the token is spent, the answer is the same
    resp = await post_signed(client, "/settlements", body, **_who(institution))
    assert resp.status == 200 and await resp.json() == out
    assert await LedgerEntry.filter(kind="settlement").count() == 1


def _who(institution: dict[str, str]) -> dict[str, str]:
    return {"code": institution["code"], "secret": institution["secret"]}
