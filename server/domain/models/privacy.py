"""Personal information (PIPL): consents per purpose, notice acceptances, account deletions,
and the log of purged materials (server/privacy).

Consents and acceptances are records of what a person agreed to, kept like the 承诺书:
rows are only added, never changed — except that a consent gets its ``withdrawn_at`` once,
and the client address / user agent are cleared when the account is deleted. The
migration adds database triggers that refuse anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from server.domain.models.users import User


class PrivacyNoticeAcceptance(Model):
    """The user read and accepted a version of the privacy notice (POST /privacy/consents)."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="privacy_acceptances")
    user_id: int
    notice_version = fields.CharField(max_length=32)
    notice_sha256 = fields.CharField(max_length=64)
    accepted_at = fields.DatetimeField()
    ip = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=512, null=True)

    class Meta:
        table = "privacy_notice_acceptances"
        indexes = (("user_id", "accepted_at"),)


class Consent(Model):
    """A separate consent to one purpose (``face``, ``id_documents``, ``medical_records``,
    ``notices``): which notice version and which purpose text, when, from where. The
    newest row of a (user, purpose) is the one in force."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="consents")
    user_id: int
    purpose = fields.CharField(max_length=32)
    notice_version = fields.CharField(max_length=32)
    notice_sha256 = fields.CharField(max_length=64)
    purpose_sha256 = fields.CharField(max_length=64)
    accepted_at = fields.DatetimeField()
    withdrawn_at = fields.DatetimeField(null=True)
    ip = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=512, null=True)

    class Meta:
        table = "privacy_consents"
        indexes = (("user_id", "purpose"), ("purpose", "withdrawn_at"))


class AccountDeletion(Model):
    """``DELETE /api/v1/me``: started in its own transaction, then each step (idempotent)
    is recorded in ``steps_done``; ``state`` becomes ``done`` with the last one. A crash
    half-way leaves ``started``: the next request or the privacy job finishes it."""

    id = fields.IntField(primary_key=True)
    user: fields.OneToOneRelation[User] = fields.OneToOneField("models.User", related_name="deletion")
    user_id: int
    state = fields.CharField(max_length=16, default="started")  # started | done
    steps_done: fields.JSONField[list[str]] = fields.JSONField(default=list)
    summary: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)  # counts per step (no personal data)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)

    class Meta:
        table = "account_deletions"
        indexes = (("state", "started_at"),)


class MaterialPurge(Model):
    """One uploaded material removed: by the retention job (``reason`` ``retention``), with
    its account (``account_deleted``) or on withdrawal. Only ids, kinds and dates: the log
    says that a document existed and when it went, never whose it was in clear."""

    id = fields.BigIntField(primary_key=True)
    material_id = fields.UUIDField()
    application_id = fields.UUIDField()
    kind = fields.CharField(max_length=32)
    size = fields.IntField()
    reason = fields.CharField(max_length=24)  # retention | account_deleted | withdrawn
    rule = fields.CharField(max_length=64, null=True)  # e.g. "privacy.materials_retention_days=90"
    application_state = fields.CharField(max_length=24)
    decided_at = fields.DatetimeField(null=True)
    purged_at = fields.DatetimeField()

    class Meta:
        table = "material_purges"
        indexes = (("purged_at",), ("application_id",))
