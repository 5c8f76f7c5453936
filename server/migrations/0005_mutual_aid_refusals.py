from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0004_staff')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MutualAidRefusal',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='mutual_aid_refusals', on_delete=OnDelete.CASCADE)),
                ('action', fields.CharField(max_length=16)),
                ('code', fields.CharField(max_length=40)),
                ('message', fields.CharField(max_length=200)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'mutual_aid_refusals', 'app': 'models', 'indexes': [Index(fields=['user_id', 'at'])], 'pk_attr': 'id', 'table_description': 'One refused 家庭共济 request of a user: which action, the reason code and the message'},
            bases=['Model'],
        ),
    ]
