"""The whole 亲情账户 flow as the mini-program walks it (issue #3 "Done when")."""

from __future__ import annotations

import hashlib

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain import vouchers
from server.domain.models import Application, ApplicationEvent, CommitmentSignature, InsuredPerson
from tests.factories import bearer, error_of, login
from tests.family.helpers import ALICE, MOTHER, load_registry, png, upload


async def test_end_to_end_binding_flow(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))

    me = await (await client.get("/api/v1/me", headers=h)).json()
    assert me["realname_verified"] is False

    # real-name verification of the binder
    name, id_type, id_number = ALICE
    resp = await client.post(
        "/api/v1/me/realname",
        json={"name": name, "id_type": id_type, "id_number": id_number, "face_token": "ok-alice"},
        headers=h,
    )
    assert resp.status == 200, await resp.text()
    me = await resp.json()
    assert (
        me["realname_verified"] is True
        and me["name"] == "张*"
        and me["id_number"] == "4201**********1232"
    )
    assert me["insurance"]["voucher_activated"] is True

    # precheck: nothing blocks, a 户口本 page and the member's face are needed
    m_name, m_type, m_number = MOTHER
    member = {"name": m_name, "id_type": m_type, "id_number": m_number, "relationship": "parent"}
    pre = await (await client.post("/api/v1/family/precheck", json=member, headers=h)).json()
    assert pre["ok"] is True and pre["blocking"] == []
    # one of: a 户口本 page, or the 身份证 front and back (API.md v1.1)
    assert pre["required_materials"] == [
        {
            "kinds": ["household_register", "id_card_front+id_card_back"],
            "alternatives": [["household_register"], ["id_card_front", "id_card_back"]],
            "label": "户口本或身份证人像面和身份证国徽面",
        }
    ]
    assert pre["face_check_required"] is True
    assert await Application.all().count() == 0  # the precheck stores nothing

    # application
    resp = await client.post("/api/v1/family/applications", json=member, headers=h)
    assert resp.status == 201, await resp.text()
    application = await resp.json()
    app_id = application["id"]
    assert application["state"] == "draft"
    assert application["member"] == {
        "name": "李*英",
        "id_type": "resident_id",
        "id_number": "4201**********2242",
    }
    assert application["reason"] == "为了方便家人代办医保业务"

    # material
    image = png(2, 2)
    resp = await upload(client, h, app_id, "household_register", image)
    assert resp.status == 201, await resp.text()
    material = await resp.json()
    assert material["sha256"] == hashlib.sha256(image).hexdigest() and material["size"] == len(
        image
    )
    got = await client.get(
        f"/api/v1/family/applications/{app_id}/materials/{material['id']}", headers=h
    )
    assert got.status == 200 and got.content_type == "image/png"
    state = (await (await client.get(f"/api/v1/family/applications/{app_id}", headers=h)).json())[
        "state"
    ]
    assert state == "materials"

    # 个人承诺书
    current = await (await client.get("/api/v1/commitments/current", headers=h)).json()
    assert current["sha256"] == hashlib.sha256(current["text"].encode()).hexdigest()
    resp = await client.post(
        f"/api/v1/family/applications/{app_id}/commitment",
        json={"version": current["version"], "sha256": current["sha256"]},
        headers={**h, "User-Agent": "miniprogram-test/1.0"},
    )
    assert resp.status == 201, await resp.text()
    sig = await CommitmentSignature.get(application_id=app_id)
    assert (sig.version, sig.text_sha256, sig.user_id) == (current["version"], current["sha256"], 1)
    assert sig.user_agent == "miniprogram-test/1.0" and sig.ip == "127.0.0.1"

    # submit
    resp = await client.post(
        f"/api/v1/family/applications/{app_id}/submit",
        json={"member_face_token": "ok-mum"},
        headers=h,
    )
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert (
        done["state"] == "active" and done["binding_id"] and done["submitted_at"].endswith("+08:00")
    )
    assert [m["kind"] for m in done["materials"]] == ["household_register"]
    assert done["commitment"]["version"] == current["version"]

    # the member is listed, masked
    members = (await (await client.get("/api/v1/family/members", headers=h)).json())["items"]
    assert len(members) == 1
    binding_id = members[0]["id"]
    assert binding_id == done["binding_id"]
    assert members[0]["member"] == {"name": "李*英", "id_number": "4201**********2242"}
    assert members[0]["relationship"] == "parent" and members[0]["insurance"]["status"] == "active"

    # the dynamic 医保码: pays as the member, once
    resp = await client.get(f"/api/v1/family/members/{binding_id}/voucher", headers=h)
    assert resp.status == 200
    voucher = await resp.json()
    assert voucher["qr_token"].startswith("v1.") and voucher["ttl_seconds"] == 60
    claim = await vouchers.consume(app[keys.redis_key], voucher["qr_token"])
    assert claim.binding_id == binding_id and claim.shown_by_user_id == 1
    person = await InsuredPerson.get(id=claim.member_id)
    assert (
        app[keys.pii_key].decrypt(person.name_enc, purpose="name") == "李秀英"
    )  # pays as the member
    assert (await error_of_consume(app, voucher["qr_token"])) == "VOUCHER_INVALID"

    # spending (empty until settlements exist) and summary
    resp = await client.get(f"/api/v1/family/members/{binding_id}/settlements?year=2026", headers=h)
    listed = await resp.json()
    assert resp.status == 200 and listed["items"] == [] and listed["total"] == 0
    assert listed["next_cursor"] is None and listed["visible_from"]
    resp = await client.get(f"/api/v1/family/members/{binding_id}/summary", headers=h)
    assert resp.status == 200
    summary = await resp.json()
    assert summary["balance"] == 120000 and summary["insurance"]["insurance_type"] == "employee"

    # unbind
    resp = await client.delete(f"/api/v1/family/members/{binding_id}", headers=h)
    assert resp.status == 204
    assert (await (await client.get("/api/v1/family/members", headers=h)).json())["items"] == []
    final = await (await client.get(f"/api/v1/family/applications/{app_id}", headers=h)).json()
    assert final["state"] == "unbound"
    resp = await client.get(f"/api/v1/family/members/{binding_id}/voucher", headers=h)
    assert (await error_of(resp))["code"] == "NOT_FOUND"

    # every transition recorded with actor and time
    events = await ApplicationEvent.filter(application_id=app_id).order_by("id")
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, "draft"),
        ("draft", "materials"),
        ("materials", "commitment_signed"),
        ("commitment_signed", "submitted"),
        ("submitted", "active"),
        ("active", "unbound"),
    ]
    assert events[0].actor == "user:1" and events[4].actor == "system" and all(e.at for e in events)


async def error_of_consume(app: web.Application, token: str) -> str:
    from server.domain.errors import DomainError

    try:
        await vouchers.consume(app[keys.redis_key], token)
    except DomainError as err:
        return err.code
    return "consumed"
