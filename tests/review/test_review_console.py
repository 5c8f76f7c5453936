"""The demo-only static-token JSON API (/api/v1/review): token auth, the queue (people
masked), reject with a reason, the push-queue view. The console itself: tests/console/."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import Application, ApplicationEvent, Notice, User
from tests.factories import bearer, error_of, verified_user

REVIEWER = {"Authorization": "Bearer demo-reviewer-token"}


async def _pending_application(app: Any, *, name: str = "李秀英", state: str = "pending_review") -> Application:
    pii = app[keys.pii_key]
    binder, _ = await User.get_or_create(openid="demo-rev-binder")
    return await Application.create(
        binder=binder,
        member_name_enc=pii.encrypt(name, purpose="name"),
        member_name_hash=pii.blind_index(name, purpose="name"),
        id_type="hk_mo_tw_residence_permit",
        id_number_enc=pii.encrypt("810000199003071234", purpose="id_number"),
        id_hash="h-" + name,
        relationship="parent",
        reason="为了方便家人代办医保业务",
        state=state,
        submitted_at=datetime.now(timezone.utc),
    )


async def test_console_requires_reviewer_token(client: TestClient) -> None:
    resp = await client.get("/api/v1/review/applications")
    assert resp.status == 401 and (await error_of(resp))["code"] == "UNAUTHORIZED"
    resp = await client.get("/api/v1/review/applications", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    page = await client.get("/review/")
    assert page.status == 200 and "材料审核" in await page.text()


async def test_queue_lists_pending_oldest_first_masked(client: TestClient, app) -> None:
    first = await _pending_application(app, name="李秀英")
    await _pending_application(app, name="张建国")
    await _pending_application(app, name="王芳", state="active")
    resp = await client.get("/api/v1/review/applications", headers=REVIEWER)
    body = await resp.json()
    assert body["total"] == 2
    assert [i["member_name"] for i in body["items"]] == ["李*英", "张*国"]
    detail = await (await client.get(f"/api/v1/review/applications/{first.id}", headers=REVIEWER)).json()
    assert detail["member"]["id_number"] == "8100**********1234" and detail["materials"] == []
    bad = await client.get("/api/v1/review/applications?limit=0", headers=REVIEWER)
    assert bad.status == 422
    missing = await client.get("/api/v1/review/applications/not-a-uuid", headers=REVIEWER)
    assert missing.status == 404


async def test_reject_needs_a_reason_and_records_materials_rejected(client: TestClient, app) -> None:
    application = await _pending_application(app)
    url = f"/api/v1/review/applications/{application.id}/decision"
    resp = await client.post(url, json={"decision": "reject"}, headers=REVIEWER)
    assert resp.status == 422 and (await error_of(resp))["fields"] == {"reason": "REQUIRED"}
    resp = await client.post(url, json={"decision": "reject", "reason": "户口本照片模糊"}, headers=REVIEWER)
    assert resp.status == 200
    assert (await resp.json())["state"] == "failed"
    await application.refresh_from_db()
    assert application.failure_code == "MATERIALS_REJECTED" and "户口本照片模糊" in application.failure_message
    event = await ApplicationEvent.get(application_id=application.id)
    assert (event.from_state, event.to_state, event.actor) == ("pending_review", "failed", "reviewer:token:demo")
    again = await client.post(url, json={"decision": "reject", "reason": "x"}, headers=REVIEWER)
    assert again.status == 409 and (await error_of(again))["code"] == "APPLICATION_STATE_CONFLICT"


async def test_notice_queue_counts(client: TestClient) -> None:
    for i, state in enumerate(["pending", "pending", "failed"]):
        await Notice.create(kind="family_settlement", dedupe_key=f"k{i}", title="家人就医结算通知", state=state, errcode=43101 if state == "failed" else None)
    body = await (await client.get("/api/v1/review/notices/queue", headers=REVIEWER)).json()
    assert body["counts"] == {"pending": 2, "failed": 1}
    assert body["recent_failures"][0]["errcode"] == 43101
    assert body["oldest_pending_seconds"] is not None


async def test_reviewer_sees_materials_and_approves_or_rejects_over_http(client: TestClient, app) -> None:
    """The whole review path as the console drives it: queue → detail → material → decision."""
    from tests.family.helpers import ALICE, HK, load_registry, prepare, submit

    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, HK, "spouse", kinds=("travel_permit",))
    assert (await (await submit(client, h, app_id)).json())["state"] == "pending_review"

    queue = await (await client.get("/api/v1/review/applications", headers=REVIEWER)).json()
    assert [i["id"] for i in queue["items"]] == [app_id]
    detail = await (await client.get(f"/api/v1/review/applications/{app_id}", headers=REVIEWER)).json()
    material = detail["materials"][0]
    assert material["kind"] == "travel_permit"
    blob = await client.get(f"/api/v1/review/applications/{app_id}/materials/{material['id']}", headers=REVIEWER)
    assert blob.status == 200 and blob.content_type == "image/png" and (await blob.read()).startswith(b"\x89PNG")
    # the binder's token is not a reviewer's
    assert (await client.get(f"/api/v1/review/applications/{app_id}", headers=h)).status == 401

    url = f"/api/v1/review/applications/{app_id}/decision"
    resp = await client.post(url, json={"decision": "reject", "reason": "通行证照片反光"}, headers=REVIEWER)
    assert resp.status == 200 and (await resp.json())["state"] == "failed"
    seen = await (await client.get(f"/api/v1/family/applications/{app_id}", headers=h)).json()
    assert seen["failure"]["code"] == "MATERIALS_REJECTED" and "通行证照片反光" in seen["failure"]["message"]

    app_id = await prepare(client, h, HK, "spouse", kinds=("travel_permit",))
    await submit(client, h, app_id)
    resp = await client.post(f"/api/v1/review/applications/{app_id}/decision", json={"decision": "approve"}, headers=REVIEWER)
    assert resp.status == 200 and (await resp.json())["state"] == "active"
    members = (await (await client.get("/api/v1/family/members", headers=h)).json())["items"]
    assert len(members) == 1 and members[0]["member"]["name"] == "黄*明"
