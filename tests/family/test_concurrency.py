"""The binding limits hold under concurrent submits (issue #3 "Limits, enforced atomically").

Run on both backends; the PostgreSQL pass is the one that matters: there each request
runs in its own transaction on its own pooled connection, and only the row locks
(member's registry row, then the binder's user row) keep the counts honest.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import Application, Binding, InsuredPerson
from server.domain.registry import id_hash
from tests.factories import error_of
from tests.family.helpers import (
    ALICE,
    BABY,
    BOB,
    CAROL,
    DAUGHTER,
    FATHER,
    MOTHER,
    SON,
    WIFE,
    load_registry,
    prepare,
    submit,
    verified_user,
)


async def test_three_binders_for_one_member_at_once(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    users = [
        await verified_user(client, name, person)
        for name, person in (("alice", ALICE), ("bob", BOB), ("carol", CAROL))
    ]
    apps = [await prepare(client, h, MOTHER, "parent") for h in users]
    for _ in range(3):  # a few rounds: the race must never slip through
        responses = await asyncio.gather(*(submit(client, h, a) for h, a in zip(users, apps)))
        statuses = sorted(r.status for r in responses)
        assert statuses == [200, 200, 409], statuses
        loser = next(r for r in responses if r.status == 409)
        assert (await error_of(loser))["code"] == "MONTHLY_BINDER_LIMIT"
        member = await InsuredPerson.get(id_hash=id_hash(app[keys.pii_key], *MOTHER[1:]))
        assert await Binding.filter(member_id=member.id).count() == 2
        # reset for the next round
        await Binding.all().delete()
        await Application.all().delete()
        apps = [await prepare(client, h, MOTHER, "parent") for h in users]


async def test_six_members_for_one_binder_at_once(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = await verified_user(client, "alice", ALICE)
    adults = [(MOTHER, "parent"), (FATHER, "parent"), (WIFE, "spouse")]
    children = [(SON, "child"), (DAUGHTER, "child"), (BABY, "child")]
    apps = [await prepare(client, h, p, r) for p, r in adults]
    apps += [await prepare(client, h, p, r, kinds=("birth_certificate",)) for p, r in children]
    responses = await asyncio.gather(*(submit(client, h, a) for a in apps))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] * 5 + [409], statuses
    loser = next(r for r in responses if r.status == 409)
    assert (await error_of(loser))["code"] == "MEMBER_LIMIT_REACHED"
    assert await Binding.filter(state="active").count() == 5


async def test_double_submit_of_one_application(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = await verified_user(client, "alice", ALICE)
    app_id = await prepare(client, h, MOTHER, "parent")
    responses = await asyncio.gather(*(submit(client, h, app_id) for _ in range(4)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 409, 409, 409], statuses
    for r in responses:
        if r.status == 409:
            assert (await error_of(r))["code"] == "APPLICATION_STATE_CONFLICT"
    assert await Binding.all().count() == 1
