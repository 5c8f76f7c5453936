"""Responses are checked against their declared models in every test (tests/response_check.py,
installed by ``serving()``); here the check itself is shown to catch what it should."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient

from miniapp_api.schemas import MeOut, SettlementItemOut, SettlementListOut
from server.openapi import EndpointSpec
from tests.factories import bearer, login
from tests.response_check import ResponseMismatch, check_response

SPEC = EndpointSpec(summary="我的信息", response=MeOut)


def test_a_response_unlike_its_model_fails() -> None:
    with pytest.raises(ResponseMismatch, match="does not match MeOut"):
        check_response(SPEC, 200, json.dumps({"id": "not a number"}).encode(), "GET /me")
    with pytest.raises(ResponseMismatch, match="declares 200"):
        check_response(SPEC, 201, b"{}", "GET /me")
    with pytest.raises(ResponseMismatch, match="does not match _ErrorEnvelope"):
        check_response(SPEC, 404, json.dumps({"detail": "Not Found"}).encode(), "GET /me")
    check_response(SPEC, 404, json.dumps({"error": {"code": "NOT_FOUND", "message": "不存在"}}).encode(), "x")


def test_settlement_items_are_typed() -> None:
    """``SettlementListOut.items`` is a list of the item model, in the OpenAPI document too."""
    assert SettlementListOut.model_fields["items"].annotation == list[SettlementItemOut]
    schema = SettlementListOut.model_json_schema()
    assert schema["properties"]["items"]["items"] == {"$ref": "#/$defs/SettlementItemOut"}


async def test_the_check_sees_the_api_answers(client: TestClient) -> None:
    """An answer that broke its model would fail the request's test with a 500 from the
    middleware; the document lists the item model."""
    tokens = await login(client, "alice")
    me = await client.get("/api/v1/me", headers=bearer(tokens))
    assert me.status == 200
    MeOut.model_validate(await me.json())
    doc = await (await client.get("/api/openapi.json")).json()
    assert "SettlementItemOut" in doc["components"]["schemas"]
