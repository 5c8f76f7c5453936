from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0006_journey')]

    initial = False

    operations = [
        ops.CreateModel(
            name='VoucherPassword',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('person', fields.OneToOneField('models.InsuredPerson', source_field='person_id', db_constraint=True, to_field='id', related_name='voucher_password', on_delete=OnDelete.CASCADE)),
                ('password_hash', fields.CharField(max_length=255)),
                ('set_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('set_by', fields.ForeignKeyField('models.User', source_field='set_by_id', null=True, db_constraint=True, to_field='id', related_name='voucher_passwords_set', on_delete=OnDelete.SET_NULL)),
                ('failed_count', fields.IntField(default=0)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'voucher_passwords', 'app': 'models', 'pk_attr': 'id', 'table_description': "One insured person's payment password (hashed), who set it, and its wrong-try lock."},
            bases=['Model'],
        ),
    ]
