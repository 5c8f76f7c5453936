"""The server's clock a few minutes off against an institution's (issue #15, "Faults").

The institution signs with the true time; the server's wall clock (the institution
directory's ``wall``, what the signature check reads) runs ahead or behind by a given
skew. The window is ``[institution] signature_window_seconds`` (300 s).

Pass rule:
* within the window, either way (server 4 min ahead or behind, and just inside the
  edge), settlements are accepted and applied once;
* beyond it, either way, the request is 401 ``TIMESTAMP_EXPIRED`` with a message saying
  to set the clock right and giving the server's time, the server's time also in
  ``X-Server-Time`` (unix seconds) — and nothing is recorded, the nonce not burnt: the
  same request signed again, once the clocks agree, goes through.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import Settlement
from tests.factories import add_person, error_of, signed_headers
from tests.money.conftest import institution, institution_directory, settlement_body

__all__ = ["institution"]  # the fixture

WINDOW = 300
INSIDE = (-295, -240, -120, 120, 240, 295)  # seconds the server's clock is off
OUTSIDE = (-900, -305, 305, 900)


@pytest.fixture
async def member(app: web.Application) -> Any:
    return await add_person(app, "李秀英", balance_fen=1_000_000)


async def _settle(client: TestClient, inst: dict[str, str], body: bytes, nonce: str) -> Any:
    headers = signed_headers(inst["code"], inst["secret"], body, nonce=nonce)
    return await client.post("/api/v1/institution/settlements", data=body, headers=headers)


async def test_signature_window_works_both_ways_and_beyond_it_is_a_clear_error(
    client: TestClient, app: web.Application, institution: dict[str, str], member: Any
) -> None:
    assert app[keys.settings_key].institution.signature_window_seconds == WINDOW
    directory = institution_directory(app)
    for n, skew in enumerate(INSIDE):
        directory.wall = lambda skew=skew: time.time() + skew
        body = json.dumps(settlement_body(f"SKEW-IN-{n}", "1.00", psn_no=member.psn_no)).encode()
        resp = await _settle(client, institution, body, f"skew-in-{n}-nonce")
        assert resp.status == 201, (skew, await resp.text())

    for n, skew in enumerate(OUTSIDE):
        directory.wall = lambda skew=skew: time.time() + skew
        body = json.dumps(settlement_body(f"SKEW-OUT-{n}", "1.00", psn_no=member.psn_no)).encode()
        nonce = f"skew-out-{n}-nonce"
        resp = await _settle(client, institution, body, nonce)
        assert resp.status == 401, (skew, await resp.text())
        error = await error_of(resp)
        assert error["code"] == "TIMESTAMP_EXPIRED"
        assert "校准系统时间" in error["message"] and "服务器时间" in error["message"]
        assert abs(int(resp.headers["X-Server-Time"]) - (time.time() + skew)) < 5
        # nothing recorded; once the clocks agree, the same request (same nonce) is fine
        assert not await Settlement.filter(setl_id=f"SKEW-OUT-{n}").exists()
        directory.wall = time.time
        resp = await _settle(client, institution, body, nonce)
        assert resp.status == 201, (skew, await resp.text())

    assert await Settlement.all().count() == len(INSIDE) + len(OUTSIDE)
