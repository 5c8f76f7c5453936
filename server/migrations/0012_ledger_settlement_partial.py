"""``ledger_entries (settlement_id)`` only where there is one (partial).

Most ledger entries have no settlement: the registry's imports and monthly credits,
共济 quota postings. The full index held a NULL entry for each of them — written on every
bulk insert (docs/bulk.md measured it) and never read: the look-ups are by a settlement
(``settlement_id = $1``, and the RESTRICT check of a deleted settlement), which the
partial index answers. Partial indexes are not in the models' vocabulary: raw SQL, as
0011 (SQLite supports them too).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

_NAME = "idx_ledger_entries_settlement"


async def _partial(apps, schema_editor) -> None:
    await schema_editor.client.execute_script(
        f"CREATE INDEX IF NOT EXISTS {_NAME} ON ledger_entries (settlement_id) WHERE settlement_id IS NOT NULL"
    )


async def _drop_partial(apps, schema_editor) -> None:
    await schema_editor.client.execute_script(f"DROP INDEX IF EXISTS {_NAME}")


class Migration(migrations.Migration):
    dependencies = [("models", "0011_hot_indexes")]

    initial = False

    operations = [
        ops.RunPython(_partial, _drop_partial),
        ops.RemoveIndex(model_name="LedgerEntry", fields=["settlement_id"]),
    ]
