"""IDOR, systematically: every route of the JSON APIs that takes an id (walked from the
router) is tried by someone it does not belong to, on real objects of another user:
the answer is 404 (403 for signed download links, API.md "Errors"), the body is the
bare error envelope naming nothing of the owner's, and the owner's things are unchanged.

A new id-taking route without a case here fails ``test_every_id_route_has_a_case``."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.clock import SHANGHAI
from tests.factories import (
    add_institution,
    authorize,
    bearer,
    post_signed,
    signed_headers,
    verified_user,
)
from tests.family.helpers import ALICE, BOB, MOTHER, WIFE, bind, create, load_registry, png, upload
from tests.money.conftest import settlement_body
from tests.security.routes import body_id_fields, id_routes

SETL_ID = "SECRET-SETL-0001"
REVIEWER = {"Authorization": "Bearer demo-reviewer-token"}


@dataclass
class World:
    """Alice's things, and the credentials of those who try to reach them."""

    alice: dict[str, str]
    bob: dict[str, str]
    mother: dict[str, str]
    app_id: str  # alice's active application (李秀英)
    material_id: str
    binding_id: str
    draft_id: str  # alice's draft application (王芳) with a material
    draft_material_id: str
    bob_draft_id: str
    authorization_id: str
    download_url: str
    inst_a: dict[str, str]
    inst_b: dict[str, str]
    secrets: list[str] = field(default_factory=list)  # strings no refusal may contain


@dataclass
class Attempt:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 404
    kw: dict[str, Any] = field(default_factory=dict)
    signed: dict[str, str] | None = None  # institution credentials: a signed call


Case = Callable[[World], list[Attempt]]
B = "/api/v1/family"


def _app(w: World, suffix: str = "", method: str = "GET", **kw: Any) -> list[Attempt]:
    return [
        Attempt(method, f"{B}/applications/{w.draft_id}{suffix}", w.bob, kw=kw),
        Attempt(method, f"{B}/applications/{w.app_id}{suffix}", w.bob, kw=kw),
    ]


def _material(method: str) -> Case:
    def case(w: World) -> list[Attempt]:
        return [
            Attempt(method, f"{B}/applications/{w.draft_id}/materials/{w.draft_material_id}", w.bob),
            Attempt(method, f"{B}/applications/{w.app_id}/materials/{w.material_id}", w.bob),
            # bob's own application with alice's material id: still not his
            Attempt(method, f"{B}/applications/{w.bob_draft_id}/materials/{w.draft_material_id}", w.bob),
        ]

    return case


def _member(suffix: str, method: str = "GET", **kw: Any) -> Case:
    return lambda w: [Attempt(method, f"{B}/members/{w.binding_id}{suffix}", w.bob, kw=kw)]


def _upload(w: World) -> list[Attempt]:
    return [Attempt("POST", f"{B}/applications/{w.draft_id}/materials", w.bob, kw={"upload": True})]


def _download(w: World) -> list[Attempt]:
    url = urlsplit(w.download_url)
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    bob_id = w.bob["user_id"]
    return [  # a link is the bearer: altered in any part, it is refused
        Attempt("GET", url.path, {}, 403, kw={"params": {**q, "u": bob_id}}),
        Attempt("GET", url.path.replace(w.material_id, w.draft_material_id), {}, 403, kw={"params": q}),
        Attempt("GET", url.path, {}, 403, kw={"params": {**q, "exp": str(int(q["exp"]) + 3600)}}),
        Attempt("GET", url.path.replace("/material/", "/signature/"), {}, 403, kw={"params": q}),
    ]


def _review(suffix: str, method: str = "GET", **kw: Any) -> Case:
    def case(w: World) -> list[Attempt]:
        path = f"/api/v1/review/applications/{w.draft_id}{suffix}"
        # a user's token, even the owner's, is not a reviewer's (reviewers see every
        # application in their scope, masked and audited: the console's own tests)
        return [Attempt(method, path, w.bob, 401, kw=kw), Attempt(method, path, w.alice, 401, kw=kw)]

    return case


def _review_material(w: World) -> list[Attempt]:
    return [
        Attempt("GET", f"/api/v1/review/applications/{w.draft_id}/materials/{w.draft_material_id}", w.bob, 401),
        # a material reached through another application's path
        Attempt("GET", f"/api/v1/review/applications/{w.bob_draft_id}/materials/{w.draft_material_id}", REVIEWER),
    ]


def _reversal(w: World) -> list[Attempt]:
    return [
        Attempt("POST", f"/api/v1/institution/settlements/{SETL_ID}/reversal", {}, 404,
                kw={"json": {"setl_id": SETL_ID}}, signed=w.inst_b),
        Attempt("POST", f"/api/v1/institution/settlements/{SETL_ID}/reversal", w.alice, 401,
                kw={"json": {"setl_id": SETL_ID}}),
    ]


def _consent(w: World) -> list[Attempt]:
    # names a purpose, not someone's record: bob withdraws only his own (checked after)
    return [Attempt("DELETE", "/api/v1/privacy/consents/medical_records", w.bob, 200)]


CASES: dict[tuple[str, str], Case] = {
    ("GET", f"{B}/applications/{{id}}"): lambda w: _app(w),
    ("DELETE", f"{B}/applications/{{id}}"): lambda w: _app(w, method="DELETE"),
    ("POST", f"{B}/applications/{{id}}/materials"): _upload,
    ("GET", f"{B}/applications/{{id}}/materials/{{material_id}}"): _material("GET"),
    ("DELETE", f"{B}/applications/{{id}}/materials/{{material_id}}"): _material("DELETE"),
    ("POST", f"{B}/applications/{{id}}/commitment"): lambda w: _app(
        w, "/commitment", "POST", json={"version": "2025.1", "sha256": "0" * 64}
    ),
    ("POST", f"{B}/applications/{{id}}/submit"): lambda w: _app(
        w, "/submit", "POST", json={"member_face_token": "ok-bob"}
    ),
    ("DELETE", f"{B}/members/{{binding_id}}"): _member("", "DELETE"),
    ("GET", f"{B}/members/{{binding_id}}/voucher"): _member("/voucher"),
    ("PUT", f"{B}/members/{{binding_id}}/voucher-password"): _member(
        "/voucher-password", "PUT", json={"password": "135790", "member_face_token": "ok-bob"}
    ),
    ("GET", f"{B}/members/{{binding_id}}/settlements"): _member("/settlements"),
    ("GET", f"{B}/members/{{binding_id}}/summary"): _member("/summary"),
    ("DELETE", f"{B}/binders/{{binding_id}}"): lambda w: [
        Attempt("DELETE", f"{B}/binders/{w.binding_id}", w.bob),  # neither member nor binder
        Attempt("DELETE", f"{B}/binders/{w.binding_id}", w.alice),  # the binder is not the member
    ],
    ("DELETE", "/api/v1/mutual-aid/authorizations/{authorization_id}"): lambda w: [
        Attempt("DELETE", f"/api/v1/mutual-aid/authorizations/{w.authorization_id}", w.bob),
        # the relative it was given to cannot withdraw the authorizer's authorization either
        Attempt("DELETE", f"/api/v1/mutual-aid/authorizations/{w.authorization_id}", w.mother),
    ],
    ("DELETE", "/api/v1/privacy/consents/{purpose}"): _consent,
    ("GET", "/api/v1/me/files/{kind}/{object_id}"): _download,
    ("GET", "/api/v1/review/applications/{application_id}"): _review(""),
    ("POST", "/api/v1/review/applications/{application_id}/decision"): _review(
        "/decision", "POST", json={"decision": "approve"}
    ),
    ("GET", "/api/v1/review/applications/{application_id}/materials/{material_id}"): _review_material,
    ("POST", "/api/v1/institution/settlements/{setl_id}/reversal"): _reversal,
}

#: JSON body fields that carry an id, and the case that covers each (or why none is needed).
BODY_IDS: dict[tuple[str, str, str], str] = {
    ("POST", "/api/v1/face/sessions", "application_id"): "test_face_session_for_someone_elses_application",
    ("POST", "/api/v1/institution/settlements/{setl_id}/reversal", "setl_id"): "_reversal (path and body)",
    # the caller's own numbering, never a reference to someone else's record: another
    # institution's same setl_id is its own settlement (issue #17 finding 13)
    ("POST", "/api/v1/institution/settlements", "setl_id"): "tests/money/test_settlement_findings.py::test_setl_id_is_unique_per_institution",
    ("POST", "/api/v1/institution/settlements", "mdtrt_id"): "the institution's own visit number, stored only",
    ("POST", "/api/v1/institution/settlements/preview", "setl_id"): "preview: nothing looked up by it",
    ("POST", "/api/v1/institution/settlements/preview", "mdtrt_id"): "preview: nothing looked up by it",
}


def test_every_id_route_has_a_case(app: web.Application) -> None:
    routes = id_routes(app)
    missing = sorted(routes - CASES.keys())
    assert not missing, f"id-taking routes without an IDOR case in {__file__}: {missing}"
    assert not sorted(CASES.keys() - routes), "cases for routes that no longer exist"
    fields = body_id_fields(app)
    assert not sorted(fields - BODY_IDS.keys()), "body ids without an IDOR case"
    assert not sorted(BODY_IDS.keys() - fields)


async def _world(client: TestClient, app: web.Application) -> World:
    await load_registry(app)
    alice = bearer(await verified_user(client, "alice", ALICE))
    bob_tokens = await verified_user(client, "bob", BOB)
    bob = {**bearer(bob_tokens), "user_id": str(bob_tokens["user"]["id"])}
    mother = bearer(await verified_user(client, "mother", MOTHER))
    done = await bind(client, alice, MOTHER, "parent")
    draft = await create(client, alice, WIFE, "spouse")
    resp = await upload(client, alice, draft["id"])
    assert resp.status == 201
    draft_material = await resp.json()
    bob_draft = await create(client, bob, WIFE, "spouse")
    member = SimpleNamespace(name=MOTHER[0], id_number=MOTHER[2])
    resp = await authorize(client, {"access_token": alice["Authorization"][7:]}, member, "parent")
    assert resp.status == 201, await resp.text()
    auth = await resp.json()
    inst_a = {"code": "H20001", "secret": await add_institution(app, "H20001", "甲医院")}
    inst_b = {"code": "H20002", "secret": await add_institution(app, "H20002", "乙医院")}
    now = (datetime.now(SHANGHAI) + timedelta(minutes=1)).isoformat(timespec="seconds")
    resp = await post_signed(
        client, "/settlements", settlement_body(SETL_ID, "12.00", certno=MOTHER[2], setl_time=now), **inst_a
    )
    assert resp.status == 201, await resp.text()
    resp = await client.get("/api/v1/me/export", headers=alice)
    doc = json.loads(await resp.read())
    (application,) = [a for a in doc["applications"] if a["id"] == done["id"]]
    w = World(
        alice=alice,
        bob=bob,
        mother=mother,
        app_id=done["id"],
        material_id=done["materials"][0]["id"],
        binding_id=done["binding_id"],
        draft_id=draft["id"],
        draft_material_id=draft_material["id"],
        bob_draft_id=bob_draft["id"],
        authorization_id=auth["id"],
        download_url=application["materials"][0]["download_url"],
        inst_a=inst_a,
        inst_b=inst_b,
    )
    w.secrets = [
        w.app_id, w.material_id, w.binding_id, w.draft_id, w.draft_material_id, w.authorization_id,
        SETL_ID, *ALICE, *MOTHER, *WIFE, "张*", "李*英", "王*", "1232", "2242", "2622",
    ]
    return w


async def _send(client: TestClient, a: Attempt) -> Any:
    headers = {k: v for k, v in a.headers.items() if k != "user_id"}
    if a.kw.get("upload"):
        form = aiohttp.FormData()
        form.add_field("kind", "household_register")
        form.add_field("file", png(), filename="x.png", content_type="image/png")
        return await client.post(a.path, data=form, headers=headers)
    if a.signed is not None:
        body = json.dumps(a.kw["json"]).encode()
        return await client.request(
            a.method, a.path, data=body, headers=signed_headers(a.signed["code"], a.signed["secret"], body)
        )
    return await client.request(a.method, a.path, headers=headers, **a.kw)


async def _owner_state(client: TestClient, w: World) -> Any:
    """What alice (and her mother) see: must be the same before and after the attempts."""
    async def get(path: str, h: dict[str, str]) -> Any:
        resp = await client.get(path, headers=h)
        assert resp.status == 200, (path, resp.status)
        body = await resp.json()
        return body

    return {
        "app": await get(f"{B}/applications/{w.app_id}", w.alice),
        "draft": await get(f"{B}/applications/{w.draft_id}", w.alice),
        "members": await get(f"{B}/members", w.alice),
        "binders": await get(f"{B}/binders", w.mother),
        "auths": await get("/api/v1/mutual-aid/authorizations", w.alice),
        "consents": await get("/api/v1/privacy/consents", w.alice),
        "settlements": await get(f"{B}/members/{w.binding_id}/settlements", w.alice),
    }


async def test_nobody_reaches_someone_elses_things(client: TestClient, app: web.Application) -> None:
    w = await _world(client, app)
    before = await _owner_state(client, w)
    tried: set[tuple[str, str]] = set()
    for key, case in CASES.items():
        for attempt in case(w):
            resp = await _send(client, attempt)
            text = (await resp.read()).decode(errors="replace")
            where = (key, attempt.method, attempt.path, resp.status, text[:200])
            assert resp.status == attempt.status, where
            if resp.status >= 400:
                body = json.loads(text)
                assert set(body) == {"error"} and set(body["error"]) <= {"code", "message", "request_id"}, where
                assert body["error"]["code"] in {"NOT_FOUND", "UNAUTHORIZED", "TOKEN_INVALID", "DOWNLOAD_LINK_INVALID",
                                                 "APPLICATION_NOT_FOUND", "BINDING_NOT_FOUND", "SETTLEMENT_NOT_FOUND",
                                                 "AUTHORIZATION_NOT_FOUND", "MATERIAL_NOT_FOUND", "SIGNATURE_MISSING"}, where
                leaked = [s for s in w.secrets if s in text]
                assert not leaked, (where, leaked)
            tried.add(key)
    assert tried == set(CASES)
    after = await _owner_state(client, w)
    assert after == before
    # the material link still works for its owner: only the altered ones were refused
    resp = await client.get(w.download_url)
    assert resp.status == 200
    assert (await resp.read()).startswith(b"\x89PNG")  # read to the end: the file is closed


async def test_face_session_for_someone_elses_application(client: TestClient, app: web.Application) -> None:
    w = await _world(client, app)
    for who, status in ((w.bob, 404), (w.alice, 201)):
        resp = await client.post(
            "/api/v1/face/sessions",
            json={"purpose": "member", "application_id": w.draft_id},
            headers={k: v for k, v in who.items() if k != "user_id"},
        )
        text = await resp.text()
        assert resp.status == status, text
        if status == 404:
            assert not [s for s in w.secrets if s in text], text

