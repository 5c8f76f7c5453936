"""The migrations in server/migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from tortoise.context import TortoiseContext
from tortoise.migrations.autodetector import MigrationAutodetector

from server.db import migrate, tortoise_config
from server.settings import Settings


async def test_migrations_apply_and_match_models(tmp_path: Path) -> None:
    settings = Settings.load(
        "test.toml", env={}, overrides={"server.data_dir": str(tmp_path), "database.schema": "migrate"}
    )
    await migrate(settings)  # a fresh database: every migration applies
    await migrate(settings)  # and applying again is a no-op
    config = tortoise_config(settings)
    ctx = TortoiseContext()
    with ctx:
        await ctx.init(config=config)
        try:
            writers = await MigrationAutodetector(ctx.apps, config["apps"]).changes()
            tables = await ctx.db().execute_query_dict("SELECT name FROM sqlite_master WHERE type='table'")
            ledger_indexes = await ctx.db().execute_query_dict(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'ledger_entries'")
            plan = await ctx.db().execute_query_dict(
                "EXPLAIN QUERY PLAN SELECT id FROM ledger_entries WHERE settlement_id = 42")
        finally:
            await ctx.close_connections()
    pending = [w.name for w in writers]
    assert pending == [], f"models changed without a migration: run `python -m server makemigrations` ({pending})"
    names = {t["name"] for t in tables}
    assert {"users", "insured_persons", "applications", "bindings", "settlements", "notices"} <= names
    # 0012: the settlement index is partial (the bulk loads' entries have none) and still
    # serves a settlement's look-up
    partial = {i["name"]: i["sql"] for i in ledger_indexes if i["sql"] and "settlement_id" in i["sql"]}
    assert list(partial) == ["idx_ledger_entries_settlement"]
    assert "WHERE settlement_id IS NOT NULL" in partial["idx_ledger_entries_settlement"]
    assert "idx_ledger_entries_settlement" in " ".join(p["detail"] for p in plan)
