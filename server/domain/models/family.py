"""亲情账户: applications (with their state history), materials, signed commitments, bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from uuid import UUID

    from server.domain.models.registry import InsuredPerson
    from server.domain.models.users import User


class Application(Model):
    """A binder's request to add a family member. States: see server.domain.binding."""

    id = fields.UUIDField(primary_key=True)
    binder: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="applications")
    binder_id: int
    member_name_enc = fields.TextField()
    member_name_hash = fields.CharField(max_length=64)
    id_type = fields.CharField(max_length=32)
    id_number_enc = fields.TextField()
    id_hash = fields.CharField(max_length=64, db_index=True)
    relationship = fields.CharField(max_length=16)
    phone_enc = fields.TextField(null=True)
    reason = fields.CharField(max_length=200)
    state = fields.CharField(max_length=24, default="draft")
    failure_code = fields.CharField(max_length=40, null=True)
    failure_message = fields.TextField(null=True)
    member: fields.ForeignKeyNullableRelation[InsuredPerson] = fields.ForeignKeyField(
        "models.InsuredPerson", related_name="applications", null=True, on_delete=fields.SET_NULL
    )
    member_id: int | None
    submitted_at = fields.DatetimeField(null=True)
    decided_at = fields.DatetimeField(null=True)
    # the binding activated the member's 医保电子凭证 (代激活; VoucherActivation says who/when)
    member_activated = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "applications"


class ApplicationEvent(Model):
    """One state transition, append-only: who moved the application, when, and why."""

    id = fields.IntField(primary_key=True)
    application: fields.ForeignKeyRelation[Application] = fields.ForeignKeyField("models.Application", related_name="events")
    application_id: UUID
    from_state = fields.CharField(max_length=24, null=True)
    to_state = fields.CharField(max_length=24)
    actor = fields.CharField(max_length=64)  # user:<id> | reviewer:<id> | system
    code = fields.CharField(max_length=40, null=True)
    note = fields.TextField(null=True)
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "application_events"


class Material(Model):
    """An uploaded document image or PDF, whose bytes live in storage under ``storage_key``."""

    id = fields.UUIDField(primary_key=True)
    application: fields.ForeignKeyRelation[Application] = fields.ForeignKeyField("models.Application", related_name="materials")
    application_id: UUID
    kind = fields.CharField(max_length=32)
    content_type = fields.CharField(max_length=64)
    size = fields.IntField()
    sha256 = fields.CharField(max_length=64)
    storage_key = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "materials"


class CommitmentSignature(Model):
    """A signed 个人承诺书: immutable record of exactly what was signed, by whom, from where."""

    id = fields.IntField(primary_key=True)
    application: fields.ForeignKeyRelation[Application] = fields.ForeignKeyField("models.Application", related_name="signatures")
    application_id: UUID
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="signatures")
    user_id: int
    version = fields.CharField(max_length=32)
    text_sha256 = fields.CharField(max_length=64)
    ip = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=512, null=True)
    signature_image_key = fields.CharField(max_length=200, null=True)
    signed_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "commitment_signatures"


class Binding(Model):
    """An effective (or ended) 亲情账户 binding of a member to a binder."""

    id = fields.UUIDField(primary_key=True)
    binder: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="bindings")
    binder_id: int
    member: fields.ForeignKeyRelation[InsuredPerson] = fields.ForeignKeyField("models.InsuredPerson", related_name="bindings")
    member_id: int
    application: fields.ForeignKeyNullableRelation[Application] = fields.ForeignKeyField("models.Application", related_name="bindings", null=True)
    application_id: UUID | None
    relationship = fields.CharField(max_length=16)
    state = fields.CharField(max_length=16, default="active")  # active | unbound
    bound_at = fields.DatetimeField()
    unbound_at = fields.DatetimeField(null=True)
    unbound_by = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "bindings"
        # member side (binders of a member, the 5-per-member rule) and binder side (the
        # members list, the home page): a seq scan of 200,000 bindings without the second
        # (bench/province.py, docs/scaling.md)
        indexes = (("member_id", "state"), ("binder_id", "state"))
