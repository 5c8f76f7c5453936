"""Authorization and abuse limits: a binder sees only their own things; per-user rate limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.factories import bearer, error_of, verified_user
from tests.family.helpers import (
    ALICE,
    BOB,
    MOTHER,
    bind,
    create,
    load_registry,
    png,
    prepare,
    upload,
)


async def test_every_endpoint_refuses_someone_elses_things(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    alice = bearer(await verified_user(client, "alice", ALICE))
    bob = bearer(await verified_user(client, "bob", BOB))
    done = await bind(client, alice, MOTHER, "parent")
    app_id, binding_id = done["id"], done["binding_id"]
    material_id = done["materials"][0]["id"]
    draft = await create(client, alice, MOTHER, "parent")

    a = f"/api/v1/family/applications/{app_id}"
    d = f"/api/v1/family/applications/{draft['id']}"
    m = f"/api/v1/family/members/{binding_id}"
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", a, {}),
        ("GET", f"{a}/materials/{material_id}", {}),
        ("POST", f"{d}/commitment", {"json": {"version": "2025.1", "sha256": "0" * 64}}),
        ("POST", f"{d}/submit", {"json": {}}),
        ("GET", f"{m}/voucher", {}),
        ("GET", f"{m}/settlements", {}),
        ("GET", f"{m}/summary", {}),
        ("DELETE", m, {}),
    ]
    for method, path, kw in calls:
        resp = await client.request(method, path, headers=bob, **kw)
        assert resp.status == 404, (method, path, resp.status)
        assert (await error_of(resp))["code"] == "NOT_FOUND"
        resp = await client.request(method, path, **kw)
        assert resp.status == 401, (method, path, resp.status)
    resp = await upload(client, bob, draft["id"])
    assert resp.status == 404
    resp = await upload(client, alice, draft["id"])  # the owner can
    assert resp.status == 201
    # lists show only one's own
    assert (await (await client.get("/api/v1/family/members", headers=bob)).json())["items"] == []
    assert (await (await client.get("/api/v1/family/applications", headers=bob)).json())[
        "items"
    ] == []
    assert (
        len(
            (await (await client.get("/api/v1/family/applications", headers=alice)).json())["items"]
        )
        == 2
    )
    # garbage ids are simply not found
    resp = await client.get("/api/v1/family/applications/not-a-uuid", headers=alice)
    assert resp.status == 404
    # and alice still has her member: bob's DELETE changed nothing
    assert (
        len((await (await client.get("/api/v1/family/members", headers=alice)).json())["items"])
        == 1
    )


async def test_unbind_twice(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    alice = bearer(await verified_user(client, "alice", ALICE))
    done = await bind(client, alice, MOTHER, "parent")
    path = f"/api/v1/family/members/{done['binding_id']}"
    assert (await client.delete(path, headers=alice)).status == 204
    resp = await client.delete(path, headers=alice)
    assert resp.status == 409 and (await error_of(resp))["code"] == "BINDING_NOT_ACTIVE"


async def test_rate_limits(make_client: Callable[..., Any]) -> None:
    client: TestClient = await make_client(
        **{
            "family.vouchers_per_window": 2,
            "family.applications_per_window": 4,
            "family.submits_per_window": 2,
        }
    )
    await load_registry(client.server.app)  # type: ignore[arg-type]
    alice = bearer(await verified_user(client, "alice", ALICE))
    done = await bind(client, alice, MOTHER, "parent")  # application 1, submit 1
    path = f"/api/v1/family/members/{done['binding_id']}/voucher"
    assert [(await client.get(path, headers=alice)).status for _ in range(2)] == [200, 200]
    resp = await client.get(path, headers=alice)
    assert resp.status == 429 and (await error_of(resp))["code"] == "RATE_LIMITED"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60

    app_id = await prepare(client, alice, MOTHER, "parent")  # application 2
    assert (
        await client.post(f"/api/v1/family/applications/{app_id}/submit", json={}, headers=alice)
    ).status == 409
    resp = await client.post(f"/api/v1/family/applications/{app_id}/submit", json={}, headers=alice)
    assert resp.status == 429  # submit 3

    body = {
        "name": MOTHER[0],
        "id_type": MOTHER[1],
        "id_number": MOTHER[2],
        "relationship": "parent",
    }
    statuses = [
        (await client.post("/api/v1/family/applications", json=body, headers=alice)).status
        for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    # limits are per user: bob is not affected
    bob = bearer(await verified_user(client, "bob", BOB))
    assert (await client.post("/api/v1/family/applications", json=body, headers=bob)).status == 201
    assert png()  # (materials are not rate limited beyond their size cap)
