"""The 医保电子凭证 payment password a binder sets for a member (issue 11 point 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from server.domain.models.registry import InsuredPerson
    from server.domain.models.users import User


class VoucherPassword(Model):
    """One insured person's payment password (hashed), who set it, and its wrong-try lock.

    The hash is argon2id of the password keyed with the server's secret; never the password
    itself. Rules: ``server.domain.voucher_password``."""

    id = fields.IntField(primary_key=True)
    person: fields.OneToOneRelation[InsuredPerson] = fields.OneToOneField(
        "models.InsuredPerson", related_name="voucher_password", on_delete=fields.CASCADE
    )
    person_id: int
    password_hash = fields.CharField(max_length=255)
    set_at = fields.DatetimeField()
    set_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="voucher_passwords_set", null=True, on_delete=fields.SET_NULL
    )
    set_by_id: int | None
    # wrong tries (and tries under way) since the last right one or the last lock
    failed_count = fields.IntField(default=0)
    locked_until = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "voucher_passwords"
