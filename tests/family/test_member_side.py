"""The member's side (SPEC.md "binder or member can unbind"): who bound me, and unbinding."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import ApplicationEvent, Binding
from tests.factories import bearer, error_of, login, verified_user
from tests.family.helpers import ALICE, BOB, MOTHER, bind, load_registry


async def test_member_sees_binders_and_unbinds(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    alice = bearer(await verified_user(client, "alice", ALICE))
    bob = bearer(await verified_user(client, "bob", BOB))
    first = await bind(client, alice, MOTHER, "parent")
    await bind(client, bob, MOTHER, "parent")

    mother = bearer(await verified_user(client, "mom", MOTHER))
    resp = await client.get("/api/v1/family/binders", headers=mother)
    assert resp.status == 200
    items = (await resp.json())["items"]
    assert sorted(i["binder"]["name"] for i in items) == ["周*", "张*"]
    assert all("420102" not in str(i) for i in items)  # nothing unmasked

    alice_binding = first["binding_id"]
    # another person cannot end it through the member's path, nor can the other binder
    assert (await client.delete(f"/api/v1/family/binders/{alice_binding}", headers=bob)).status in (403, 404)
    resp = await client.delete(f"/api/v1/family/binders/{alice_binding}", headers=mother)
    assert resp.status == 204
    binding = await Binding.get(id=alice_binding)
    assert binding.state == "unbound" and binding.unbound_by.startswith("member:user:")
    event = await ApplicationEvent.filter(to_state="unbound").first()
    assert event is not None and event.actor.startswith("member:user:")
    # the binder sees it gone; a second unbind is a clear conflict
    assert (await (await client.get("/api/v1/family/members", headers=alice)).json())["items"] == []
    again = await client.delete(f"/api/v1/family/binders/{alice_binding}", headers=mother)
    assert again.status == 409 and (await error_of(again))["code"] == "BINDING_NOT_ACTIVE"
    left = (await (await client.get("/api/v1/family/binders", headers=mother)).json())["items"]
    assert [i["binder"]["name"] for i in left] == ["周*"]


async def test_member_side_needs_real_name(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    stranger = bearer(await login(client, "nobody"))
    resp = await client.get("/api/v1/family/binders", headers=stranger)
    assert resp.status == 403 and (await error_of(resp))["code"] == "REALNAME_REQUIRED"
    resp = await client.delete("/api/v1/family/binders/not-a-uuid", headers=stranger)
    assert resp.status in (403, 404)
    assert (await client.get("/api/v1/family/binders")).status == 401
