"""A real settlement through the hospital webhook, its notices delivered by the worker."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from fakes.wechat import FakeWeChatState
from server.domain.models import Notice
from server.push.receipts import on_template_send_finished
from server.push.recipients import remember_follower
from tests.factories import add_binding, add_person, authorize, bearer, post_signed, verified_user
from tests.money.conftest import institution, settlement_body  # noqa: F401 (fixture)
from tests.push.factories import worker

TPL_MUTUAL = "DEMO_MP_MUTUAL_AID_DEBIT"


async def test_settlement_notices_reach_each_recipient_by_their_channel(
    client: TestClient,
    app: web.Application,
    institution: dict[str, str],  # noqa: F811
    wechat_state: FakeWeChatState,
) -> None:
    member = await add_person(app, "李秀英", balance_fen=10_000)
    daughter = await add_person(app, "张伟", balance_fen=50_000)
    member_tokens = await verified_user(client, "granny", member)
    daughter_tokens = await verified_user(client, "daughter", daughter)
    binder_tokens = await verified_user(client, "binder", await add_person(app, "王芳"))
    await add_binding(binder_tokens["user"]["id"], member)
    assert (await authorize(client, daughter_tokens, member, "parent")).status == 201

    # the binder follows the official account (bot subscribe event); the daughter accepted
    # one subscribe message in the mini-program; the member did neither
    await remember_follower(oa_openid="oa-binder", unionid="union-binder", subscribed=True)
    resp = await client.post(
        "/api/v1/notices/subscriptions",
        json={"results": {TPL_MUTUAL: "accept"}},
        headers=bearer(daughter_tokens),
    )
    assert resp.status == 200

    body = settlement_body("S0777", "300.00", psn_no=member.psn_no)
    resp = await post_signed(
        client, "/settlements", body, code=institution["code"], secret=institution["secret"]
    )
    assert resp.status == 201, await resp.text()

    w = worker(app)
    try:
        await w.drain(timeout=10)
    finally:
        await w.close()

    [template] = wechat_state.sent_messages(kind="template")
    assert template["openid"] == "oa-binder"
    assert template["data"]["thing1"] == "李*英" and template["data"]["time3"] == "2026-11-20 10:30"
    assert template["data"]["amount5"] == "300.00元"
    [subscribe] = wechat_state.sent_messages(kind="subscribe")
    assert subscribe["openid"] == "demo-daughter" and subscribe["template_id"] == TPL_MUTUAL
    assert subscribe["data"]["amount3"] == "200.00元"  # her own share: 300.00 − 100.00 own

    async def my_notices(tokens: dict) -> list[dict]:
        resp = await client.get("/api/v1/notices", headers=bearer(tokens))
        return (await resp.json())["items"]

    [binder_notice] = await my_notices(binder_tokens)
    assert binder_notice["state"] == "sent"
    [daughter_notice] = await my_notices(daughter_tokens)
    assert daughter_notice["state"] == "delivered"
    [member_notice] = await my_notices(member_tokens)
    assert member_notice["state"] == "undeliverable"
    assert member_notice["reason"] == "用户未关注公众号且未订阅消息"

    # the bot receives TEMPLATESENDJOBFINISH for the binder's message
    assert await on_template_send_finished(msgid=template["msgid"], status="success")
    [binder_notice] = await my_notices(binder_tokens)
    assert binder_notice["state"] == "delivered"
    assert await Notice.filter(state="pending").count() == 0
