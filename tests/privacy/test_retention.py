"""Uploaded materials are purged a policy-set time after the application is decided, never
while it waits (PIPL art. 19; issue #12); each purge is logged. The job runs in the
embedded server (and the push worker process)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.clock import utc_now
from server.domain.models import Application, Material, MaterialPurge
from server.privacy.job import PrivacyJob
from tests.factories import bearer, error_of, verified_user
from tests.family.helpers import (
    ALICE,
    FATHER,
    GRANDMA,
    HK,
    MOTHER,
    WIFE,
    create,
    load_registry,
    prepare,
    submit,
    upload,
)


def stored(app: web.Application) -> set[Path]:
    root = Path(app[keys.storage_key].root)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


async def materials_of(app_id: str) -> int:
    return await Material.filter(application_id=app_id).count()


async def test_purged_after_the_decision_never_while_waiting(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    active = await prepare(client, h, MOTHER, "parent")
    assert (await (await submit(client, h, active)).json())["state"] == "active"
    review = await prepare(client, h, HK, "spouse", kinds=("travel_permit",))
    assert (await (await submit(client, h, review)).json())["state"] == "pending_review"
    draft = (await create(client, h, FATHER, "parent"))["id"]
    assert (await upload(client, h, draft)).status == 201
    # states a later flow adds (issue 11: needs_action, correction_requested) wait too
    waiting = {}
    for person, state in ((GRANDMA, "needs_action"), (WIFE, "correction_requested")):
        app_id = await prepare(client, h, person, "parent" if person is GRANDMA else "spouse")
        await Application.filter(id=app_id).update(state=state)
        waiting[state] = app_id
    files_before = stored(app)
    assert len(files_before) == 5  # one material each
    assert keys.privacy_job_key not in app  # the test settings run no worker: driven by hand

    job = PrivacyJob(
        config=app[keys.privacy_config_key],
        storage=app[keys.storage_key],
        deletion=app[keys.deletion_key],
        redis=app[keys.redis_key],
    )
    decided_at = (await Application.get(id=active)).decided_at
    assert decided_at is not None
    # 89 days on: nothing is due yet
    job.clock = lambda: utc_now() + timedelta(days=89)
    assert (await job.run_once()).purged == 0
    # 91 days on: the decided application's material and the idle draft's go
    job.clock = lambda: utc_now() + timedelta(days=91)
    result = await job.run_once()
    assert result.ran and result.purged == 2
    assert await materials_of(active) == 0 and await materials_of(draft) == 0
    assert await materials_of(review) == 1
    for app_id in waiting.values():
        assert await materials_of(app_id) == 1
    # years later, still never while waiting for a reviewer, the binder or a correction
    job.clock = lambda: utc_now() + timedelta(days=3650)
    assert (await job.run_once()).purged == 0

    logged = await MaterialPurge.all().order_by("application_state")
    assert [(p.application_state, p.reason, p.rule) for p in logged] == [
        ("active", "retention", "privacy.materials_retention_days=90"),
        ("materials", "retention", "privacy.draft_retention_days=90"),
    ]
    assert logged[0].decided_at == decided_at and logged[0].kind == "household_register"
    assert len(files_before - stored(app)) == 2
    # the binder reading a purged material learns it is gone
    view = await (await client.get(f"/api/v1/family/applications/{active}", headers=h)).json()
    assert view["materials"] == []
    gone = await client.get(
        f"/api/v1/family/applications/{active}/materials/{logged[0].material_id}", headers=h
    )
    assert gone.status == 404 and (await error_of(gone))["code"] in ("NOT_FOUND", "MATERIAL_NOT_FOUND")


async def test_the_embedded_server_runs_the_job(make_settings: Callable[..., Any]) -> None:
    from server.app import create_app
    from tests.conftest import serving

    settings = make_settings(**{"server.run_worker": True, "privacy.job_interval_seconds": 0.05})
    async with serving(create_app(settings)) as client:
        app = client.server.app
        job = app[keys.privacy_job_key]
        for _ in range(3):  # rounds keep coming at the interval
            await asyncio.wait_for(job.round_done.wait(), timeout=10)
        assert job.rounds >= 3
        # one round at a time across processes: a held lock makes a round step aside
        await app[keys.redis_key].set("privacy:job", b"1", ex=60)
        assert (await job.run_once()).ran is False


async def test_the_push_worker_process_runs_the_job(
    client: TestClient, app: web.Application, fake_wechat: tuple[str, Any], tmp_path: Path
) -> None:
    """``python -m server worker`` purges too (PostgreSQL + Redis: the worker's backends)."""
    from tests.conftest import PG_URL, REDIS_URL

    if not (PG_URL and REDIS_URL):
        pytest.skip("the worker process needs PostgreSQL + Redis (pass 2)")
    from tests.push.test_workers_multiprocess import spawn, stop

    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    active = await prepare(client, h, MOTHER, "parent")
    assert (await (await submit(client, h, active)).json())["state"] == "active"
    await Application.filter(id=active).update(decided_at=utc_now() - timedelta(days=100))
    (before,) = stored(app)
    proc = spawn(tmp_path, fake_wechat[0], "worker")
    try:
        for _ in range(600):  # bounded: up to 60 s for start-up and the first round
            if await MaterialPurge.exists(application_id=active) or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        stop(proc)
    log = (tmp_path / "worker.log").read_text()
    assert "privacy job started" in log, log
    assert await MaterialPurge.filter(application_id=active, reason="retention").count() == 1
    assert not before.exists()
