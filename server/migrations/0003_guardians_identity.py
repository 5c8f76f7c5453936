from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0002_money')]

    initial = False

    operations = [
        ops.AddField(
            model_name='InsuredPerson',
            name='guardian_hashes',
            field=fields.TextField(default='', unique=False),
        ),
        ops.AlterField(
            model_name='User',
            name='id_hash',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
