"""结算通知 outbox and what the push worker needs to reach a person on WeChat."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from server.domain.models.money import Settlement
    from server.domain.models.users import User


class Notice(Model):
    """One notice for one recipient. States: pending → sent → delivered | failed | undeliverable."""

    id = fields.UUIDField(primary_key=True)
    recipient: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField("models.User", related_name="notices", null=True)
    recipient_id: int | None
    kind = fields.CharField(max_length=32)  # family_settlement | mutual_aid_debit | member_settlement | reversal
    settlement: fields.ForeignKeyNullableRelation[Settlement] = fields.ForeignKeyField("models.Settlement", related_name="notices", null=True)
    settlement_id: int | None
    dedupe_key = fields.CharField(max_length=128, unique=True)
    title = fields.CharField(max_length=64)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    state = fields.CharField(max_length=16, default="pending", db_index=True)
    channel = fields.CharField(max_length=16, null=True)  # template | subscribe
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True, db_index=True)
    lease_until = fields.DatetimeField(null=True)
    leased_by = fields.CharField(max_length=64, null=True)
    errcode = fields.IntField(null=True)
    reason = fields.CharField(max_length=200, null=True)
    wx_msgid = fields.BigIntField(null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "notices"
        indexes = (("recipient_id", "created_at"), ("settlement_id",))


class SubscriptionGrant(Model):
    """Remaining one-time subscribe-message grants a user gave for a template."""

    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="subscription_grants")
    user_id: int
    template_id = fields.CharField(max_length=64)
    remaining = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "subscription_grants"
        unique_together = (("user", "template_id"),)


class OfficialFollower(Model):
    """An official-account follower, linked to a mini-program user by unionid to a mini-program user."""

    oa_openid = fields.CharField(max_length=64, primary_key=True)
    unionid = fields.CharField(max_length=64, null=True, db_index=True)
    subscribed = fields.BooleanField(default=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "official_followers"
