"""Binder real-name verification: registry match, face check, own voucher activated."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import User
from tests.factories import bearer, error_of, login, verified_user
from tests.family.helpers import ALICE, GRANDMA, MOTHER, load_registry


async def realname(
    client: TestClient, h: dict[str, str], name: str, id_type: str, id_number: str, face: str = "ok"
):  # type: ignore[no-untyped-def]
    return await client.post(
        "/api/v1/me/realname",
        json={"name": name, "id_type": id_type, "id_number": id_number, "face_token": face},
        headers=h,
    )


async def test_realname_refusals(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))
    name, id_type, id_number = ALICE
    resp = await realname(client, h, "张三", id_type, id_number)
    assert resp.status == 422 and (await error_of(resp))["code"] == "INFO_MISMATCH"
    resp = await realname(client, h, name, id_type, id_number[:-1] + "3")
    assert resp.status == 422 and (await error_of(resp))["code"] == "INVALID_ID_NUMBER"
    resp = await realname(client, h, name, id_type, id_number, face="no")
    err = await error_of(resp)
    assert (
        resp.status == 422
        and err["code"] == "FACE_CHECK_FAILED"
        and err["fields"] == {"face_token": "FACE_CHECK_FAILED"}
    )
    resp = await realname(client, h, *GRANDMA)  # her own voucher is not activated
    assert resp.status == 403 and (await error_of(resp))["code"] == "BINDER_NOT_VERIFIED"
    resp = await realname(client, h, name, "selfie", id_number)
    assert resp.status == 422
    user = await User.get(id=1)
    assert user.realname_verified is False and user.person_id is None and user.name_enc is None


async def test_realname_links_the_person_once(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    await verified_user(client, "alice", ALICE)
    user = await User.get(id=1)
    assert user.realname_verified and user.person_id and "张伟" not in (user.name_enc or "")
    other = bearer(await login(client, "mallory"))
    resp = await realname(client, other, *ALICE)
    assert resp.status == 409 and (await error_of(resp))["code"] == "IDENTITY_IN_USE"


async def test_a_binder_cannot_bind_themselves(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    body = {"name": ALICE[0], "id_type": ALICE[1], "id_number": ALICE[2], "relationship": "child"}
    for path in ("/api/v1/family/applications", "/api/v1/family/precheck"):
        resp = await client.post(path, json=body, headers=h)
        assert resp.status == 422 and (await error_of(resp))["code"] == "SELF_NOT_ALLOWED"
    body = {
        "name": MOTHER[0],
        "id_type": MOTHER[1],
        "id_number": MOTHER[2],
        "relationship": "parent",
    }
    assert (await client.post("/api/v1/family/applications", json=body, headers=h)).status == 201
