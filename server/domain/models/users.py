"""Mini-program users (绑定人 / 授权人)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from server.domain.models.registry import InsuredPerson


class User(Model):
    """A mini-program user, keyed by the mini-program openid (unionid kept when WeChat gives it)."""

    id = fields.IntField(primary_key=True)
    openid = fields.CharField(max_length=64, unique=True)
    unionid = fields.CharField(max_length=64, null=True, db_index=True)
    session_key_enc = fields.TextField(null=True)  # never returned, encrypted
    realname_verified = fields.BooleanField(default=False)
    realname_verified_at = fields.DatetimeField(null=True)
    name_enc = fields.TextField(null=True)
    id_type = fields.CharField(max_length=32, null=True)
    id_number_enc = fields.TextField(null=True)
    # One verified account per person, enforced by the database (issue #17 finding 3).
    id_hash = fields.CharField(max_length=64, null=True, unique=True)
    phone_enc = fields.TextField(null=True)
    # the insured person this user is, once real-name verified against the registry
    person: fields.ForeignKeyNullableRelation[InsuredPerson] = fields.ForeignKeyField(
        "models.InsuredPerson", related_name="users", null=True, on_delete=fields.SET_NULL
    )
    person_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"
        indexes = (("person_id",),)
