"""The insurance registry (参保登记): who is insured, where, and how."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from server.domain.models.users import User


class InsuredPerson(Model):
    """An insured person as the national platform knows them (imported by CLI in the demo)."""

    id = fields.IntField(primary_key=True)
    psn_no = fields.CharField(max_length=32, unique=True)  # 人员编号
    name_enc = fields.TextField()
    name_hash = fields.CharField(max_length=64)
    id_type = fields.CharField(max_length=32)
    id_number_enc = fields.TextField()
    id_hash = fields.CharField(max_length=64, unique=True)
    insurance_type = fields.CharField(max_length=16)  # employee | resident
    region_code = fields.CharField(max_length=6)
    has_personal_account = fields.BooleanField(default=False)
    voucher_activated = fields.BooleanField(default=False)
    status = fields.CharField(max_length=16, default="active")  # active | suspended
    # A minor's registered guardians (户籍 / 出生医学证明 records): their ID blind indexes,
    # comma-separated. SPEC.md "a minor's guardian": only they bind the child at once.
    guardian_hashes = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "insured_persons"


class VoucherActivation(Model):
    """An activation of a person's 医保电子凭证 on their behalf (代激活, SPEC.md): who
    activated it, through which application or counter, how, and when. Append-only: the
    registry's ``voucher_activated`` flag says *that*, these rows say *who and when*."""

    id = fields.IntField(primary_key=True)
    person: fields.ForeignKeyRelation[InsuredPerson] = fields.ForeignKeyField("models.InsuredPerson", related_name="activations")
    person_id: int
    activated_by: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="activations", null=True, on_delete=fields.SET_NULL
    )
    activated_by_id: int | None
    application_id = fields.UUIDField(null=True)
    staff = fields.CharField(max_length=64, null=True)  # counter service: the clerk's name
    method = fields.CharField(max_length=16)  # face | documents | guardian | counter
    activated_at = fields.DatetimeField()

    class Meta:
        table = "voucher_activations"
