"""Institution lifecycle through the CLI and the signed API: list, disable / enable, rotate
with an overlap window, every change logged; a disabled institution gets 401 within the
directory's cache time (docs/money.md: ``[institution_api] cache_seconds``, 5 s)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain import institutions
from server.domain.clock import SHANGHAI
from server.domain.models import InstitutionEvent, Settlement
from tests.factories import add_person, error_of, post_signed
from tests.money.conftest import institution_directory, run_cli, settlement_body


@pytest.fixture
async def member(app: web.Application) -> Any:
    return await add_person(app, "李秀英", balance_fen=10_000)


async def _settle(client: TestClient, code: str, secret: str, setl_id: str, member: Any) -> Any:
    body = settlement_body(setl_id, "1.00", psn_no=member.psn_no)
    return await post_signed(client, "/settlements", body, code=code, secret=secret)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_disabled_institution_is_refused_within_the_cache_time(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    code, secret = institution["code"], institution["secret"]
    clock = Clock()
    institution_directory(app).monotonic = clock
    ttl = app[keys.settings_key].institution_api.cache_seconds
    assert ttl == 5  # what docs/money.md states
    assert (await _settle(client, code, secret, "S1", member)).status == 201
    assert await institutions.set_active(code, False, actor="test")
    # inside the cache time a server may still accept it …
    clock.now += ttl - 0.5
    assert (await _settle(client, code, secret, "S2", member)).status == 201
    # … from the cache time on, every server refuses
    clock.now += 0.5
    resp = await _settle(client, code, secret, "S3", member)
    assert resp.status == 401 and (await error_of(resp))["code"] == "INSTITUTION_UNKNOWN"
    assert not await institutions.set_active(code, False, actor="test")  # already: no event
    assert await institutions.set_active(code, True, actor="test")
    clock.now += ttl
    assert (await _settle(client, code, secret, "S3", member)).status == 201
    actions = await InstitutionEvent.filter(institution_id=code).order_by("id").values_list(
        "action", flat=True
    )
    assert actions == ["added", "disabled", "enabled"]


async def test_rotation_overlap(
    client: TestClient,
    app: web.Application,
    institution: dict[str, str],
    member: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    code, old = institution["code"], institution["secret"]
    pii = app[keys.pii_key]
    directory = institution_directory(app)
    directory.monotonic = clock = Clock()
    with caplog.at_level(logging.INFO, logger="server.domain.institutions"):
        new, until = await institutions.rotate_secret(code, pii=pii, actor="ops")
    assert until is not None and timedelta(hours=23, minutes=59) < until - datetime.now(SHANGHAI) <= timedelta(hours=24)
    clock.now += 5  # past the cache: the new row is read
    # during the overlap both secrets verify
    assert (await _settle(client, code, old, "S1", member)).status == 201
    assert (await _settle(client, code, new, "S2", member)).status == 201
    # the window's end is checked against the wall clock on every request, cache or not
    day_later = until.timestamp() + 1
    found = await directory.lookup(code, ttl=5, pii=pii, now=day_later)
    assert found is not None and found[1] == (new,)
    # a rotation whose window is over: only the newest secret verifies
    newest, _ = await institutions.rotate_secret(
        code, pii=pii, overlap=timedelta(hours=1), now=datetime.now(SHANGHAI) - timedelta(hours=2)
    )
    clock.now += 5
    resp = await _settle(client, code, new, "S3", member)
    assert resp.status == 401 and (await error_of(resp))["code"] == "SIGNATURE_INVALID"
    assert (await _settle(client, code, newest, "S3", member)).status == 201
    # overlap 0: the old secret stops at once
    latest, none = await institutions.rotate_secret(code, pii=pii, overlap=timedelta(0))
    assert none is None
    clock.now += 5
    assert (await _settle(client, code, newest, "S4", member)).status == 401
    assert (await _settle(client, code, latest, "S4", member)).status == 201
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"institution {code}: rotated by ops" in logged
    assert old not in logged and new not in logged  # never a secret in the log
    events = await InstitutionEvent.filter(institution_id=code, action="rotated").count()
    assert events == 3


async def test_lifecycle_through_the_cli(
    client: TestClient,
    app: web.Application,
    institution: dict[str, str],
    member: Any,
    settings: Any,
) -> None:
    code, old = institution["code"], institution["secret"]
    institution_directory(app).monotonic = clock = Clock()
    rc, out, err = await run_cli(settings, "institution", "rotate", code, "--overlap", "2h")
    assert rc == 0, err
    new = out.splitlines()[1].strip()
    assert len(new) >= 40 and "the old secret verifies until" in out
    clock.now += 5
    assert (await _settle(client, code, old, "S1", member)).status == 201
    assert (await _settle(client, code, new, "S2", member)).status == 201

    rc, out, err = await run_cli(settings, "institution", "disable", code)
    assert rc == 0 and f"institution {code} disabled" in out and "within 5 s" in out, err
    clock.now += 5
    resp = await _settle(client, code, new, "S3", member)
    assert resp.status == 401 and (await error_of(resp))["code"] == "INSTITUTION_UNKNOWN"

    rc, out, _ = await run_cli(settings, "institution", "list")
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith(code))
    assert "DISABLED" in row and "disabled" in row and "(cli)" in row
    assert old not in out and new not in out

    rc, out, err = await run_cli(settings, "institution", "enable", "NOPE")
    assert rc == 1 and "INSTITUTION_NOT_FOUND" in err
    rc, _, err = await run_cli(settings, "institution", "rotate", code, "--overlap", "1y")
    assert rc == 1 and "INVALID_OVERLAP" in err
    assert await Settlement.all().count() == 2
