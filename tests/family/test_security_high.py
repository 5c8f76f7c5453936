"""Issue #17, the two high findings, through the HTTP API (both backends).

1. A stranger could bind any child under 16 (an image "proved" guardianship) and squat
   the child's monthly binder slots. Now: at once only for the guardian the registry
   records; anyone else goes to a reviewer; waiting applications hold no slot of the
   member's; the guardian is never locked out by others.
2. The registry was an oracle: precheck, real-name and 共济 authorization told a
   registered name + ID from an unknown one to anyone, without limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.errors import DomainError
from server.domain.models import Binding, User
from server.http_errors import status_of
from tests.factories import bearer, error_of, login, verified_user
from tests.family.helpers import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    GRANDMA,
    MOTHER,
    SON,
    WIFE,
    bind,
    load_registry,
    prepare,
    submit,
)


def _body(person: tuple[str, str, str], relationship: str = "parent") -> dict[str, str]:
    name, id_type, id_number = person
    return {"name": name, "id_type": id_type, "id_number": id_number, "relationship": relationship}


async def _voucher(client: TestClient, h: dict[str, str]) -> list[int]:
    items = (await (await client.get("/api/v1/family/members", headers=h)).json())["items"]
    return [
        (await client.get(f"/api/v1/family/members/{m['id']}/voucher", headers=h)).status
        for m in items
    ]


async def test_a_stranger_cannot_take_a_child(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    stranger = bearer(await verified_user(client, "mallory", BOB))
    pre = await client.post("/api/v1/family/precheck", json=_body(SON, "child"), headers=stranger)
    assert (await pre.json())["review_required"] is True
    app_id = await prepare(client, stranger, SON, "child", kinds=("birth_certificate",))
    resp = await submit(client, stranger, app_id, face=None)
    assert resp.status == 200 and (await resp.json())["state"] == "pending_review"
    # no binding, no 医保码, no spending for the stranger
    assert await Binding.filter(binder_id=(await _user_id(client, stranger))).count() == 0
    assert await _voucher(client, stranger) == []

    # the registered guardian binds at once, whatever strangers have pending
    other = bearer(await verified_user(client, "trudy", CAROL))
    app2 = await prepare(client, other, SON, "child", kinds=("household_register",))
    assert (await (await submit(client, other, app2, face=None)).json())["state"] == (
        "pending_review"
    )
    parent = bearer(await verified_user(client, "alice", ALICE))
    pre = await client.post("/api/v1/family/precheck", json=_body(SON, "child"), headers=parent)
    assert (await pre.json())["review_required"] is False
    done = await bind(client, parent, SON, "child", kinds=("birth_certificate",))
    assert done["state"] == "active"
    assert await _voucher(client, parent) == [200]

    # a reviewer approving both strangers: the first gets the second slot, the third is
    # refused at approval (the waiting applications held no slot of the child's)
    service = app[keys.family_key]
    approved = await service.decide_review(app_id, reviewer="r1", approve=True)
    assert approved["state"] == "active"
    try:
        await service.decide_review(app2, reviewer="r1", approve=True)
    except Exception as err:  # DomainError through the service (the console's path)
        assert getattr(err, "code", None) == "MONTHLY_BINDER_LIMIT"
        assert isinstance(err, DomainError) and status_of(err) == 409
    else:
        raise AssertionError("a third binder this month was approved")
    got = await (await client.get(f"/api/v1/family/applications/{app2}", headers=other)).json()
    assert got["state"] == "pending_review"


async def test_squatted_slots_do_not_lock_the_guardian_out(
    client: TestClient, app: web.Application
) -> None:
    """Two others bound (after review) and unbound the child this month: both slots are
    used, yet the registered guardian still binds their own child."""
    await load_registry(app)
    service = app[keys.family_key]
    for user, person in (("mallory", BOB), ("trudy", CAROL)):
        h = bearer(await verified_user(client, user, person))
        app_id = await prepare(client, h, SON, "child", kinds=("birth_certificate",))
        assert (await (await submit(client, h, app_id, face=None)).json())["state"] == (
            "pending_review"
        )
        binding = await service.decide_review(app_id, reviewer="r1", approve=True)
        resp = await client.delete(f"/api/v1/family/members/{binding['binding_id']}", headers=h)
        assert resp.status == 204
    # an ordinary third binder is refused for the month ...
    dave = bearer(await verified_user(client, "dave", DAVE))
    app_id = await prepare(client, dave, SON, "child", kinds=("birth_certificate",))
    resp = await submit(client, dave, app_id, face=None)
    assert resp.status == 409 and (await error_of(resp))["code"] == "MONTHLY_BINDER_LIMIT"
    # ... the guardian is not
    parent = bearer(await verified_user(client, "alice", ALICE))
    assert (await bind(client, parent, SON, "child", kinds=("birth_certificate",)))["state"] == (
        "active"
    )


async def test_a_member_removing_a_binder_frees_the_slot(
    client: TestClient, app: web.Application
) -> None:
    """Adults: a binder the member removes themselves ("not someone I know") does not keep
    the member's monthly slot; a binder's own unbind still does (policy default)."""
    await load_registry(app)
    mother = bearer(await verified_user(client, "mum", MOTHER))
    for user, person in (("mallory", BOB), ("trudy", CAROL)):
        h = bearer(await verified_user(client, user, person))
        await bind(client, h, MOTHER, "parent")
    binders = (await (await client.get("/api/v1/family/binders", headers=mother)).json())["items"]
    assert len(binders) == 2
    resp = await client.delete(f"/api/v1/family/binders/{binders[0]['id']}", headers=mother)
    assert resp.status == 204
    alice = bearer(await verified_user(client, "alice", ALICE))
    assert (await bind(client, alice, MOTHER, "parent"))["state"] == "active"
    # the remaining binder unbinding themselves keeps the slot taken this month
    wife = bearer(await verified_user(client, "wife", WIFE))
    items = (await (await client.get("/api/v1/family/binders", headers=mother)).json())["items"]
    assert len(items) == 2
    app_id = await prepare(client, wife, MOTHER, "parent")
    resp = await submit(client, wife, app_id)
    assert resp.status == 409 and (await error_of(resp))["code"] == "MONTHLY_BINDER_LIMIT"


async def _user_id(client: TestClient, h: dict[str, str]) -> int:
    return int((await (await client.get("/api/v1/me", headers=h)).json())["id"])


async def test_unverified_precheck_learns_nothing(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await login(client, "eve"))
    answers = []
    for person in (MOTHER, ("李秀英", "resident_id", "420102195806122269"), GRANDMA):
        resp = await client.post("/api/v1/family/precheck", json=_body(person), headers=h)
        assert resp.status == 200
        answers.append(await resp.json())
    assert answers[0] == answers[1] == answers[2]
    assert [b["code"] for b in answers[0]["blocking"]] == ["BINDER_NOT_VERIFIED"]
    assert answers[0]["required_materials"] == [] and answers[0]["face_check_required"] is False


async def test_realname_face_first(client: TestClient, app: web.Application) -> None:
    """A bad face token says the same for a registered name + ID and an unknown one."""
    await load_registry(app)
    h = bearer(await login(client, "eve"))
    codes = []
    for number in (MOTHER[2], "420102195806122269"):
        body = {"name": MOTHER[0], "id_type": "resident_id", "id_number": number}
        resp = await client.post(
            "/api/v1/me/realname", json={**body, "face_token": "bad"}, headers=h
        )
        codes.append((resp.status, (await error_of(resp))["code"]))
    assert codes == [(422, "FACE_CHECK_FAILED")] * 2 or codes[0] == codes[1]


async def test_identity_guessing_budget(make_client: Callable[..., Any]) -> None:
    client: TestClient = await make_client(
        **{"family.identity_checks_per_user": 3, "family.identity_checks_per_ip": 4}
    )
    await load_registry(client.server.app)  # type: ignore[arg-type]
    alice = bearer(await verified_user(client, "alice", ALICE))  # 1 of alice's budget
    statuses = []
    for _ in range(3):
        resp = await client.post("/api/v1/family/precheck", json=_body(MOTHER), headers=alice)
        statuses.append(resp.status)
    assert statuses == [200, 200, 429]
    assert 1 <= int(resp.headers["Retry-After"]) <= 86_400
    assert (await error_of(resp))["code"] == "RATE_LIMITED"
    # the same budget covers 共济 authorization and submit
    notice = await (await client.get("/api/v1/mutual-aid/notice", headers=alice)).json()
    body = {**_body(MOTHER), "notice_version": notice["version"], "notice_sha256": notice["sha256"]}
    resp = await client.post("/api/v1/mutual-aid/authorizations", json=body, headers=alice)
    assert resp.status == 429
    # per address too: bob has his own user budget, but the address has spent its 4
    # (alice: real-name + two prechecks; refused attempts stop at her own budget)
    bob = bearer(await verified_user(client, "bob", BOB))  # address: 4 of 4
    resp = await client.post("/api/v1/family/precheck", json=_body(MOTHER), headers=bob)
    assert resp.status == 429


async def test_one_verified_account_per_person(client: TestClient, app: web.Application) -> None:
    """Ten accounts verifying as the same person at once: exactly one succeeds (the unique
    index decides; on PostgreSQL the requests truly race)."""
    await load_registry(app)
    tokens = [bearer(await login(client, f"twin{i}")) for i in range(10)]
    body = {"name": ALICE[0], "id_type": ALICE[1], "id_number": ALICE[2], "face_token": "ok-1"}

    async def verify(h: dict[str, str]) -> tuple[int, str]:
        resp = await client.post("/api/v1/me/realname", json=body, headers=h)
        code = "" if resp.status == 200 else (await error_of(resp))["code"]
        return resp.status, code

    results = await asyncio.gather(*(verify(h) for h in tokens))
    assert sorted(results)[0] == (200, "") and [r for r in results if r[0] == 200] == [(200, "")]
    assert {r for r in results if r[0] != 200} == {(409, "IDENTITY_IN_USE")}
    assert await User.filter(realname_verified=True).count() == 1
    # a verified user cannot re-verify as someone else
    winner = tokens[[r[0] for r in results].index(200)]
    other = {"name": BOB[0], "id_type": BOB[1], "id_number": BOB[2], "face_token": "ok-1"}
    resp = await client.post("/api/v1/me/realname", json=other, headers=winner)
    assert resp.status == 409 and (await error_of(resp))["code"] == "REALNAME_ALREADY_VERIFIED"
    # ... and verifying again as themselves is fine (with a new face check: one is used once)
    again = {**body, "face_token": "ok-2"}
    assert (await client.post("/api/v1/me/realname", json=again, headers=winner)).status == 200
