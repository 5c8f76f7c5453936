"""Oversized requests: bodies past their limit on every kind of route (JSON, upload,
signed, bot XML, console form), chunked or announced, and headers / URLs past the
parser's limits — each a clean 4xx (413 / 400 / 431 / 414), never a 500, and the server
still answers after."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.factories import bearer, login, signed_headers

LIMIT = 4096


async def _chunks(data: bytes, size: int = 1024) -> Any:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_bodies_past_their_limit_are_413(make_client: Callable[..., Any]) -> None:
    client = await make_client(**{"server.max_body_bytes": LIMIT, "server.max_upload_bytes": 2 * LIMIT})
    app = client.server.app
    from tests.factories import add_institution

    secret = await add_institution(app, "H50001", "甲医院")
    h = bearer(await login(client, "alice"))
    big_json = b'{"code": "' + b"x" * (LIMIT * 2) + b'"}'
    huge = b"x" * (LIMIT * 8)  # past client_max_size (the larger of the two limits)
    cases: list[tuple[str, str, dict[str, str], Any]] = [
        ("POST", "/api/v1/auth/login", {"Content-Type": "application/json"}, big_json),
        ("POST", "/api/v1/auth/login", {"Content-Type": "application/json"}, _chunks(big_json)),
        ("POST", "/api/v1/privacy/consents", {**h, "Content-Type": "application/json"}, big_json),
        ("POST", "/api/v1/institution/settlements", signed_headers("H50001", secret, big_json), big_json),
        ("POST", "/api/v1/institution/settlements", signed_headers("H50001", secret, huge), _chunks(huge)),
        ("POST", "/wechat/official?signature=x&timestamp=1&nonce=n", {"Content-Type": "text/xml"}, huge),
        ("POST", "/review/login", {"Content-Type": "application/x-www-form-urlencoded"}, b"name=" + huge),
        ("POST", "/api/v1/family/precheck", {**h, "Content-Type": "application/json"}, _chunks(huge)),
    ]
    for method, path, headers, data in cases:
        resp = await client.request(method, path, headers=headers, data=data)
        text = await resp.text()
        assert resp.status in (413, 403), (path, resp.status, text[:200])  # the bot: 403 unsigned first
        assert "Traceback" not in text
    # an upload past its limit: 413, nothing kept
    form = aiohttp.FormData()
    form.add_field("kind", "household_register")
    form.add_field("file", b"\x89PNG\r\n\x1a\n" + b"x" * (LIMIT * 3), filename="x.png", content_type="image/png")
    resp = await client.post("/api/v1/family/applications/00000000-0000-0000-0000-000000000000/materials",
                             data=form, headers=h)
    assert resp.status in (404, 413)
    assert (await client.get("/healthz")).status == 200


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), timeout=10)
    finally:
        writer.close()


async def test_headers_and_urls_past_the_parser_limits(make_client: Callable[..., Any]) -> None:
    client = await make_client()
    port = client.server.port
    assert port is not None
    cases = [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10_000)) + b"\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 60_000 + b"\r\n\r\n",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
    ]
    for raw in cases:
        answer = await _raw(port, raw)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.") else 0
        assert 400 <= status < 500 or answer == b"", answer[:200]
        assert b"Traceback" not in answer
    assert (await client.get("/healthz")).status == 200
