"""Serving the app with limits on slow and numerous clients (issue #17 finding 10: ~20k
half-sent requests exhausted file descriptors, ``/healthz`` failed, nothing timed out).

* **Connection cap** (``[server] max_connections``): a connection beyond the cap is
  closed as soon as it is accepted (its file descriptor is freed at once).
* **Header timeout** (``header_timeout_s``): a connection waiting for a complete request
  head — just opened, sending its request line byte by byte, or idle after a response —
  is closed once it has waited this long (checked four times per period).
* **Body timeout** (``body_timeout_s``, the :func:`body_deadline` middleware): a request
  whose body has not arrived this long after its head is answered 408
  ``REQUEST_TIMEOUT`` and its connection closed; a handler blocked on the body is woken.

The hooks are aiohttp's own extension points plus a few attributes of its request
handler. **Relies on aiohttp 3.14** (checked on 3.14.5): ``web.Server`` builds the
protocol in ``__call__`` from ``_loop`` and ``_kwargs``; ``RequestHandler`` has
``_waiter`` (pending while it waits for the next request head), ``_messages`` (parsed
heads not yet handled) and ``_request_count``; ``StreamReader.set_exception`` wakes a
reader. ``tests/reliability/test_slow_clients.py::test_aiohttp_internals_we_rely_on``
fails on an aiohttp that changes them.

A reverse proxy in front (docs/operations.md) keeps its own limits; these are the last
line when it is missing or misconfigured.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler

from server.domain.errors import DomainError

__all__ = [
    "BodyTimeout", "ConnectionLimits", "GuardedRunner", "GuardedServer", "body_deadline", "serve",
]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 4096
    header_timeout_s: float = 15.0
    body_timeout_s: float = 120.0


class _Guard:
    """The server's connection count (one event loop: no lock needed)."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.active = 0
        self.refused = 0
        self._logged_at = 0.0

    def note_refusal(self, now: float) -> None:
        self.refused += 1
        if now - self._logged_at >= 10.0:  # a flood logs a line per 10 s, not per socket
            self._logged_at = now
            log.warning(
                "connection cap %d reached: %d connections refused so far",
                self.limits.max_connections, self.refused,
            )


class GuardedRequestHandler(RequestHandler):
    """aiohttp's protocol with the connection cap and the header timeout."""

    __slots__ = ("_counted", "_tick", "_idle_since", "_seen_count")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._counted = False
        self._tick: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        guard = self._guard()
        now = self._loop.time()
        if guard.active >= guard.limits.max_connections:
            guard.note_refusal(now)
            self.force_close()
            return
        guard.active += 1
        self._counted = True
        self._idle_since: float | None = now
        self._seen_count = self._request_count
        self._arm(now)

    def _guard(self) -> _Guard:
        """The connection budget of our server (``_manager`` is a :class:`GuardedServer`)."""
        return cast(GuardedServer, self._manager).guard

    def _arm(self, now: float) -> None:
        period = max(0.05, self._guard().limits.header_timeout_s / 4)
        self._tick = self._loop.call_at(now + period, self._check_head)

    def _check_head(self) -> None:
        """Close a connection that has waited ``header_timeout_s`` for a request head."""
        self._tick = None
        if self._force_close or self._manager is None:
            return
        now = self._loop.time()
        waiter = self._waiter
        waiting = waiter is not None and not waiter.done() and not self._messages
        if not waiting or self._request_count != self._seen_count:
            # busy, or a request came in since the last look: the wait starts again
            self._seen_count = self._request_count
            self._idle_since = now if waiting else None
        elif self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since >= self._guard().limits.header_timeout_s:
            self.force_close()
            return
        self._arm(now)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._counted:
            self._counted = False
            self._guard().active -= 1
        super().connection_lost(exc)


class GuardedServer(web.Server):
    """``web.Server`` whose connections are :class:`GuardedRequestHandler`."""

    guard: _Guard

    def __call__(self) -> RequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """``web.AppRunner`` serving through a :class:`GuardedServer`."""

    def __init__(self, app: web.Application, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # the same Server, built by the app, with our protocol factory
        server.__class__ = GuardedServer
        cast(GuardedServer, server).guard = _Guard(self.limits)
        return server


class BodyTimeout(TimeoutError):
    """Set on a request's body stream when it has not arrived in time.

    A ``TimeoutError``: aiohttp's own draining of an unread body after the response
    treats it as a timeout (closes the connection quietly) rather than as a crash."""


def body_deadline(timeout_s: float) -> Middleware:
    """Middleware: the body must have arrived ``timeout_s`` after the head (else 408)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        content = request.content
        if not request.body_exists or content.is_eof():
            return await handler(request)
        expired = False

        def expire() -> None:
            nonlocal expired
            if not content.is_eof():
                expired = True
                content.set_exception(BodyTimeout())

        # Task.get_loop(): no getpid() syscall (STYLE.md "Known traps")
        timer = request.task.get_loop().call_later(timeout_s, expire)
        try:
            return await handler(request)
        except BodyTimeout:
            if not expired:
                raise
            # 408 with Connection: close (server/http_errors.py)
            raise DomainError("REQUEST_TIMEOUT", "请求超时,请检查网络后重试") from None
        finally:
            timer.cancel()

    return middleware


def serve(
    app: web.Application,
    *,
    host: str,
    port: int,
    loop: asyncio.AbstractEventLoop,
    limits: ConnectionLimits,
) -> None:
    """``web.run_app`` with :class:`GuardedRunner`: serve until SIGINT / SIGTERM."""

    async def main() -> None:
        runner = GuardedRunner(app, limits=limits, access_log=None, handle_signals=True)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        finally:
            await runner.cleanup()

    asyncio.set_event_loop(loop)
    task = loop.create_task(main())
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not task.done():
            task.cancel()
            try:
                loop.run_until_complete(task)
            except (asyncio.CancelledError, web.GracefulExit):
                pass
        rest = asyncio.all_tasks(loop)
        for t in rest:
            t.cancel()
        if rest:
            loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
