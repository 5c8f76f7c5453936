"""The binder sees a member's settlement through the binding flow's endpoints (issue #3)."""

from __future__ import annotations

from datetime import datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.clock import SHANGHAI
from tests.factories import add_binding, add_person, bearer, post_signed, verified_user
from tests.money.conftest import settlement_body


def _has_route(app: web.Application, name: str) -> bool:
    for resource in app.router.resources():
        sub = getattr(resource, "_app", None)
        if isinstance(sub, web.Application) and name in sub.router.named_resources():
            return True
    return False


async def test_binder_sees_the_settlement(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    if not _has_route(app, "family_member_settlements"):
        pytest.skip("GET /family/members/{id}/settlements arrives with issue #3")
    member = await add_person(app, "李秀英", balance_fen=10_000)
    binder = await verified_user(client, "binder", await add_person(app, "王芳"))
    binding = await add_binding(binder["user"]["id"], member)
    # the member's history before the binding's day stays theirs (issue #17 finding 7)
    now = datetime.now(SHANGHAI)
    if (now.month, now.day) == (1, 1):
        pytest.skip("on 1 January the year holds nothing before the binding's day")
    year = now.year
    earlier = settlement_body(
        "S0", "12.00", psn_no=member.psn_no, setl_time=f"{year}-01-01T09:00:00+08:00"
    )
    body = settlement_body(
        "S1", "30.00", psn_no=member.psn_no, setl_time=datetime.now(SHANGHAI).isoformat()
    )
    for b in (earlier, body):
        resp = await post_signed(
            client, "/settlements", b, code=institution["code"], secret=institution["secret"]
        )
        assert resp.status == 201
    path = f"/api/v1/family/members/{binding.id}"
    listed = await (
        await client.get(path + f"/settlements?year={year}", headers=bearer(binder))
    ).json()
    assert listed["total"] == 1
    assert listed["items"][0]["setl_id"] == "S1" and listed["items"][0]["acct_pay"] == 3_000
    summary = await (await client.get(path + f"/summary?year={year}", headers=bearer(binder))).json()
    assert summary["balance"] == 5_800 and summary["acct_pay"] == 3_000 and summary["count"] == 1
    assert listed["visible_from"] and listed["next_cursor"] is None
