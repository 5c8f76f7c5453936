"""Steps of the face check as the mini-program does them, over HTTP."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient


def realname_body(person: tuple[str, str, str]) -> dict[str, str]:
    name, id_type, id_number = person
    return {"purpose": "realname", "name": name, "id_type": id_type, "id_number": id_number}


async def open_session(client: TestClient, h: dict[str, str], body: dict[str, Any]) -> str:
    resp = await client.post("/api/v1/face/sessions", json=body, headers=h)
    assert resp.status == 201, await resp.text()
    out = await resp.json()
    assert set(out) == {"user_id_key", "expires_in"} and out["expires_in"] == 3600
    return str(out["user_id_key"])
