"""Slow and numerous clients (issue #17 finding 10): ~20k half-sent requests exhausted file
descriptors, ``/healthz`` failed and nothing timed out. Against the real server process
(``python -m server``, ``server/serving.py``) with a small cap and short timeouts; the
last test runs the same machinery in-process and checks the aiohttp internals it uses."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web

from server.middlewares import error_envelope
from server.serving import (
    BodyTimeout,
    ConnectionLimits,
    GuardedRequestHandler,
    GuardedRunner,
    GuardedServer,
    body_deadline,
)
from tests.reliability.servers import server_process

CAP = 50
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5
TICK = HEADER_TIMEOUT / 4  # the header check's period


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("slow")
    config = workdir / "limits.toml"
    config.write_text(
        f"[server]\nmax_connections = {CAP}\nheader_timeout_s = {HEADER_TIMEOUT}\n"
        f"body_timeout_s = {BODY_TIMEOUT}\n"
    )
    env = {"CONFIG_FILE": str(config), "DEMO_DATA": "false"}
    with server_process(env, workdir) as url:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError((workdir / "server.log").read_text()[-3000:])
            time.sleep(0.1)
        yield url


def _addr(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


async def _healthz(base: str) -> int:
    # a fresh connection, not kept: it must not count against the cap afterwards
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        async with s.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r:
            return r.status


# our side of the sockets: kept referenced (a collected StreamWriter closes its socket)
_writers: list[asyncio.StreamWriter] = []


@pytest.fixture(autouse=True)
async def _close_writers() -> AsyncIterator[None]:
    yield
    for writer in _writers:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in _writers), return_exceptions=True)
    _writers.clear()


async def _connect(base: str) -> asyncio.StreamReader:
    reader, writer = await asyncio.open_connection(*_addr(base))
    _writers.append(writer)
    return reader


async def _half_sent(base: str, n: int, data: bytes = b"GET /hea") -> list[asyncio.StreamReader]:
    """``n`` connections that sent part of a request line and nothing more."""
    readers = []
    for _ in range(n):
        readers.append(await _connect(base))
        _writers[-1].write(data)
    return readers


async def _closed_at(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds after ``started`` at which the server closed the connection."""
    try:
        data = await asyncio.wait_for(reader.read(), timeout=10)
        assert data == b"", data[:200]
    except ConnectionResetError:
        pass
    return time.monotonic() - started


async def test_half_sent_requests_are_closed_and_healthz_answers(base: str) -> None:
    started = time.monotonic()
    readers = await _half_sent(base, 40)
    # a client trickling its request line byte by byte gets no more time
    trickle_reader = await _connect(base)
    trickle = _writers[-1]

    async def drip() -> None:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
            if trickle.is_closing():
                return
            trickle.write(bytes([byte]))
            await asyncio.sleep(0.1)

    dripping = asyncio.ensure_future(drip())
    # while they hang, the server still answers
    assert await _healthz(base) == 200
    times = await asyncio.gather(*(_closed_at(r, started) for r in [*readers, trickle_reader]))
    dripping.cancel()
    assert all(HEADER_TIMEOUT * 0.9 <= t <= HEADER_TIMEOUT + TICK + 1.5 for t in times), times
    assert await _healthz(base) == 200


async def test_the_connection_cap_holds(base: str) -> None:
    started = time.monotonic()
    readers = await _half_sent(base, CAP + 30)
    closing = [asyncio.ensure_future(_closed_at(r, started)) for r in readers]
    await asyncio.sleep(HEADER_TIMEOUT * 0.6)
    refused = [c for c in closing if c.done()]
    assert len(refused) == 30  # the ones beyond the cap, closed at once
    times = await asyncio.gather(*closing)
    assert sorted(times)[30] >= HEADER_TIMEOUT * 0.9  # the rest waited for the head timeout
    assert await _healthz(base) == 200  # all gone: the server takes connections again


async def test_a_body_that_never_arrives_is_408(base: str) -> None:
    reader = await _connect(base)
    started = time.monotonic()
    _writers[-1].write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{\"code\": "
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    elapsed = time.monotonic() - started
    assert head.startswith(b"HTTP/1.1 408"), head
    assert BODY_TIMEOUT * 0.9 <= elapsed <= BODY_TIMEOUT + 2
    length = int(next(
        line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    ))
    body = json.loads(await reader.readexactly(length))
    assert body["error"]["code"] == "REQUEST_TIMEOUT" and body["error"]["message"]
    assert await _closed_at(reader, started) <= BODY_TIMEOUT + 3  # and the connection goes


# ---- the same machinery in-process: fails when aiohttp changes what it relies on -------


@pytest.fixture
async def tiny() -> AsyncIterator[tuple[str, GuardedRunner]]:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application(middlewares=[error_envelope, body_deadline(0.3)])
    app.router.add_post("/echo", echo)
    runner = GuardedRunner(app, limits=ConnectionLimits(max_connections=3, header_timeout_s=0.4))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", runner
    finally:
        await runner.cleanup()


async def test_aiohttp_internals_we_rely_on(tiny: tuple[str, GuardedRunner]) -> None:
    """Relies on aiohttp 3.14 (server/serving.py): the protocol is ours, its attributes
    exist, and the cap, the head timeout and the body timeout each work."""
    base, runner = tiny
    server = runner.server
    assert isinstance(server, GuardedServer)
    readers = await _half_sent(base, 3)
    for _ in range(50):
        if len(server.connections) == 3:
            break
        await asyncio.sleep(0.01)
    handlers = server.connections
    assert len(handlers) == 3 and all(isinstance(h, GuardedRequestHandler) for h in handlers)
    for h in handlers:  # what GuardedRequestHandler._check_head reads
        assert isinstance(h._request_count, int)
        assert len(h._messages) == 0
        assert h._waiter is not None and not h._waiter.done()
    assert server.guard.active == 3
    started = time.monotonic()
    extra = await _connect(base)
    assert await _closed_at(extra, started) < 0.3  # beyond the cap: closed at once
    times = await asyncio.gather(*(_closed_at(r, started) for r in readers))
    assert all(0.3 <= t <= 1.5 for t in times), times
    for _ in range(50):
        if server.guard.active == 0:
            break
        await asyncio.sleep(0.01)
    assert server.guard.active == 0
    # a complete request is answered; a body that stops is woken with BodyTimeout → 408
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/echo", data=b"hello") as r:
            assert await r.read() == b"hello"
    reader = await _connect(base)
    _writers[-1].write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert head.startswith(b"HTTP/1.1 408"), head
    assert issubclass(BodyTimeout, TimeoutError)
