"""Real outages for tests: a loopback TCP relay that can be cut, and the embedded Redis' own
"connection error" switch.

``Relay`` sits between the app and a real server (PostgreSQL, Redis): cut, every open
connection is reset and new ones are reset on arrival, as when the server or the network
goes away; restored, new connections go through again. No client code is patched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

__all__ = ["EmbeddedRedisOutage", "Outage", "Relay", "relayed"]


class Outage(Protocol):
    def cut(self) -> None: ...

    def restore(self) -> None: ...


class Relay:
    """A TCP relay on 127.0.0.1 in front of ``host:port``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.down = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """The server is gone: reset every connection, and every new one."""
        self.down = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.down = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


@contextlib.asynccontextmanager
async def relayed(url: str) -> AsyncIterator[tuple[str, Relay]]:
    """``url`` (postgres://…, redis://…) through a :class:`Relay`: (the relayed URL, it)."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port, url
    relay = Relay(parts.hostname, parts.port)
    await relay.start()
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{relay.port}" if userinfo else f"127.0.0.1:{relay.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), relay
    finally:
        await relay.close()


class EmbeddedRedisOutage:
    """The embedded in-process Redis (fakeredis) answering every command with a
    ``ConnectionError`` — fakeredis' own outage switch (its server's ``connected``)."""

    def __init__(self, server: Any) -> None:
        self._server = server

    @classmethod
    async def of(cls, redis: Any) -> EmbeddedRedisOutage:
        connection = await redis.connection_pool.get_connection()
        try:
            return cls(connection._server)
        finally:
            await redis.connection_pool.release(connection)

    def cut(self) -> None:
        self._server.connected = False

    def restore(self) -> None:
        self._server.connected = True
