"""WeChat 人脸核身 through the HTTP API (API.md v1.1): a session is opened, the user's
phone runs the check (played by the fake WeChat), and the verify result is redeemed once —
only for the caller, the expected person, and while it is fresh."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from fakes.wechat import P_FACE_GETINFO, P_FACE_USERIDKEY, FakeWeChatState
from server import keys
from server.domain.clock import utc_now
from server.domain.models import User
from tests.face.helpers import open_session, realname_body
from tests.factories import bearer, error_of, login, verified_user
from tests.family.helpers import (
    ALICE,
    BOB,
    FATHER,
    MOTHER,
    create,
    load_registry,
    prepare,
    submit,
)


async def _verify_me(
    client: TestClient, h: dict[str, str], person: tuple[str, str, str], face_token: str
) -> Any:
    name, id_type, id_number = person
    body = {"name": name, "id_type": id_type, "id_number": id_number, "face_token": face_token}
    return await client.post("/api/v1/me/realname", json=body, headers=h)


async def _face_failed(resp: Any) -> None:
    assert resp.status == 422, await resp.text()
    assert (await error_of(resp))["code"] == "FACE_CHECK_FAILED"


async def _verified(user: str) -> bool:
    return bool(await User.filter(openid=f"demo-{user}", realname_verified=True).exists())


async def test_a_session_opened_then_verified(
    client: TestClient, app: web.Application, wechat_state: FakeWeChatState
) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))
    key = await open_session(client, h, realname_body(ALICE))
    # the mini-program runs wx.startFacialRecognitionVerify({userIdKey}) on alice's phone
    verify_result = wechat_state.face.verify(key, "demo-alice")
    resp = await _verify_me(client, h, ALICE, verify_result)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["realname_verified"] is True


async def test_a_failed_check_and_a_check_of_someone_else_are_refused(
    client: TestClient, app: web.Application, wechat_state: FakeWeChatState
) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))
    key = await open_session(client, h, realname_body(ALICE))
    # WeChat says the face did not match (比对人脸信息不匹配)
    await _face_failed(await _verify_me(client, h, ALICE, wechat_state.face.verify(key, "demo-alice", 10004)))
    # a passed check of alice is no check of bob, whoever asks with it
    await _face_failed(await _verify_me(client, h, BOB, wechat_state.face.verify(key, "demo-alice")))
    # the demo convention: "bad…" fails, "ok…" passes for the person the request names
    await _face_failed(await _verify_me(client, h, ALICE, "bad-1"))
    assert not await _verified("alice")
    assert (await _verify_me(client, h, ALICE, "ok-1")).status == 200


async def test_a_verify_result_is_redeemed_once(
    client: TestClient, app: web.Application, wechat_state: FakeWeChatState
) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))
    key = await open_session(client, h, realname_body(ALICE))
    verify_result = wechat_state.face.verify(key, "demo-alice")
    assert (await _verify_me(client, h, ALICE, verify_result)).status == 200
    # WeChat itself refuses the second getinfo (84002) ...
    await _face_failed(await _verify_me(client, h, ALICE, verify_result))
    # ... and where WeChat would answer again, our own guard refuses it
    wechat_state.configure(face_single_use=False)
    verify_result = wechat_state.face.verify(key, "demo-alice")
    assert (await _verify_me(client, h, ALICE, verify_result)).status == 200
    calls = wechat_state.calls[P_FACE_GETINFO]
    await _face_failed(await _verify_me(client, h, ALICE, verify_result))
    assert wechat_state.calls[P_FACE_GETINFO] == calls  # refused before asking WeChat
    # the demo's "ok-7" too: one check per caller and person
    assert (await _verify_me(client, h, ALICE, "ok-7")).status == 200
    await _face_failed(await _verify_me(client, h, ALICE, "ok-7"))
    # ... while bob's "ok-7" is bob's own check
    assert (await _verify_me(client, bearer(await login(client, "bob")), BOB, "ok-7")).status == 200


async def test_a_check_on_another_users_phone_is_refused(
    client: TestClient, app: web.Application, wechat_state: FakeWeChatState
) -> None:
    await load_registry(app)
    alice = bearer(await login(client, "alice"))
    bob = bearer(await login(client, "bob"))
    key = await open_session(client, alice, realname_body(ALICE))
    # the check ran in bob's WeChat: it proves nothing about alice's account
    await _face_failed(await _verify_me(client, alice, ALICE, wechat_state.face.verify(key, "demo-bob")))
    # and bob cannot use a check made for alice's session on alice's phone
    verify_result = wechat_state.face.verify(key, "demo-alice")
    await _face_failed(await _verify_me(client, bob, ALICE, verify_result))
    # nor one made on his own phone for a session alice opened
    await _face_failed(await _verify_me(client, bob, ALICE, wechat_state.face.verify(key, "demo-bob")))
    assert not await _verified("alice") and not await _verified("bob")


async def test_a_stale_check_is_refused(
    client: TestClient, app: web.Application, wechat_state: FakeWeChatState
) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))
    key = await open_session(client, h, realname_body(ALICE))
    wechat_state.configure(face_single_use=False)
    verify_result = wechat_state.face.verify(key, "demo-alice")
    face = app[keys.face_key]
    # WeChat still answers (its own 5 minutes are its clock's), but by our clock the
    # check finished 11 minutes ago
    face.clock = lambda: utc_now() + timedelta(minutes=11)
    await _face_failed(await _verify_me(client, h, ALICE, verify_result))
    face.clock = lambda: utc_now() + timedelta(minutes=9)
    fresh = wechat_state.face.verify(key, "demo-alice")
    assert (await _verify_me(client, h, ALICE, fresh)).status == 200


async def test_the_members_face_on_the_binders_phone(
    client: TestClient, app: web.Application, wechat_state: FakeWeChatState
) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "parent")
    key = await open_session(client, h, {"purpose": "member", "application_id": app_id})
    # the member's face, checked in the binder's WeChat, for the member of this application
    resp = await submit(client, h, app_id, face=wechat_state.face.verify(key, "demo-alice"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["state"] == "active"
    # a session opened for another purpose (realname, with the member's name + ID) is
    # not one for the member's check
    app_id = await prepare(client, h, FATHER, "parent")
    other = await open_session(client, h, realname_body(FATHER))
    resp = await submit(client, h, app_id, face=wechat_state.face.verify(other, "demo-alice"))
    assert resp.status == 409 and (await error_of(resp))["code"] == "FACE_CHECK_FAILED"


async def test_someone_elses_application_is_404(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    alice = bearer(await verified_user(client, "alice", ALICE))
    bob = bearer(await verified_user(client, "bob", BOB))
    app_id = (await create(client, alice, MOTHER, "parent"))["id"]
    for body in (
        {"purpose": "member", "application_id": app_id},
        {"purpose": "member", "application_id": "not-a-uuid"},
        {"purpose": "member", "application_id": "00000000-0000-4000-8000-000000000000"},
    ):
        resp = await client.post("/api/v1/face/sessions", json=body, headers=bob)
        assert resp.status == 404 and (await error_of(resp))["code"] == "NOT_FOUND"


async def test_bad_requests_are_refused_with_fields(client: TestClient) -> None:
    h = bearer(await login(client, "alice"))
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"purpose": "realname", "name": "张伟"}, {"id_type": "REQUIRED", "id_number": "REQUIRED"}),
        ({"purpose": "member"}, {"application_id": "REQUIRED"}),
        (
            {"purpose": "member", "application_id": "x", "name": "张伟"},
            {"name": "UNKNOWN_FIELD"},
        ),
        ({"purpose": "selfie"}, {"purpose": "INVALID_CHOICE"}),
    ]
    for body, fields in cases:
        resp = await client.post("/api/v1/face/sessions", json=body, headers=h)
        assert resp.status == 422, (body, await resp.text())
        err = await error_of(resp)
        assert err["code"] == "VALIDATION_FAILED" and err["fields"] == fields, (body, err)
    bad_id = {**realname_body(ALICE), "id_number": "420102199003071233"}
    resp = await client.post("/api/v1/face/sessions", json=bad_id, headers=h)
    assert resp.status == 422 and (await error_of(resp))["code"] == "INVALID_ID_NUMBER"
    resp = await client.post("/api/v1/face/sessions", json=realname_body(ALICE))
    assert resp.status == 401


async def test_wechat_down_is_system_busy_and_changes_nothing(
    client: TestClient, app: web.Application, wechat_state: FakeWeChatState
) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))
    key = await open_session(client, h, realname_body(ALICE))
    verify_result = wechat_state.face.verify(key, "demo-alice")
    wechat_state.configure(down=True)
    resp = await client.post("/api/v1/face/sessions", json=realname_body(ALICE), headers=h)
    assert resp.status == 503 and resp.headers["Retry-After"] == "30"
    assert (await error_of(resp))["code"] == "SYSTEM_BUSY"
    resp = await _verify_me(client, h, ALICE, verify_result)
    assert resp.status == 503 and (await error_of(resp))["code"] == "SYSTEM_BUSY"
    assert not await _verified("alice")
    wechat_state.configure(down=False)
    # WeChat busy (-1) is the same
    wechat_state.inject(P_FACE_GETINFO, -1)
    resp = await _verify_me(client, h, ALICE, verify_result)
    assert resp.status == 503 and (await error_of(resp))["code"] == "SYSTEM_BUSY"
    # nothing was redeemed: the same verify result works now
    assert (await _verify_me(client, h, ALICE, verify_result)).status == 200


async def test_a_rejected_access_token_is_renewed_once(
    client: TestClient, app: web.Application, wechat_state: FakeWeChatState
) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))
    await open_session(client, h, realname_body(ALICE))  # the token is cached now
    wechat_state.expire_all_tokens()
    key = await open_session(client, h, realname_body(ALICE))
    wechat_state.expire_all_tokens()
    assert (await _verify_me(client, h, ALICE, wechat_state.face.verify(key, "demo-alice"))).status == 200
    assert wechat_state.calls[P_FACE_USERIDKEY] == 3


async def test_name_and_number_stay_out_of_logs_and_redis(
    client: TestClient,
    app: web.Application,
    wechat_state: FakeWeChatState,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await load_registry(app)
    h = bearer(await login(client, "alice"))
    with caplog.at_level(logging.DEBUG):
        key = await open_session(client, h, realname_body(ALICE))
        await _face_failed(await _verify_me(client, h, ALICE, wechat_state.face.verify(key, "demo-bob")))
        assert (await _verify_me(client, h, ALICE, wechat_state.face.verify(key, "demo-alice"))).status == 200
    redis = app[keys.redis_key]
    # SCAN, not KEYS: on a Redis Cluster it walks every master (KEYS asks one node)
    stored = [await redis.get(k) async for k in redis.scan_iter(match="face:*")]
    assert stored
    for text in [caplog.text, *(str(v) for v in stored)]:
        assert ALICE[0] not in text and ALICE[2] not in text
