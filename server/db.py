"""Tortoise configuration, schema creation/migration, and the ORM lifecycle."""

from __future__ import annotations

import logging
from typing import Any

from tortoise.context import TortoiseContext

from server.settings import Settings

log = logging.getLogger(__name__)

MODELS_MODULE = "server.domain.models"
MIGRATIONS_MODULE = "server.migrations"
POOL_MAXSIZE = 20  # PostgreSQL connections per server process


async def _no_session_reset(connection: Any) -> None:
    """asyncpg pool ``reset`` hook: skip the per-release session reset query.

    By default asyncpg sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL`` every time a connection goes back to the pool — a second round trip for
    every ORM query (bench/README.md measured it costing as much as the query). An open
    transaction is still rolled back by asyncpg itself. So: never leave session state
    behind on a pooled connection — use ``SET LOCAL`` and ``pg_advisory_xact_lock``
    inside a transaction, not ``SET``, ``LISTEN`` or ``pg_advisory_lock``.
    """


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """One place that says where the data lives; used by the app, the CLI and migrations."""
    from tortoise.backends.base.config_generator import expand_db_url

    url = settings.database_url
    if url.startswith("postgresql://"):
        url = "postgres://" + url[len("postgresql://") :]
    if url.startswith("sqlite://"):
        settings.data_path.mkdir(parents=True, exist_ok=True)
        # WAL (Tortoise's default) + synchronous=NORMAL: no fsync per commit, still no
        # corruption on a crash (SQLite docs "WAL mode"); measured ~40 % off a write request.
        if "synchronous=" not in url:
            url += ("&" if "?" in url else "?") + "synchronous=NORMAL"
    connection: str | dict[str, Any] = url
    if url.startswith("postgres://"):
        connection = expand_db_url(url)
        credentials = connection["credentials"]
        credentials.setdefault("reset", _no_session_reset)
        # asyncpg's default of at most 5 connections makes the other in-flight requests
        # queue for one, and that queue is not fair under load: p99 latency went from
        # ~0.3 s to ~0.05 s with 32 concurrent requests (bench/README.md). Override with
        # DATABASE_URL "?maxsize=N" (mind PostgreSQL's max_connections across processes).
        credentials.setdefault("maxsize", POOL_MAXSIZE)
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "Asia/Shanghai",
    }


async def open_orm(settings: Settings, *, create_db: bool = False) -> TortoiseContext:
    """Initialise Tortoise and bring the schema up to date as ``database.schema`` says."""
    config = tortoise_config(settings)
    if settings.database.schema == "migrate":
        await migrate(settings)
    ctx = TortoiseContext()
    # Global fallback: handlers and background tasks run in tasks that did not inherit the
    # startup task's contextvars; one ORM context per process.
    with ctx:
        await ctx.init(config=config, _create_db=create_db, _enable_global_fallback=True)
        if settings.database.schema == "generate":
            await ctx.generate_schemas(safe=True)
    return ctx


async def migrate(settings: Settings) -> None:
    """Apply pending migrations (tortoise's built-in migration engine)."""
    from tortoise import Tortoise
    from tortoise.migrations.api.migrate import migrate as migrate_api

    ctx = TortoiseContext()
    with ctx:
        await migrate_api(config=tortoise_config(settings))
        await Tortoise.close_connections()
        await ctx.close_connections()


async def make_migrations(settings: Settings, *, name: str | None = None) -> None:
    """Write migration files for model changes (tortoise's autodetector), like its CLI."""
    from tortoise.migrations.autodetector import MigrationAutodetector
    from tortoise.migrations.writer import format_migration_name

    config = tortoise_config(settings)
    apps_dict = config["apps"]
    ctx = TortoiseContext()
    with ctx:
        await ctx.init(config=config)
        try:
            assert ctx.apps is not None  # set by init()
            writers = await MigrationAutodetector(ctx.apps, apps_dict).changes()
        finally:
            await ctx.close_connections()
    if not writers:
        print("no model changes")
        return
    for writer in writers:
        if name:
            number = int(writer.name.split("_", 1)[0])
            writer.name = format_migration_name(number, name)
        print(f"created {writer.write()}")
