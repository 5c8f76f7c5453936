from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Authorization',
            name='cross_province',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Authorization',
            name='quota_remaining_fen',
            field=fields.BigIntField(null=True),
        ),
        ops.AddIndex(
            model_name='Authorization',
            index=Index(fields=['member_id', 'state']),
        ),
        ops.AddIndex(
            model_name='Authorization',
            index=Index(fields=['authorizer_id', 'state']),
        ),
        ops.AddIndex(
            model_name='Binding',
            index=Index(fields=['member_id', 'state']),
        ),
        ops.AddField(
            model_name='LedgerEntry',
            name='authorization',
            field=fields.ForeignKeyField('models.Authorization', source_field='authorization_id', null=True, db_constraint=True, to_field='id', related_name='quota_entries', on_delete=OnDelete.RESTRICT),
        ),
        ops.AddIndex(
            model_name='LedgerEntry',
            index=Index(fields=['settlement_id']),
        ),
        ops.AddIndex(
            model_name='LedgerEntry',
            index=Index(fields=['account_id', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Notice',
            index=Index(fields=['recipient_id', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Notice',
            index=Index(fields=['settlement_id']),
        ),
        ops.AddField(
            model_name='Settlement',
            name='reversal_reason',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddIndex(
            model_name='Settlement',
            index=Index(fields=['member_id', 'setl_time']),
        ),
        ops.AddIndex(
            model_name='User',
            index=Index(fields=['person_id']),
        ),
    ]
