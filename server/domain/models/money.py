"""家庭共济 and settlements: accounts with an append-only ledger, authorizations, institutions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from uuid import UUID

    from server.domain.models.registry import InsuredPerson
    from server.domain.models.users import User


class Account(Model):
    """A 职工医保 personal account, ``balance_fen`` being the running sum of its ledger."""

    id = fields.IntField(primary_key=True)
    person: fields.OneToOneRelation[InsuredPerson] = fields.OneToOneField("models.InsuredPerson", related_name="account")
    person_id: int
    balance_fen = fields.BigIntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "accounts"


class LedgerEntry(Model):
    """Append-only ledger: every balance change, signed, in 分."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField("models.Account", related_name="entries")
    account_id: int
    amount_fen = fields.BigIntField()
    balance_after_fen = fields.BigIntField()
    kind = fields.CharField(max_length=24)  # import | settlement | mutual_aid | reversal | quota
    settlement: fields.ForeignKeyNullableRelation[Settlement] = fields.ForeignKeyField(
        "models.Settlement", related_name="entries", null=True, on_delete=fields.RESTRICT
    )
    settlement_id: int | None
    # set for entries of a cross-province 共济额度 (the quota bucket of one authorization)
    # instead of the account's own balance
    authorization: fields.ForeignKeyNullableRelation[Authorization] = fields.ForeignKeyField(
        "models.Authorization", related_name="quota_entries", null=True, on_delete=fields.RESTRICT
    )
    authorization_id: UUID | None
    note = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ledger_entries"
        # + ``(settlement_id) WHERE settlement_id IS NOT NULL`` (migration 0012: partial)
        indexes = (("account_id", "created_at"),)


class Authorization(Model):
    """家庭共济 - an authorizer lets a relative spend their personal-account balance."""

    id = fields.UUIDField(primary_key=True)
    authorizer: fields.ForeignKeyRelation[User] = fields.ForeignKeyField("models.User", related_name="authorizations")
    authorizer_id: int
    authorizer_person: fields.ForeignKeyRelation[InsuredPerson] = fields.ForeignKeyField("models.InsuredPerson", related_name="authorized")
    authorizer_person_id: int
    member: fields.ForeignKeyRelation[InsuredPerson] = fields.ForeignKeyField("models.InsuredPerson", related_name="authorizers")
    member_id: int
    relationship = fields.CharField(max_length=16)
    state = fields.CharField(max_length=16, default="active")  # active | revoked
    notice_version = fields.CharField(max_length=32)
    notice_sha256 = fields.CharField(max_length=64)
    quota_fen = fields.BigIntField(null=True)  # cross-province 共济额度 set aside, if any
    quota_remaining_fen = fields.BigIntField(null=True)  # what is left of it (its ledger bucket)
    cross_province = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "authorizations"
        indexes = (("member_id", "state"), ("authorizer_id", "state"))


class Institution(Model):
    """A 定点医药机构 allowed to call the signed institution webhook."""

    code = fields.CharField(max_length=32, primary_key=True)
    name = fields.CharField(max_length=100)
    region_code = fields.CharField(max_length=6)
    secret_enc = fields.TextField()
    # after a rotation the previous secret still verifies until ``previous_secret_until``
    previous_secret_enc = fields.TextField(null=True)
    previous_secret_until = fields.DatetimeField(null=True)
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "institutions"


class InstitutionEvent(Model):
    """The lifecycle log of an institution: added, re-keyed, rotated, disabled, enabled."""

    id = fields.IntField(primary_key=True)
    institution: fields.ForeignKeyRelation[Institution] = fields.ForeignKeyField(
        "models.Institution", related_name="events", on_delete=fields.CASCADE
    )
    institution_id: str
    action = fields.CharField(max_length=16)
    actor = fields.CharField(max_length=64)  # the operator's login on the machine, or "cli"
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "institution_events"
        indexes = (("institution_id", "created_at"),)


class CreditRow(Model):
    """One applied row of a credit batch (单位划入 / 个人缴费划入 / 年初划入).

    Unique by (batch, row): importing the batch again applies nothing twice, and a row
    whose content changed (``row_sha256``) is refused.
    """

    id = fields.BigIntField(primary_key=True)
    batch_id = fields.CharField(max_length=64)
    row_no = fields.IntField()
    row_sha256 = fields.CharField(max_length=64)
    person: fields.ForeignKeyRelation[InsuredPerson] = fields.ForeignKeyField(
        "models.InsuredPerson", related_name="credits", on_delete=fields.RESTRICT
    )
    person_id: int
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="credits", on_delete=fields.RESTRICT
    )
    account_id: int
    kind = fields.CharField(max_length=24)
    amount_fen = fields.BigIntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "credit_rows"
        unique_together = (("batch_id", "row_no"),)


class Settlement(Model):
    """One 2207 settlement as applied, idempotent by (institution, setl_id), amounts in 分."""

    id = fields.IntField(primary_key=True)
    setl_id = fields.CharField(max_length=64)  # the institution's own number
    institution: fields.ForeignKeyRelation[Institution] = fields.ForeignKeyField("models.Institution", related_name="settlements")
    institution_id: str
    member: fields.ForeignKeyRelation[InsuredPerson] = fields.ForeignKeyField("models.InsuredPerson", related_name="settlements")
    member_id: int
    mdtrt_id = fields.CharField(max_length=64, null=True)
    med_type = fields.CharField(max_length=8)
    setl_time = fields.DatetimeField()
    body_sha256 = fields.CharField(max_length=64)
    medfee_sumamt_fen = fields.BigIntField()
    hifp_pay_fen = fields.BigIntField()
    fund_pay_sumamt_fen = fields.BigIntField()
    psn_part_amt_fen = fields.BigIntField()
    acct_pay_fen = fields.BigIntField()
    acct_mulaid_pay_fen = fields.BigIntField()
    psn_cash_pay_fen = fields.BigIntField()
    balc_fen = fields.BigIntField()
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    state = fields.CharField(max_length=16, default="settled")  # settled | reversed
    created_at = fields.DatetimeField(auto_now_add=True)
    reversed_at = fields.DatetimeField(null=True)
    reversal_reason = fields.CharField(max_length=200, null=True)

    class Meta:
        table = "settlements"
        # setl_id is the institution's numbering: unique per institution only (issue #17)
        unique_together = (("institution", "setl_id"),)
        # the reconciliation reads an institution's day of settlements and of reversals
        indexes = (
            ("member_id", "setl_time"),
            ("institution_id", "setl_time"),
            ("institution_id", "reversed_at"),
        )
