"""Errors, limits and operations endpoints."""

from __future__ import annotations

import asyncio
import shutil
import socket
from typing import Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server import keys
from server.app import create_app
from server.settings import Settings
from tests.factories import error_of, login


async def test_malformed_json_is_400(client: TestClient) -> None:
    resp = await client.post("/api/v1/auth/login", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await error_of(resp))["code"] == "MALFORMED_JSON"
    resp = await client.post("/api/v1/auth/login", json=["a", "list"])
    assert resp.status == 400


async def test_invalid_field_is_422_with_fields(client: TestClient) -> None:
    resp = await client.post("/api/v1/auth/login", json={"code": "", "extra": 1})
    assert resp.status == 422
    err = await error_of(resp)
    assert err["code"] == "VALIDATION_FAILED"
    assert err["fields"] == {"code": "TOO_SHORT", "extra": "UNKNOWN_FIELD"}


async def test_body_too_large_is_413_json(client: TestClient, settings: Settings) -> None:
    import io

    # over the JSON limit (but under the upload limit)
    big = b'{"code": "' + b"x" * (settings.server.max_body_bytes + 10) + b'"}'
    resp = await client.post("/api/v1/auth/login", data=io.BytesIO(big), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await error_of(resp))["code"] == "PAYLOAD_TOO_LARGE"
    # over the server's absolute limit
    huge = b"x" * (settings.server.max_upload_bytes + 10)
    resp = await client.post("/api/v1/auth/login", data=io.BytesIO(huge), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert (await error_of(resp))["code"] == "PAYLOAD_TOO_LARGE"


async def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    resp = await client.get("/api/v1/nope")
    assert resp.status == 404 and resp.content_type == "application/json"
    assert (await error_of(resp))["code"] == "NOT_FOUND"
    resp = await client.get("/api/v1/auth/login")
    assert resp.status == 405
    assert (await error_of(resp))["code"] == "METHOD_NOT_ALLOWED"


async def test_unexpected_exception_is_json_500_with_request_id(client: TestClient, app, caplog) -> None:
    async def boom() -> None:
        raise RuntimeError("kaboom 420102199003071232")

    # Break a dependency the /me handler uses, as a bug would.
    auth = app[keys.auth_key]
    original = auth.verify_access

    async def broken(token: str) -> int:
        await boom()
        return 0

    auth.verify_access = broken  # type: ignore[method-assign]
    try:
        resp = await client.get("/api/v1/me", headers={"Authorization": "Bearer x", "X-Request-Id": "rid-123"})
    finally:
        auth.verify_access = original  # type: ignore[method-assign]
    assert resp.status == 500 and resp.content_type == "application/json"
    err = await error_of(resp)
    assert err["code"] == "INTERNAL_ERROR" and err["request_id"] == "rid-123"
    assert "kaboom" not in await resp.text()
    assert resp.headers["X-Request-Id"] == "rid-123"


async def test_healthz_readyz_metrics(client: TestClient) -> None:
    assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": "ok", "redis": "ok"}
    await login(client, "mia")
    text = await (await client.get("/metrics")).text()
    assert 'http_requests_total{method="POST",route="/api/v1/auth/login",status="200"} 1.0' in text
    assert "http_request_duration_seconds_bucket" in text


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (installed by .ci/run)")
async def test_readyz_fails_when_redis_is_stopped(make_settings: Callable[..., Settings], tmp_path) -> None:
    """A real Redis server, really stopped: readiness turns 503 while the DB stays ok."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        app = create_app(make_settings(**{"redis.url": f"redis://127.0.0.1:{port}/0"}))
        for _ in range(50):  # wait until redis accepts connections
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/readyz")).status == 200
            proc.terminate()
            await proc.wait()
            resp = await client.get("/readyz")
            assert resp.status == 503
            body = await resp.json()
            assert body["checks"]["redis"].startswith("down") and body["checks"]["database"] == "ok"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_openapi_describes_implemented_endpoints(client: TestClient) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    login_op = doc["paths"]["/api/v1/auth/login"]["post"]
    assert login_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/LoginIn")
    assert doc["components"]["schemas"]["LoginIn"]["properties"]["code"]["type"] == "string"
    assert "security" in doc["paths"]["/api/v1/me"]["get"]


async def test_production_refuses_demo_secrets(make_settings: Callable[..., Settings]) -> None:
    import pytest

    with pytest.raises(ValueError, match="demo"):
        make_settings(**{"server.env": "production"})


async def test_request_log_masks_personal_data(caplog) -> None:
    import logging

    from server.domain.pii import ScrubbingFilter

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "id %s phone %s", ("420102199003071232", "13812345678"), None)
    ScrubbingFilter().filter(record)
    assert record.getMessage() == "id 4201**********1232 phone 138****5678"
