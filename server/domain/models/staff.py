"""Bureau staff (the console's users) and the append-only log of what they did."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Staff(Model):
    """A 医保经办 staff account: a login name, a role and the regions it may see.

    ``regions`` are comma-separated 6-digit codes; a province or city code covers the
    districts under it (``server.domain.policy.region_chain``), ``000000`` covers all.
    Demo accounts (``demo``) exist only while ``server.demo_data`` is on; production
    refuses to start with an active one and never logs one in.
    """

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    role = fields.CharField(max_length=16)  # reviewer | counter | admin
    regions = fields.CharField(max_length=200)
    password_hash = fields.CharField(max_length=255)  # argon2id, PHC string
    active = fields.BooleanField(default=True)
    demo = fields.BooleanField(default=False)
    # bumped by a password reset or a disable: sessions of an older epoch end at once
    session_epoch = fields.IntField(default=0)
    last_login_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "staff"


class StaffAuditEntry(Model):
    """One staff action, append-only: who did what to which target, about which person,
    when and from where. Never clear-text personal data: a person is named by an id
    (``person:<insured person id>``, ``user:<user id>``) or a blind index (``idx:<hex>``).

    The code offers no update or delete (``server.domain.audit``); the migration adds
    database triggers that refuse both. The privacy work (issue #12) logs "staff viewed
    unmasked data" here too.
    """

    id = fields.BigIntField(primary_key=True)
    staff_id = fields.IntField(null=True)  # null: a failed login with an unknown name, a token
    staff_name = fields.CharField(max_length=64)
    action = fields.CharField(max_length=40)
    target_kind = fields.CharField(max_length=24)
    target_id = fields.CharField(max_length=64, null=True)
    person_ref = fields.CharField(max_length=80, null=True)
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    ip = fields.CharField(max_length=64, null=True)
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "staff_audit_entries"
        indexes = (("at",), ("staff_name", "at"), ("action", "at"), ("target_kind", "target_id"))
