"""Digits are ASCII digits: no request model of any route (walked from the router) has a
pattern with ``\\d``, which pydantic's regex engine — like Python's — lets match any
Unicode digit (issue #17 finding 9: ``"1٠.00"`` settled as 10.00 yuan)."""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.factories import bearer, error_of, login
from tests.security.routes import all_routes


def test_no_request_pattern_says_backslash_d(app: web.Application) -> None:
    found = []
    for r in all_routes(app):
        spec = r.spec
        if spec is None:
            continue
        for model in (spec.body, spec.query):
            if model is None:
                continue
            schema = json.dumps(model.model_json_schema())
            if "\\\\d" in schema:
                found.append((r.method, r.path, model.__name__))
    assert not found, f"patterns with \\d (use [0-9]): {found}"


async def test_a_voucher_password_of_arabic_indic_digits_is_refused(client: TestClient) -> None:
    h = bearer(await login(client, "alice"))
    resp = await client.put(
        "/api/v1/family/members/00000000-0000-0000-0000-000000000000/voucher-password",
        json={"password": "١٣٥٧٩٠"},
        headers=h,
    )
    assert resp.status == 422
    assert (await error_of(resp))["fields"] == {"password": "INVALID_FORMAT"}
