"""The real journey (issue #11, API.md v1.1): 代激活, failures that can be fixed, the way
without the face, cancel and remove, corrections, the member told, pages — through HTTP.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import ApplicationEvent, InsuredPerson, Notice, VoucherActivation
from tests.factories import bearer, error_of, verified_user
from tests.family.helpers import (
    ALICE,
    GRANDMA,
    MOTHER,
    WIFE,
    create,
    load_registry,
    prepare,
    sign,
    submit,
    upload,
)


async def _app(client: TestClient, h: dict[str, str], app_id: str) -> dict[str, Any]:
    return await (await client.get(f"/api/v1/family/applications/{app_id}", headers=h)).json()


async def test_a_parent_without_an_activated_voucher_is_bound_and_activated(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    tokens = await verified_user(client, "alice", ALICE)
    h = bearer(tokens)
    person = await InsuredPerson.get(id=await _id(GRANDMA, app))
    assert person.voucher_activated is False
    pre = await client.post(
        "/api/v1/family/precheck",
        json={
            "name": GRANDMA[0],
            "id_type": GRANDMA[1],
            "id_number": GRANDMA[2],
            "relationship": "parent",
        },
        headers=h,
    )
    assert (await pre.json())["ok"] is True  # no MEMBER_NOT_ACTIVATED any more
    app_id = await prepare(client, h, GRANDMA, "parent")
    resp = await submit(client, h, app_id)
    out = await resp.json()
    assert resp.status == 200 and out["state"] == "active" and out["member_activated"] is True
    await person.refresh_from_db()
    assert person.voucher_activated is True
    event = await VoucherActivation.get(person_id=person.id)
    assert event.activated_by_id == tokens["user"]["id"] and event.method == "face"
    assert str(event.application_id) == app_id and event.activated_at is not None
    assert (await _app(client, h, app_id))["member_activated"] is True


async def _id(person: tuple[str, str, str], app: web.Application) -> int:
    from server.domain.registry import id_hash

    row = await InsuredPerson.get(id_hash=id_hash(app[keys.pii_key], person[1], person[2]))
    return row.id


async def test_a_failed_face_check_is_fixed_and_resubmitted(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "parent")
    resp = await submit(client, h, app_id, face="bad-face")
    err = await error_of(resp)
    assert resp.status == 409 and err["code"] == "FACE_CHECK_FAILED"
    assert err["state"] == "needs_action" and err["fix"]
    waiting = await _app(client, h, app_id)
    assert waiting["state"] == "needs_action" and waiting["failure"]["code"] == "FACE_CHECK_FAILED"
    assert waiting["failure"]["fix"] and len(waiting["materials"]) == 1 and waiting["commitment"]
    # neither a face token nor the documents way: the same fixable refusal
    resp = await submit(client, h, app_id, face=None)
    assert resp.status == 409 and (await error_of(resp))["state"] == "needs_action"
    resp = await submit(client, h, app_id, face="ok-2")
    done = await resp.json()
    assert resp.status == 200 and done["state"] == "active" and "failure" not in done
    moves = await ApplicationEvent.filter(application_id=app_id).order_by("id").values_list(
        "to_state", flat=True
    )
    assert moves[-6:] == [
        "submitted", "needs_action", "submitted", "needs_action", "submitted", "active"
    ]


async def test_adult_materials_one_of_hukou_or_both_id_card_sides(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "parent", kinds=("id_card_front",))
    resp = await submit(client, h, app_id)
    assert resp.status == 409 and (await error_of(resp))["code"] == "MATERIALS_MISSING"
    # add the other side to the same application and submit again
    assert (await upload(client, h, app_id, "id_card_back")).status == 201
    resp = await submit(client, h, app_id)
    assert resp.status == 200 and (await resp.json())["state"] == "active"


async def test_the_documents_way_goes_to_a_reviewer(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    tokens = await verified_user(client, "alice", ALICE)
    h = bearer(tokens)
    app_id = await prepare(client, h, GRANDMA, "parent", kinds=("id_card_front", "id_card_back"))
    docs = {"verification": "documents"}
    path = f"/api/v1/family/applications/{app_id}/submit"
    resp = await client.post(path, json=docs, headers=h)
    err = await error_of(resp)
    assert resp.status == 409 and err["code"] == "MATERIALS_MISSING" and "户口本" in err["message"]
    assert (await upload(client, h, app_id, "household_register")).status == 201
    resp = await client.post(path, json=docs, headers=h)
    assert resp.status == 200 and (await resp.json())["state"] == "pending_review"
    approved = await app[keys.family_key].decide_review(app_id, reviewer="r1", approve=True)
    assert approved["state"] == "active" and approved["member_activated"] is True
    event = await VoucherActivation.get(application_id=app_id)
    assert event.method == "documents" and event.activated_by_id == tokens["user"]["id"]
    notices = (await (await client.get("/api/v1/notices", headers=h)).json())["items"]
    result = [n for n in notices if n["kind"] == "binding_result"]
    assert len(result) == 1 and result[0]["data"]["outcome"] == "approved"


async def test_cancel_and_remove(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    draft = await create(client, h, MOTHER, "parent")
    m1 = await (await upload(client, h, draft["id"], "household_register")).json()
    m2 = await (await upload(client, h, draft["id"], "id_card_front")).json()
    base = f"/api/v1/family/applications/{draft['id']}"
    assert (await client.delete(f"{base}/materials/{m2['id']}", headers=h)).status == 204
    assert (await client.delete(f"{base}/materials/{m2['id']}", headers=h)).status == 404
    assert [m["id"] for m in (await _app(client, h, draft["id"]))["materials"]] == [m1["id"]]
    assert (await client.get(f"{base}/materials/{m2['id']}", headers=h)).status == 404
    # someone else cannot remove or cancel it
    other = bearer(await verified_user(client, "wife", WIFE))
    assert (await client.delete(f"{base}/materials/{m1['id']}", headers=other)).status == 404
    assert (await client.delete(base, headers=other)).status == 404
    assert (await client.delete(base, headers=h)).status == 204
    cancelled = await _app(client, h, draft["id"])
    assert cancelled["state"] == "cancelled"
    resp = await client.delete(base, headers=h)
    assert resp.status == 409 and (await error_of(resp))["code"] == "APPLICATION_STATE_CONFLICT"
    # a bound application cannot be cancelled, nor its materials removed
    app_id = await prepare(client, h, MOTHER, "parent")
    assert (await submit(client, h, app_id)).status == 200
    done = await _app(client, h, app_id)
    path = f"/api/v1/family/applications/{app_id}"
    assert (await client.delete(path, headers=h)).status == 409
    resp = await client.delete(f"{path}/materials/{done['materials'][0]['id']}", headers=h)
    assert resp.status == 409


async def test_a_correction_is_requested_and_answered(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, GRANDMA, "parent", kinds=("household_register",))
    path = f"/api/v1/family/applications/{app_id}/submit"
    assert (await (await client.post(path, json={"verification": "documents"}, headers=h)).json())[
        "state"
    ] == "pending_review"
    service = app[keys.family_key]
    out = await service.request_correction(app_id, reviewer="r1", reason="户口本页面不清晰")
    assert out["state"] == "correction_requested"
    got = await _app(client, h, app_id)
    assert got["failure"]["code"] == "CORRECTION_REQUESTED"
    assert "户口本页面不清晰" in got["failure"]["message"] and got["failure"]["fix"]
    notices = (await (await client.get("/api/v1/notices", headers=h)).json())["items"]
    assert [n["data"]["outcome"] for n in notices if n["kind"] == "binding_result"] == [
        "correction_requested"
    ]
    # the binder uploads a clearer page, signs nothing new, submits the same application
    assert (await upload(client, h, app_id, "household_register")).status == 201
    resp = await client.post(path, json={"verification": "documents"}, headers=h)
    assert resp.status == 200 and (await resp.json())["state"] == "pending_review"
    rejected = await service.decide_review(app_id, reviewer="r1", approve=False, detail="不符")
    assert rejected["state"] == "failed"


async def test_the_member_is_told(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    mum = bearer(await verified_user(client, "mum", MOTHER))
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "parent")
    binding_id = (await (await submit(client, h, app_id)).json())["binding_id"]
    assert (await client.delete(f"/api/v1/family/members/{binding_id}", headers=h)).status == 204
    notices = (await (await client.get("/api/v1/notices", headers=mum)).json())["items"]
    kinds = sorted(n["kind"] for n in notices)
    assert kinds == ["member_bound", "member_unbound"]
    assert all(n["data"]["binder_name"] == "张*" for n in notices)
    assert await Notice.filter(kind="member_bound").count() == 1


async def test_lists_page_by_cursor(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    ids = [(await create(client, h, MOTHER, "parent"))["id"] for _ in range(3)]
    first = await (await client.get("/api/v1/family/applications?limit=2", headers=h)).json()
    assert [a["id"] for a in first["items"]] == ids[::-1][:2] and first["next_cursor"]
    url = f"/api/v1/family/applications?limit=2&cursor={first['next_cursor']}"
    second = await (await client.get(url, headers=h)).json()
    assert [a["id"] for a in second["items"]] == [ids[0]] and second["next_cursor"] is None
    resp = await client.get("/api/v1/family/applications?cursor=%%%", headers=h)
    assert resp.status == 422 and (await error_of(resp))["fields"] == {"cursor": "INVALID"}
    assert (await sign(client, h, ids[0])).status == 201
