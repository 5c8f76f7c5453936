import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint


class Migration(migrations.Migration):
    dependencies = [('models', '0007_voucher_password')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CreditRow',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('batch_id', fields.CharField(max_length=64)),
                ('row_no', fields.IntField()),
                ('row_sha256', fields.CharField(max_length=64)),
                ('person', fields.ForeignKeyField('models.InsuredPerson', source_field='person_id', db_constraint=True, to_field='id', related_name='credits', on_delete=OnDelete.RESTRICT)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='credits', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharField(max_length=24)),
                ('amount_fen', fields.BigIntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'credit_rows', 'app': 'models', 'unique_together': (('batch_id', 'row_no'),), 'pk_attr': 'id', 'table_description': 'One applied row of a credit batch (单位划入 / 个人缴费划入 / 年初划入).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='InstitutionEvent',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('institution', fields.ForeignKeyField('models.Institution', source_field='institution_id', db_constraint=True, to_field='code', related_name='events', on_delete=OnDelete.CASCADE)),
                ('action', fields.CharField(max_length=16)),
                ('actor', fields.CharField(max_length=64)),
                ('detail', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'institution_events', 'app': 'models', 'indexes': [Index(fields=['institution_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'The lifecycle log of an institution: added, re-keyed, rotated, disabled, enabled.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Institution',
            name='previous_secret_enc',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Institution',
            name='previous_secret_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AlterModelOptions(
            name='Settlement',
            options={'table': 'settlements', 'app': 'models', 'unique_together': (('institution', 'setl_id'),), 'indexes': [Index(fields=['member_id', 'setl_time']), Index(fields=['institution_id', 'setl_time']), Index(fields=['institution_id', 'reversed_at'])], 'pk_attr': 'id', 'table_description': 'One 2207 settlement as applied, idempotent by (institution, setl_id), amounts in 分.'},
        ),
        ops.AlterField(
            model_name='Settlement',
            name='setl_id',
            field=fields.CharField(max_length=64),
        ),
        ops.AddIndex(
            model_name='Settlement',
            index=Index(fields=['institution_id', 'setl_time']),
        ),
        ops.AddIndex(
            model_name='Settlement',
            index=Index(fields=['institution_id', 'reversed_at']),
        ),
        ops.AddConstraint(
            model_name='Settlement',
            constraint=UniqueConstraint(fields=('institution', 'setl_id'), name=None),
        ),
    ]
