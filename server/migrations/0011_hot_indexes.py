"""Indexes the hot queries need at a province's volume (bench/province.py, docs/scaling.md).

* ``bindings (binder_id, state)``: the members list (``GET /family/members``, the
  mini-program's home page) read every binding of the table — a ``Seq Scan on bindings``
  at 200,000 bindings, 14 ms per call.
* ``notices (created_at) WHERE state = 'pending'`` (partial): the push workers' claim
  (``server/push/leases.py``) takes the oldest due notices; through the plain ``state``
  index it fetched and sorted *every* pending notice on each claim (10,000 due at once
  after an outage); the partial index hands them over in order and stays as small as
  the queue, whatever the number of sent notices kept. Partial indexes are not in the
  models' vocabulary, so it is raw SQL (SQLite supports them too).
"""

from tortoise import migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

_PENDING = "idx_notices_pending_created"


async def _pending_index(apps, schema_editor) -> None:
    await schema_editor.client.execute_script(
        f"CREATE INDEX IF NOT EXISTS {_PENDING} ON notices (created_at) WHERE state = 'pending'"
    )


async def _drop_pending_index(apps, schema_editor) -> None:
    await schema_editor.client.execute_script(f"DROP INDEX IF EXISTS {_PENDING}")


class Migration(migrations.Migration):
    dependencies = [("models", "0010_c_collation")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Binding",
            index=Index(fields=["binder_id", "state"]),
        ),
        ops.RunPython(_pending_index, _drop_pending_index),
    ]
