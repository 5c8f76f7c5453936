"""One database connection held for a bulk run, the same API on both backends.

Bulk work bypasses the ORM: rows go in sets (``COPY`` or ``executemany`` into a staging
table, then set-based statements), and the ORM's per-row objects are what made the old
import slow. A session is opened on the ORM's own connection (``Model._meta.db``):

* PostgreSQL — one asyncpg connection taken from the Tortoise pool for the whole run
  (``acquire_connection``); ``copy_in`` is asyncpg's ``copy_records_to_table`` (the
  binary ``COPY`` protocol). Temp tables live on that connection and are dropped before
  it goes back (the pool does not reset connections: server/db.py).
* SQLite — the ORM's single aiosqlite connection behind its lock, taken per transaction
  (so the app's own queries interleave between batches); ``copy_in`` is ``executemany``.

SQL is written for PostgreSQL (``$n`` placeholders); on SQLite they become ``?n``
(``sqlite_sql``); where the two differ beyond that, the caller keeps one statement
per backend (server/bulk/registry_sql.py).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any


@functools.lru_cache(maxsize=256)
def sqlite_sql(sql: str) -> str:
    """PostgreSQL's ``$n`` placeholders as SQLite's ``?n`` (the same numbering)."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


SQLITE_CACHE_KIB = 64 * 1024  # the registry's pages during a SQLite bulk run
SQLITE_TEMP_CACHE_KIB = 16 * 1024  # the staging table and the run's seen-set


class BulkSession:
    """Base: the shared surface; see :func:`open_session`."""

    dialect = ""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def execute(self, sql: str, *args: Any) -> None:
        raise NotImplementedError

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    async def copy_in(self, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def stream(self, sql: str, *args: Any, size: int = 2000) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Rows of a query in lists of ``size``, without holding the result in memory
        (PostgreSQL: a server-side cursor; SQLite: ``fetchmany``). Run it inside
        :meth:`transaction` on PostgreSQL (cursors live in one)."""
        raise NotImplementedError

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, *args)
        return rows[0][0] if rows else None

    async def fetch_unless_conflict(self, sql: str, *args: Any) -> list[tuple[Any, ...]] | None:
        """``fetch`` in a savepoint: None — and nothing done — if it broke a unique
        constraint (a concurrent writer got there first), so the caller can take the
        slower path that handles conflicts. Inside the caller's transaction."""
        return await self.fetch(sql, *args)


class PgSession(BulkSession):
    dialect = "postgres"

    def __init__(self, conn: Any) -> None:
        self.conn = conn  # asyncpg.Connection

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.conn.transaction():
            yield

    async def execute(self, sql: str, *args: Any) -> None:
        await self.conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.fetch(sql, *args)]

    async def fetch_unless_conflict(self, sql: str, *args: Any) -> list[tuple[Any, ...]] | None:
        import asyncpg

        try:
            async with self.conn.transaction():  # nested: a savepoint
                return [tuple(r) for r in await self.conn.fetch(sql, *args)]
        except asyncpg.UniqueViolationError:
            return None

    async def copy_in(self, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]) -> None:
        await self.conn.copy_records_to_table(table, records=records, columns=list(columns))

    async def stream(self, sql: str, *args: Any, size: int = 2000) -> AsyncIterator[list[tuple[Any, ...]]]:
        cursor = await self.conn.cursor(sql, *args)
        for _ in range(10**12):  # bounded: ends when the cursor is exhausted
            rows = await cursor.fetch(size)
            if not rows:
                return
            yield [tuple(r) for r in rows]


class SqliteSession(BulkSession):
    dialect = "sqlite"

    def __init__(self, client: Any) -> None:
        self.client = client  # tortoise SqliteClient (its lock serialises the connection)
        self._conn: Any = None  # the aiosqlite connection while a transaction holds the lock

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        if self._conn is not None:
            yield self._conn
            return
        async with self.client.acquire_connection() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        if self._conn is not None:  # nested: a savepoint
            await self._conn.execute("SAVEPOINT bulk_nested")
            try:
                yield
            except BaseException:
                await self._conn.execute("ROLLBACK TO bulk_nested")
                raise
            finally:
                await self._conn.execute("RELEASE bulk_nested")
            return
        async with self.client.acquire_connection() as conn:
            # IMMEDIATE: take the write lock now, not half-way (no SQLITE_BUSY upgrade mid-batch)
            await conn.execute("BEGIN IMMEDIATE")
            self._conn = conn
            try:
                yield
            except BaseException:
                self._conn = None
                await conn.execute("ROLLBACK")
                raise
            self._conn = None
            await conn.execute("COMMIT")

    async def execute(self, sql: str, *args: Any) -> None:
        async with self._connection() as conn:
            cursor = await conn.execute(sqlite_sql(sql), args)
            await cursor.close()

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self._connection() as conn:
            rows = await conn.execute_fetchall(sqlite_sql(sql), args)
            return [tuple(r) for r in rows]

    async def copy_in(self, table: str, columns: Sequence[str], records: Iterable[Sequence[Any]]) -> None:
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        async with self._connection() as conn:
            await conn.executemany(sql, records)

    async def stream(self, sql: str, *args: Any, size: int = 2000) -> AsyncIterator[list[tuple[Any, ...]]]:
        async with self._connection() as conn:
            cursor = await conn.execute(sqlite_sql(sql), args)
            try:
                for _ in range(10**12):  # bounded: ends when the cursor is exhausted
                    rows = await cursor.fetchmany(size)
                    if not rows:
                        return
                    yield [tuple(r) for r in rows]
            finally:
                await cursor.close()


@contextlib.asynccontextmanager
async def open_session() -> AsyncIterator[BulkSession]:
    """A session on the ORM's default connection (the caller drops its temp tables)."""
    from server.domain.models import InsuredPerson

    client = InsuredPerson._meta.db
    dialect = client.capabilities.dialect
    if dialect == "postgres":
        async with client.acquire_connection() as conn:
            yield PgSession(conn)
    elif dialect == "sqlite":
        session = SqliteSession(client)
        # SQLite's page cache defaults to 2 MB: a bulk load over a registry of a few
        # hundred MB re-reads its index pages from the OS with a syscall each. A larger,
        # still bounded cache for the run, then the connection's own settings again.
        saved = [(schema, await session.fetchval(f"PRAGMA {schema}.cache_size")) for schema in ("main", "temp")]
        try:
            await session.execute(f"PRAGMA main.cache_size = -{SQLITE_CACHE_KIB}")
            await session.execute(f"PRAGMA temp.cache_size = -{SQLITE_TEMP_CACHE_KIB}")
            yield session
        finally:
            for schema, value in saved:
                await session.execute(f"PRAGMA {schema}.cache_size = {int(value)}")
    else:  # pragma: no cover — the settings accept only these two
        raise RuntimeError(f"bulk work supports PostgreSQL and SQLite, not {dialect}")
