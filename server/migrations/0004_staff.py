import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

# The staff audit log is append-only (issue #14): the database refuses UPDATE and DELETE
# on it, whatever the code does. TRUNCATE is left to the database owner.
_SQLITE_GUARD = [
    "CREATE TRIGGER IF NOT EXISTS staff_audit_no_update BEFORE UPDATE ON staff_audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'staff_audit_entries is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS staff_audit_no_delete BEFORE DELETE ON staff_audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'staff_audit_entries is append-only'); END",
]
_POSTGRES_GUARD = [
    "CREATE OR REPLACE FUNCTION staff_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'staff_audit_entries is append-only'; END $$",
    "DROP TRIGGER IF EXISTS staff_audit_append_only ON staff_audit_entries",
    "CREATE TRIGGER staff_audit_append_only BEFORE UPDATE OR DELETE ON staff_audit_entries "
    "FOR EACH ROW EXECUTE FUNCTION staff_audit_append_only()",
]


async def _append_only(apps, schema_editor) -> None:
    client = schema_editor.client
    dialect = client.capabilities.dialect
    statements = _POSTGRES_GUARD if dialect == "postgres" else _SQLITE_GUARD if dialect == "sqlite" else []
    for sql in statements:
        await client.execute_script(sql)


async def _drop_guard(apps, schema_editor) -> None:
    client = schema_editor.client
    if client.capabilities.dialect == "postgres":
        await client.execute_script("DROP TRIGGER IF EXISTS staff_audit_append_only ON staff_audit_entries")
        await client.execute_script("DROP FUNCTION IF EXISTS staff_audit_append_only()")
    elif client.capabilities.dialect == "sqlite":
        await client.execute_script("DROP TRIGGER IF EXISTS staff_audit_no_update")
        await client.execute_script("DROP TRIGGER IF EXISTS staff_audit_no_delete")


class Migration(migrations.Migration):
    dependencies = [('models', '0003_guardians_identity')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Staff',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(unique=True, max_length=64)),
                ('role', fields.CharField(max_length=16)),
                ('regions', fields.CharField(max_length=200)),
                ('password_hash', fields.CharField(max_length=255)),
                ('active', fields.BooleanField(default=True)),
                ('demo', fields.BooleanField(default=False)),
                ('session_epoch', fields.IntField(default=0)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'staff', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A 医保经办 staff account: a login name, a role and the regions it may see.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StaffAuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('staff_id', fields.IntField(null=True)),
                ('staff_name', fields.CharField(max_length=64)),
                ('action', fields.CharField(max_length=40)),
                ('target_kind', fields.CharField(max_length=24)),
                ('target_id', fields.CharField(null=True, max_length=64)),
                ('person_ref', fields.CharField(null=True, max_length=80)),
                ('detail', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('ip', fields.CharField(null=True, max_length=64)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'staff_audit_entries', 'app': 'models', 'indexes': [Index(fields=['at']), Index(fields=['staff_name', 'at']), Index(fields=['action', 'at']), Index(fields=['target_kind', 'target_id'])], 'pk_attr': 'id', 'table_description': 'One staff action, append-only: who did what to which target, about which person,'},
            bases=['Model'],
        ),
        ops.RunPython(_append_only, _drop_guard),
    ]
