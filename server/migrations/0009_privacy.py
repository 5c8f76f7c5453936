import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

# Consents and notice acceptances are records of what a person agreed to (PIPL art. 14,
# 17): the database refuses DELETE and every UPDATE except setting a consent's
# withdrawn_at once and clearing ip / user_agent (account deletion), whatever the code does.
_GUARDED = {
    "privacy_consents": (
        ["id", "user_id", "purpose", "notice_version", "notice_sha256", "purpose_sha256", "accepted_at"],
        "withdrawn_at",
    ),
    "privacy_notice_acceptances": (
        ["id", "user_id", "notice_version", "notice_sha256", "accepted_at"],
        None,
    ),
}


def _forbidden(frozen, once, distinct):
    parts = [distinct(f"NEW.{c}", f"OLD.{c}") for c in frozen]
    if once:
        parts.append(f"(OLD.{once} IS NOT NULL AND {distinct(f'NEW.{once}', f'OLD.{once}')})")
    for c in ("ip", "user_agent"):  # may only be cleared
        parts.append(f"({distinct(f'NEW.{c}', f'OLD.{c}')} AND NEW.{c} IS NOT NULL)")
    return " OR ".join(parts)


def _sqlite_guard(table, frozen, once):
    cond = _forbidden(frozen, once, lambda a, b: f"{a} IS NOT {b}")
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_update BEFORE UPDATE ON {table} WHEN {cond} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
    ]


def _postgres_guard(table, frozen, once):
    cond = _forbidden(frozen, once, lambda a, b: f"{a} IS DISTINCT FROM {b}")
    return [
        f"CREATE OR REPLACE FUNCTION {table}_guard() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP = 'DELETE' OR {cond} THEN RAISE EXCEPTION '{table} is append-only'; END IF; "
        "RETURN NEW; END $$",
        f"DROP TRIGGER IF EXISTS {table}_guard ON {table}",
        f"CREATE TRIGGER {table}_guard BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_guard()",
    ]


async def _append_only(apps, schema_editor) -> None:
    client = schema_editor.client
    dialect = client.capabilities.dialect
    for table, (frozen, once) in _GUARDED.items():
        if dialect == "postgres":
            statements = _postgres_guard(table, frozen, once)
        elif dialect == "sqlite":
            statements = _sqlite_guard(table, frozen, once)
        else:
            statements = []
        for sql in statements:
            await client.execute_script(sql)


async def _drop_guard(apps, schema_editor) -> None:
    client = schema_editor.client
    for table in _GUARDED:
        if client.capabilities.dialect == "postgres":
            await client.execute_script(f"DROP TRIGGER IF EXISTS {table}_guard ON {table}")
            await client.execute_script(f"DROP FUNCTION IF EXISTS {table}_guard()")
        elif client.capabilities.dialect == "sqlite":
            await client.execute_script(f"DROP TRIGGER IF EXISTS {table}_no_update")
            await client.execute_script(f"DROP TRIGGER IF EXISTS {table}_no_delete")


class Migration(migrations.Migration):
    dependencies = [('models', '0008_institutions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AccountDeletion',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='deletion', on_delete=OnDelete.CASCADE)),
                ('state', fields.CharField(default='started', max_length=16)),
                ('steps_done', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('summary', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('attempts', fields.IntField(default=0)),
            ],
            options={'table': 'account_deletions', 'app': 'models', 'indexes': [Index(fields=['state', 'started_at'])], 'pk_attr': 'id', 'table_description': '``DELETE /api/v1/me``: started in its own transaction, then each step (idempotent)'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Consent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='consents', on_delete=OnDelete.CASCADE)),
                ('purpose', fields.CharField(max_length=32)),
                ('notice_version', fields.CharField(max_length=32)),
                ('notice_sha256', fields.CharField(max_length=64)),
                ('purpose_sha256', fields.CharField(max_length=64)),
                ('accepted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('withdrawn_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('user_agent', fields.CharField(null=True, max_length=512)),
            ],
            options={'table': 'privacy_consents', 'app': 'models', 'indexes': [Index(fields=['user_id', 'purpose']), Index(fields=['purpose', 'withdrawn_at'])], 'pk_attr': 'id', 'table_description': 'A separate consent to one purpose (``face``, ``id_documents``, ``medical_records``,'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MaterialPurge',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('material_id', fields.UUIDField()),
                ('application_id', fields.UUIDField()),
                ('kind', fields.CharField(max_length=32)),
                ('size', fields.IntField()),
                ('reason', fields.CharField(max_length=24)),
                ('rule', fields.CharField(null=True, max_length=64)),
                ('application_state', fields.CharField(max_length=24)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('purged_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'material_purges', 'app': 'models', 'indexes': [Index(fields=['purged_at']), Index(fields=['application_id'])], 'pk_attr': 'id', 'table_description': 'One uploaded material removed: by the retention job (``reason`` ``retention``), with'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PrivacyNoticeAcceptance',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='privacy_acceptances', on_delete=OnDelete.CASCADE)),
                ('notice_version', fields.CharField(max_length=32)),
                ('notice_sha256', fields.CharField(max_length=64)),
                ('accepted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('user_agent', fields.CharField(null=True, max_length=512)),
            ],
            options={'table': 'privacy_notice_acceptances', 'app': 'models', 'indexes': [Index(fields=['user_id', 'accepted_at'])], 'pk_attr': 'id', 'table_description': 'The user read and accepted a version of the privacy notice (POST /privacy/consents).'},
            bases=['Model'],
        ),
        ops.RunPython(_append_only, _drop_guard),
    ]
