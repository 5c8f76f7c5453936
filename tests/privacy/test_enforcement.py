"""A use without its consent is refused with 403 ``CONSENT_REQUIRED`` naming the purpose
(issue #12; PIPL art. 14, 15, 29), through the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.clock import SHANGHAI
from server.domain.models import Application, Notice, User
from tests.factories import (
    add_binding,
    add_person,
    bearer,
    consent_all,
    error_of,
    login,
    post_signed,
    verified_user,
)
from tests.family.helpers import ALICE, MOTHER, load_registry, upload
from tests.money.conftest import settlement_body

REALNAME = {"name": ALICE[0], "id_type": ALICE[1], "id_number": ALICE[2], "face_token": "ok-1"}
MEMBER = {"name": MOTHER[0], "id_type": MOTHER[1], "id_number": MOTHER[2], "relationship": "parent"}


async def refused(resp: Any, purpose: str) -> dict[str, Any]:
    assert resp.status == 403, await resp.text()
    err = await error_of(resp)
    assert err["code"] == "CONSENT_REQUIRED" and err["purpose"] == purpose, err
    assert err["fields"] == {"purpose": "CONSENT_REQUIRED"} and err["fix"]
    return err


async def test_face_check_needs_consent_to_face(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    tokens = await login(client, "alice", consent=False)
    h = bearer(tokens)
    await refused(await client.post("/api/v1/me/realname", json=REALNAME, headers=h), "face")
    await consent_all(client, tokens, ["id_documents", "notices"])  # not face
    await refused(await client.post("/api/v1/me/realname", json=REALNAME, headers=h), "face")
    assert not (await User.get(id=tokens["user"]["id"])).realname_verified  # nothing done
    await consent_all(client, tokens, ["face"])
    resp = await client.post("/api/v1/me/realname", json=REALNAME, headers=h)
    assert resp.status == 200 and (await resp.json())["realname_verified"] is True


async def test_applications_and_uploads_need_consent_to_id_documents(app: web.Application, client: TestClient) -> None:
    await load_registry(app)
    tokens = await login(client, "alice", consent=False)
    h = bearer(tokens)
    await consent_all(client, tokens, ["face"])
    assert (await client.post("/api/v1/me/realname", json=REALNAME, headers=h)).status == 200
    await refused(await client.post("/api/v1/family/applications", json=MEMBER, headers=h), "id_documents")
    assert await Application.all().count() == 0

    await consent_all(client, tokens, ["id_documents"])
    created = await client.post("/api/v1/family/applications", json=MEMBER, headers=h)
    assert created.status == 201
    app_id = (await created.json())["id"]
    assert (await client.delete("/api/v1/privacy/consents/id_documents", headers=h)).status == 200
    await refused(await upload(client, h, app_id), "id_documents")

    # the member's face check at submit needs the caller's consent to face
    assert (await client.delete("/api/v1/privacy/consents/face", headers=h)).status == 200
    submit = await client.post(
        f"/api/v1/family/applications/{app_id}/submit", json={"member_face_token": "ok-2"}, headers=h
    )
    await refused(submit, "face")
    assert (await Application.get(id=app_id)).state == "draft"


async def test_a_member_who_withdraws_medical_records_stops_the_binder(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "李秀英", balance_fen=10_000)
    binder = await verified_user(client, "binder", await add_person(app, "王芳"))
    binding = await add_binding(binder["user"]["id"], member)
    resp = await post_signed(
        client,
        "/settlements",
        # (after the binding's day: a binder never sees the member's earlier history)
        settlement_body("S1", "30.00", psn_no=member.psn_no, setl_time=datetime.now(SHANGHAI).isoformat()),
        code=institution["code"],
        secret=institution["secret"],
    )
    assert resp.status == 201
    path = f"/api/v1/family/members/{binding.id}"
    h = bearer(binder)
    # a member without an account never withdrew: the binder sees their spending
    assert (await client.get(path + "/settlements?year=2026", headers=h)).status == 200

    mother = await verified_user(client, "mother", member)
    assert (await client.get(path + "/summary?year=2026", headers=h)).status == 200
    assert (await client.delete("/api/v1/privacy/consents/medical_records", headers=bearer(mother))).status == 200
    for what in ("/settlements?year=2026", "/summary?year=2026"):
        err = await refused(await client.get(path + what, headers=h), "medical_records")
        assert "已撤回" in err["message"]
    # the binding itself and the 医保码 are not affected
    assert (await client.get(path + "/voucher", headers=h)).status == 200
    await consent_all(client, mother, ["medical_records"])
    listed = await (await client.get(path + "/settlements?year=2026", headers=h)).json()
    assert listed["total"] == 1


async def test_withdrawing_notices_cancels_pending_ones_and_stops_new_ones(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "李秀英", balance_fen=10_000)
    binder = await verified_user(client, "binder", await add_person(app, "王芳"))
    other = await verified_user(client, "other", await add_person(app, "张伟"))
    await add_binding(binder["user"]["id"], member)
    await add_binding(other["user"]["id"], member, relationship="parent")

    async def settle(setl_id: str) -> None:
        body = settlement_body(setl_id, "10.00", psn_no=member.psn_no)
        resp = await post_signed(client, "/settlements", body, code=institution["code"], secret=institution["secret"])
        assert resp.status == 201, await resp.text()

    await settle("S1")
    uid = binder["user"]["id"]
    assert await Notice.filter(recipient_id=uid, state="pending").count() == 1
    resp = await client.delete("/api/v1/privacy/consents/notices", headers=bearer(binder))
    assert resp.status == 200 and "取消" in (await resp.json())["effect"]
    mine = await Notice.filter(recipient_id=uid)
    assert [(n.state, n.reason) for n in mine] == [("cancelled", "用户已撤回通知授权")]
    listed = await (await client.get("/api/v1/notices", headers=bearer(binder))).json()
    assert [n["state"] for n in listed["items"]] == ["cancelled"]

    await settle("S2")
    assert await Notice.filter(recipient_id=uid).count() == 1  # no new notice for them
    assert await Notice.filter(recipient_id=other["user"]["id"]).count() == 2  # others still get theirs

    await consent_all(client, binder, ["notices"])  # consenting again: notices again
    await settle("S3")
    assert await Notice.filter(recipient_id=uid, state="pending").count() == 1
