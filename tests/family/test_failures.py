"""One test per binding failure code, each reached through the API (API.md, SPEC.md).

A submit the policy refuses answers 409 with the code and leaves the application
``failed`` with that code, message and fix, for the bot to explain later.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import Application, ApplicationEvent
from tests.factories import bearer, error_of, login, verified_user
from tests.family.conftest import FaceState
from tests.family.helpers import (
    ALICE,
    BABY,
    BOB,
    CAROL,
    DAUGHTER,
    FATHER,
    GRANDMA,
    HK,
    MOTHER,
    NEWBORN,
    SON,
    SUSPENDED,
    WIFE,
    bind,
    create,
    load_registry,
    prepare,
    sign,
    submit,
    upload,
)

SH = timezone(timedelta(hours=8))


async def failed_with(
    client: TestClient, h: dict[str, str], app_id: str, resp: Any, code: str
) -> dict[str, Any]:
    """The submit answered 409 ``code`` and the application stays failed with it."""
    assert resp.status == 409, await resp.text()
    err = await error_of(resp)
    assert err["code"] == code and err["fix"] and err["application_id"] == app_id, err
    app = await (await client.get(f"/api/v1/family/applications/{app_id}", headers=h)).json()
    assert app["state"] == "failed"
    assert app["failure"]["code"] == code and app["failure"]["message"] == err["message"]
    assert app["failure"]["fix"]
    return err


async def test_binder_not_verified(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await login(client, "nobody"))
    app_id = await prepare(client, h, MOTHER, "parent")
    await failed_with(client, h, app_id, await submit(client, h, app_id), "BINDER_NOT_VERIFIED")
    # a failed application is final: submitting it again is an illegal transition
    resp = await submit(client, h, app_id)
    err = await error_of(resp)
    assert (
        resp.status == 409
        and err["code"] == "APPLICATION_STATE_CONFLICT"
        and err["state"] == "failed"
    )
    event = await ApplicationEvent.filter(application_id=app_id, to_state="failed").first()
    assert event is not None and event.code == "BINDER_NOT_VERIFIED" and event.actor == "system"


async def test_info_mismatch(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    wrong_name = ("李秀华", MOTHER[1], MOTHER[2])
    app_id = await prepare(client, h, wrong_name, "parent")
    await failed_with(client, h, app_id, await submit(client, h, app_id), "INFO_MISMATCH")
    # not in the registry at all: the same answer
    from server.domain.identity import make_resident_id

    stranger = ("王五", "resident_id", make_resident_id("420102"))
    app_id = await prepare(client, h, stranger, "parent")
    await failed_with(client, h, app_id, await submit(client, h, app_id), "INFO_MISMATCH")


async def test_member_not_activated(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, GRANDMA, "parent")
    await failed_with(client, h, app_id, await submit(client, h, app_id), "MEMBER_NOT_ACTIVATED")


async def test_member_not_insured(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, SUSPENDED, "spouse")
    await failed_with(client, h, app_id, await submit(client, h, app_id), "MEMBER_NOT_INSURED")


async def test_system_busy_changes_nothing(
    face_client: TestClient, face_service: tuple[str, FaceState]
) -> None:
    client = face_client
    _, face = face_service
    await load_registry(client.server.app)  # type: ignore[arg-type]
    h = bearer(await verified_user(client, "alice", ALICE))  # through the HTTP face gateway
    assert face.calls[-1]["name"] == "张伟"
    app_id = await prepare(client, h, MOTHER, "parent")
    face.down = True
    resp = await submit(client, h, app_id)
    assert resp.status == 503 and resp.headers["Retry-After"] == "30"
    assert (await error_of(resp))["code"] == "SYSTEM_BUSY"
    app = await (await client.get(f"/api/v1/family/applications/{app_id}", headers=h)).json()
    assert app["state"] == "commitment_signed"  # nothing half-written: try again later
    event = await ApplicationEvent.filter(application_id=app_id, code="SYSTEM_BUSY").first()
    assert event is not None  # but the bot can still tell what happened
    face.down = False
    resp = await submit(client, h, app_id)
    assert resp.status == 200 and (await resp.json())["state"] == "active"
    # real-name verification says the same while the face service is down
    face.down = True
    h2 = bearer(await login(client, "bob"))
    resp = await client.post(
        "/api/v1/me/realname",
        json={"name": BOB[0], "id_type": BOB[1], "id_number": BOB[2], "face_token": "ok"},
        headers=h2,
    )
    assert resp.status == 503 and (await error_of(resp))["code"] == "SYSTEM_BUSY"


async def test_member_limit_reached(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    for person, rel in ((MOTHER, "parent"), (FATHER, "parent"), (WIFE, "spouse")):
        await bind(client, h, person, rel)
    for child in (SON, DAUGHTER):
        await bind(client, h, child, "child", kinds=("birth_certificate",))
    app_id = await prepare(client, h, BABY, "child", kinds=("birth_certificate",))
    err = await failed_with(
        client, h, app_id, await submit(client, h, app_id), "MEMBER_LIMIT_REACHED"
    )
    assert "5" in err["message"]
    # the precheck says it before anything is stored
    body = {
        "name": NEWBORN[0],
        "id_type": NEWBORN[1],
        "id_number": NEWBORN[2],
        "relationship": "child",
    }
    pre = await (await client.post("/api/v1/family/precheck", json=body, headers=h)).json()
    assert "MEMBER_LIMIT_REACHED" in [b["code"] for b in pre["blocking"]]


async def test_monthly_binder_limit_and_unbind_keeps_the_slot(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    service = app[keys.family_key]
    service.clock = lambda: datetime(2026, 11, 10, 12, tzinfo=SH)
    alice = bearer(await verified_user(client, "alice", ALICE))
    bob = bearer(await verified_user(client, "bob", BOB))
    carol = bearer(await verified_user(client, "carol", CAROL))
    first = await bind(client, alice, MOTHER, "parent")
    await bind(client, bob, MOTHER, "parent")
    app_id = await prepare(client, carol, MOTHER, "parent")
    await failed_with(
        client, carol, app_id, await submit(client, carol, app_id), "MONTHLY_BINDER_LIMIT"
    )

    # an unbind does not free the slot within the month (policy default)
    resp = await client.delete(f"/api/v1/family/members/{first['binding_id']}", headers=alice)
    assert resp.status == 204
    app_id = await prepare(client, carol, MOTHER, "parent")
    await failed_with(
        client, carol, app_id, await submit(client, carol, app_id), "MONTHLY_BINDER_LIMIT"
    )
    # the last second of the month (Asia/Shanghai) still counts; the next month is free
    service.clock = lambda: datetime(2026, 11, 30, 23, 59, 59, tzinfo=SH)
    app_id = await prepare(client, carol, MOTHER, "parent")
    await failed_with(
        client, carol, app_id, await submit(client, carol, app_id), "MONTHLY_BINDER_LIMIT"
    )
    service.clock = lambda: datetime(2026, 12, 1, 0, 0, 1, tzinfo=SH)
    await bind(client, carol, MOTHER, "parent")


async def test_relationship_not_allowed(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "grandparent")
    err = await failed_with(
        client, h, app_id, await submit(client, h, app_id), "RELATIONSHIP_NOT_ALLOWED"
    )
    assert "配偶、父母、子女" in err["message"]
    # a member under 16 can only be bound as a child, by a guardian
    app_id = await prepare(client, h, SON, "spouse", kinds=("birth_certificate",))
    await failed_with(
        client, h, app_id, await submit(client, h, app_id), "RELATIONSHIP_NOT_ALLOWED"
    )


async def test_minor_documents_missing(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, SON, "child", kinds=())
    await failed_with(client, h, app_id, await submit(client, h, app_id), "MINOR_DOCUMENTS_MISSING")
    # with a 户口本 page instead it works, and no face check is asked for a child
    app_id = await prepare(client, h, SON, "child", kinds=("household_register",))
    resp = await submit(client, h, app_id, face=None)
    assert resp.status == 200 and (await resp.json())["state"] == "active"


async def test_newborn_by_birth_certificate(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    # voucher not activated, but a minor's is activated by the guardian (policy)
    app_id = await prepare(client, h, NEWBORN, "child", kinds=("birth_certificate",))
    resp = await submit(client, h, app_id, face=None)
    assert resp.status == 200 and (await resp.json())["state"] == "active"


async def test_materials_missing_and_face_check_failed(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "parent", kinds=("id_card_front",))
    err = await failed_with(client, h, app_id, await submit(client, h, app_id), "MATERIALS_MISSING")
    assert "户口本" in err["message"]
    app_id = await prepare(client, h, MOTHER, "parent")
    await failed_with(
        client, h, app_id, await submit(client, h, app_id, face="bad-face"), "FACE_CHECK_FAILED"
    )
    app_id = await prepare(client, h, MOTHER, "parent")
    await failed_with(
        client, h, app_id, await submit(client, h, app_id, face=None), "FACE_CHECK_FAILED"
    )


async def test_materials_rejected_by_a_reviewer(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    service = app[keys.family_key]
    app_id = await prepare(client, h, HK, "spouse", kinds=("travel_permit",))
    resp = await submit(client, h, app_id)
    assert resp.status == 200 and (await resp.json())["state"] == "pending_review"
    # a pending application holds its slot: the same member cannot be added twice meanwhile
    again = await prepare(client, h, HK, "spouse", kinds=("travel_permit",))
    await failed_with(client, h, again, await submit(client, h, again), "ALREADY_BOUND")
    await service.decide_review(app_id, reviewer="r1", approve=False, detail="通行证照片反光。")
    app_json = await (await client.get(f"/api/v1/family/applications/{app_id}", headers=h)).json()
    assert app_json["state"] == "failed" and app_json["failure"]["code"] == "MATERIALS_REJECTED"
    assert "通行证照片反光" in app_json["failure"]["message"]
    event = await ApplicationEvent.filter(application_id=app_id, to_state="failed").first()
    assert event is not None and event.actor == "reviewer:r1"
    # approval makes a pending application effective
    app_id = await prepare(client, h, HK, "spouse", kinds=("travel_permit",))
    assert (await (await submit(client, h, app_id)).json())["state"] == "pending_review"
    approved = await service.decide_review(app_id, reviewer="r1", approve=True)
    assert approved["state"] == "active"
    members = (await (await client.get("/api/v1/family/members", headers=h)).json())["items"]
    assert [m["member"]["name"] for m in members] == ["黄*明"]


async def test_already_bound(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    await bind(client, h, MOTHER, "parent")
    app_id = await prepare(client, h, MOTHER, "parent")
    await failed_with(client, h, app_id, await submit(client, h, app_id), "ALREADY_BOUND")


async def test_invalid_id_number(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    bad = {
        "name": "李秀英",
        "id_type": "resident_id",
        "id_number": "420102195806122243",
        "relationship": "parent",
    }
    resp = await client.post("/api/v1/family/applications", json=bad, headers=h)
    assert resp.status == 422
    err = await error_of(resp)
    assert err["code"] == "INVALID_ID_NUMBER" and err["fields"] == {
        "id_number": "INVALID_ID_NUMBER"
    }
    assert await Application.all().count() == 0
    pre = await (await client.post("/api/v1/family/precheck", json=bad, headers=h)).json()
    assert pre["ok"] is False and pre["blocking"][0]["code"] == "INVALID_ID_NUMBER"
    # other document types have their own formats
    for id_type, number in (
        ("hk_mo_travel_permit", "X1234567"),
        ("passport", "ABC"),
        ("birth_certificate", "12345"),
    ):
        resp = await client.post(
            "/api/v1/family/applications",
            json={**bad, "id_type": id_type, "id_number": number},
            headers=h,
        )
        assert (await error_of(resp))["code"] == "INVALID_ID_NUMBER", id_type
    # a real birth date is part of the format: 1958-02-30 does not exist
    resp = await client.post(
        "/api/v1/family/applications", json={**bad, "id_number": "420102195802301234"}, headers=h
    )
    assert (await error_of(resp))["code"] == "INVALID_ID_NUMBER"


async def test_commitment_required(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")
    assert (await upload(client, h, application["id"])).status == 201
    resp = await submit(client, h, application["id"])
    await failed_with(client, h, application["id"], resp, "COMMITMENT_REQUIRED")


async def test_commitment_outdated(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    service = app[keys.family_key]
    service.clock = lambda: datetime(2025, 5, 20, 10, tzinfo=SH)  # before version 2025.1
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "parent")
    old = await (await client.get("/api/v1/commitments/current", headers=h)).json()
    service.clock = lambda: datetime(2025, 6, 2, 10, tzinfo=SH)  # 2025.1 is published meanwhile
    new = await (await client.get("/api/v1/commitments/current", headers=h)).json()
    assert old["version"] != new["version"]
    await failed_with(client, h, app_id, await submit(client, h, app_id), "COMMITMENT_OUTDATED")
    # signing the old text now is refused with the same code
    app2 = await create(client, h, MOTHER, "parent")
    resp = await client.post(
        f"/api/v1/family/applications/{app2['id']}/commitment",
        json={"version": old["version"], "sha256": old["sha256"]},
        headers=h,
    )
    assert resp.status == 409 and (await error_of(resp))["code"] == "COMMITMENT_OUTDATED"
    # re-signing the new version lets the next attempt through
    assert (await upload(client, h, app2["id"])).status == 201
    assert (await sign(client, h, app2["id"])).status == 201
    resp = await submit(client, h, app2["id"])
    assert resp.status == 200, await resp.text()
