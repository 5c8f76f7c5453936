"""Blind indexes and other machine keys compare bytewise (PostgreSQL ``COLLATE "C"``).

They are hex digests, ``psn_no`` and WeChat openids: never sorted for people, looked up
and kept unique by the million (issue 18: the registry import). Under the database's
default collation (en_US.UTF-8, zh_CN.UTF-8, even C.UTF-8) every comparison in their
B-trees goes through the C library's ``strcoll``; under "C" it is ``memcmp``. Measured on
this machine: inserting 300,000 rows into a table with two such unique text indexes took
4.9 s under C.UTF-8 and 3.2 s under "C". SQLite already compares text bytewise (BINARY).
Changing a column's collation rebuilds its indexes (a lock on the table for the time it
takes: run it in a maintenance window on a populated registry).
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

_COLUMNS = (
    ("insured_persons", "id_hash", 64),
    ("insured_persons", "psn_no", 32),
    ("insured_persons", "name_hash", 64),
    ("users", "id_hash", 64),
    ("users", "openid", 64),
    ("applications", "id_hash", 64),
    ("applications", "member_name_hash", 64),
)


async def _collate(schema_editor, collation: str) -> None:
    client = schema_editor.client
    if client.capabilities.dialect != "postgres":
        return
    for table, column, length in _COLUMNS:
        await client.execute_script(
            f'ALTER TABLE {table} ALTER COLUMN {column} TYPE varchar({length}) COLLATE "{collation}"'
        )


async def _bytewise(apps, schema_editor) -> None:
    await _collate(schema_editor, "C")


async def _default(apps, schema_editor) -> None:
    await _collate(schema_editor, "default")


class Migration(migrations.Migration):
    dependencies = [("models", "0009_privacy")]

    initial = False

    operations = [
        ops.RunPython(_bytewise, _default),
    ]
