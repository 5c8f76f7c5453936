"""Deciding a settlement: who pays what, from balances already read (no I/O).

One decision for the two ways a 2207 body is answered: :mod:`.service` settles on the
balances it locked, :mod:`.preview` (2206) answers on the balances it read without a lock.
Both call :func:`plan` with the same inputs, so a preview says exactly what a settlement
on the same balances does (``tests/money/test_preview.py`` checks it through the API).

The rules applied here (SPEC.md "家庭共济", "scope"; the split itself is
:func:`server.domain.settlements.split.compute_split`):
* inpatient (住院, ``med_type`` 2x) 共济 only where the member's and the authorizer's
  regions allow it (seed 004: Zhejiang does not);
* a cross-province authorization pays from its 共济额度 only (2026-01-09 notice);
* with the 政策范围内 breakdown, 共济 pays only in-scope costs, and the member's own
  account pays the out-of-scope parts the member's region lets it
  (``own_account_out_of_scope`` in config/policy.toml), the rest is cash.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.domain import ledger, money_sql
from server.domain.clock import cn_today
from server.domain.pii import PiiCipher, mask_name
from server.domain.policy import PolicyEngine
from server.domain.settlements.request import SettlementRequest
from server.domain.settlements.split import Payer, Scope, Split, compute_split


@dataclass(frozen=True)
class Plan:
    """What a settlement does to the buckets (decided on the values read)."""

    split: Split
    available: dict[str, int]  # the values by bucket the plan was decided on
    balc_fen: int  # the member's own balance afterwards
    postings: list[ledger.Posting]
    detail: dict[str, Any]  # psn_no, parts (where each 分 came from), mulaid_detail, scope
    authorizer_amounts: dict[int, int]  # by authorizer user id, for the notices


def scope_of(req: SettlementRequest, member_region: str, policy: PolicyEngine) -> Scope | None:
    """The out-of-scope part of the 个人负担 and what the own account may pay of it."""
    if not req.has_breakdown:
        return None
    allowed = policy.settings(member_region, cn_today(req.setl_time)).own_account_out_of_scope
    fulamt = req.fulamt_ownpay_fen or 0
    overlmt = req.overlmt_selfpay_fen or 0
    own_may_pay = (fulamt if "fulamt_ownpay" in allowed else 0) + (
        overlmt if "overlmt_selfpay" in allowed else 0
    )
    return Scope(fulamt + overlmt, own_may_pay)


def plan(
    req: SettlementRequest,
    member: money_sql.PayingMember,
    accounts: Sequence[money_sql.LockedAccount],
    quotas: Mapping[uuid.UUID, tuple[str, int]],
    *,
    pii: PiiCipher,
    policy: PolicyEngine,
) -> Plan:
    """The split and the postings for this member and these balances (no I/O)."""
    setl_day = cn_today(req.setl_time)
    account_of = {a.person_id: a.id for a in accounts}
    available = {ledger.bucket_key(a.id, None): a.balance_fen for a in accounts}
    for qid, (state, remaining) in quotas.items():
        available[ledger.bucket_key(0, qid)] = remaining if state == "active" else 0

    own_account = account_of.get(member.id)
    own = Payer("own", ledger.bucket_key(own_account, None)) if own_account is not None else None
    member_rules = policy.mutual_aid_rules(member.region_code, setl_day)
    payers: list[Payer] = []
    by_key: dict[str, tuple[money_sql.PayingAuthorization, int]] = {}
    for a in member.authorizations:
        account_id = account_of.get(a.authorizer_person_id)
        if account_id is None:
            continue
        allowed = a.status == "active"
        if req.inpatient:
            region_rules = policy.mutual_aid_rules(a.region_code, setl_day)
            allowed = allowed and member_rules.inpatient_allowed and region_rules.inpatient_allowed
        key = str(a.id)
        quota = a.id if a.quota_fen is not None else None
        payers.append(Payer(key, ledger.bucket_key(account_id, quota), allowed))
        by_key[key] = (a, account_id)
    scope = scope_of(req, member.region_code, policy)
    split = compute_split(req.psn_part_fen, own, payers, available, scope)

    parts: list[dict[str, Any]] = []
    postings: list[ledger.Posting] = []
    if split.acct_pay_fen and own_account is not None:
        parts.append({"source": "own", "account_id": own_account, "amount_fen": split.acct_pay_fen})
        postings.append(
            ledger.Posting(own_account, -split.acct_pay_fen, "settlement", note=req.setl_id)
        )
    mulaid_detail: list[dict[str, Any]] = []
    authorizer_amounts: dict[int, int] = {}
    for key, amount in split.mulaid:
        a, account_id = by_key[key]
        quota = a.id if a.quota_fen is not None else None
        name = mask_name(pii.decrypt(a.name_enc, purpose="name"))
        mulaid_detail.append({"authorizer": name, "amount_fen": amount})
        parts.append(
            {
                "source": "quota" if quota else "mulaid",
                "account_id": account_id,
                "authorization_id": key,
                "authorizer_user_id": a.authorizer_user_id,
                "amount_fen": amount,
            }
        )
        postings.append(
            ledger.Posting(
                account_id, -amount, "mutual_aid", authorization_id=quota, note=req.setl_id
            )
        )
        uid = a.authorizer_user_id
        authorizer_amounts[uid] = authorizer_amounts.get(uid, 0) + amount
    detail: dict[str, Any] = {"psn_no": member.psn_no, "parts": parts, "mulaid_detail": mulaid_detail}
    if scope is not None:
        detail["breakdown"] = req.breakdown()
        detail["acct_out_of_scope_fen"] = split.acct_out_of_scope_fen
    return Plan(
        split=split,
        available=available,
        balc_fen=available[own.bucket] - split.acct_pay_fen if own is not None else 0,
        postings=postings,
        detail=detail,
        authorizer_amounts=authorizer_amounts,
    )


__all__ = ["Plan", "plan", "scope_of"]
