from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0005_mutual_aid_refusals')]

    initial = False

    operations = [
        ops.CreateModel(
            name='VoucherActivation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person', fields.ForeignKeyField('models.InsuredPerson', source_field='person_id', db_constraint=True, to_field='id', related_name='activations', on_delete=OnDelete.CASCADE)),
                ('activated_by', fields.ForeignKeyField('models.User', source_field='activated_by_id', null=True, db_constraint=True, to_field='id', related_name='activations', on_delete=OnDelete.SET_NULL)),
                ('application_id', fields.UUIDField(null=True)),
                ('staff', fields.CharField(null=True, max_length=64)),
                ('method', fields.CharField(max_length=16)),
                ('activated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'voucher_activations', 'app': 'models', 'pk_attr': 'id', 'table_description': "An activation of a person's 医保电子凭证 on their behalf (代激活, SPEC.md): who"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Application',
            name='member_activated',
            field=fields.BooleanField(default=False),
        ),
    ]
