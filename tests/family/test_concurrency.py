"""The binding limits hold under concurrent submits (issue #3 "Limits, enforced atomically").

Run on both backends; the PostgreSQL pass is the one that matters: there each request
runs in its own transaction on its own pooled connection, and only the row locks
(member's registry row, then the binder's user row) keep the counts honest; the last
test does it with three separate server processes. Each of them fails without the locks
(checked by removing them).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import Application, Binding, InsuredPerson
from server.domain.registry import id_hash
from tests.conftest import PG_URL, REDIS_URL
from tests.factories import bearer, error_of, verified_user
from tests.family.helpers import (
    ALICE,
    BABY,
    BOB,
    CAROL,
    DAUGHTER,
    DAVE,
    FATHER,
    MOTHER,
    NEWBORN,
    SON,
    WIFE,
    load_registry,
    prepare,
    submit,
)


async def test_three_binders_for_one_member_at_once(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    users = [
        bearer(await verified_user(client, name, person))
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
    h = bearer(await verified_user(client, "alice", ALICE))
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
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "parent")
    responses = await asyncio.gather(*(submit(client, h, app_id) for _ in range(4)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [200, 409, 409, 409], statuses
    for r in responses:
        if r.status == 409:
            assert (await error_of(r))["code"] == "APPLICATION_STATE_CONFLICT"
    assert await Binding.all().count() == 1


@pytest.mark.skipif(
    not PG_URL or not REDIS_URL, reason="several server processes need PostgreSQL + Redis"
)
async def test_limits_hold_across_server_processes(
    client: TestClient, app: web.Application, tmp_path: Path, unused_tcp_port_factory: Any
) -> None:
    """Three separate ``python -m server`` processes on one PostgreSQL: the row locks,
    not anything in one process's memory, keep the limits."""
    await load_registry(app)
    binders = [
        bearer(await verified_user(client, name, person))
        for name, person in (("alice", ALICE), ("bob", BOB), ("carol", CAROL))
    ]
    same_member = [await prepare(client, h, MOTHER, "parent") for h in binders]
    # a fourth binder with six members ready (his limit is five)
    dave = bearer(await verified_user(client, "dave", DAVE))
    adults = [(FATHER, "parent"), (WIFE, "spouse")]
    minors = [(SON, "child"), (DAUGHTER, "child"), (BABY, "child"), (NEWBORN, "child")]
    dave_apps = [await prepare(client, dave, p, r) for p, r in adults]
    dave_apps += [
        await prepare(client, dave, p, r, kinds=("birth_certificate",)) for p, r in minors
    ]

    ports = [unused_tcp_port_factory() for _ in range(3)]
    procs = []
    try:
        for i, port in enumerate(ports):
            env = {
                **os.environ,
                "APP_ENV": "local",
                "DATABASE_URL": PG_URL,
                "DATABASE_SCHEMA": "none",
                "REDIS_URL": REDIS_URL,
                "DATA_DIR": str(tmp_path / f"p{i}"),
                "DEMO_DATA": "false",
                "RUN_WORKER": "false",
            }
            for var in ("WECHAT_API_BASE", "FACE_API_BASE", "CONFIG_FILE", "HOST", "PORT"):
                env.pop(var, None)
            procs.append(_start_server(port, env, tmp_path / f"server{i}.log"))
        bases = [f"http://127.0.0.1:{p}/api/v1" for p in ports]
        async with aiohttp.ClientSession() as s:
            await asyncio.gather(*(_wait_ready(s, b) for b in bases))

            async def post(base: str, h: dict[str, str], app_id: str) -> tuple[int, dict[str, Any]]:
                url = f"{base}/family/applications/{app_id}/submit"
                async with s.post(url, json={"member_face_token": "ok"}, headers=h) as r:
                    return r.status, await r.json()

            # 3 binders, one member, each through its own process, at once → exactly 2
            got = await asyncio.gather(
                *(post(b, h, a) for b, h, a in zip(bases, binders, same_member))
            )
            assert sorted(st for st, _ in got) == [200, 200, 409], got
            assert [body["error"]["code"] for st, body in got if st == 409] == [
                "MONTHLY_BINDER_LIMIT"
            ]
            # one binder, six members spread over the processes at once → exactly 5
            got = await asyncio.gather(
                *(post(bases[i % 3], dave, a) for i, a in enumerate(dave_apps))
            )
            assert sorted(st for st, _ in got) == [200] * 5 + [409], got
            assert [b["error"]["code"] for st, b in got if st == 409] == ["MEMBER_LIMIT_REACHED"]
            dave_id = (await (await client.get("/api/v1/me", headers=dave)).json())["id"]
            # dave is no registered guardian: his minors wait for a reviewer (issue #17),
            # holding his slots all the same
            active = await Binding.filter(binder_id=dave_id, state="active").count()
            waiting = await Application.filter(binder_id=dave_id, state="pending_review").count()
            assert active + waiting == 5 and active >= 1
    finally:
        for proc in procs:
            _stop(proc)


def _start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "server", "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def _wait_ready(s: aiohttp.ClientSession, base: str) -> None:
    root = base.rsplit("/api/v1", 1)[0]
    for _ in range(600):  # a busy CI machine may take a while to import and start
        try:
            async with s.get(f"{root}/readyz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{root} did not become ready")
