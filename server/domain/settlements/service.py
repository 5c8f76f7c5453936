"""Settlements (national 2207 / 2208): the use cases, with their I/O.

SPEC.md "Settlements" / "家庭共济" / "Money":
* who pays what is decided by :func:`server.domain.settlements.plan.plan` (own account
  first, then the authorizers in authorization order, the rest cash; inpatient, quota and
  政策范围内 scope rules there);
* applied at most once per institution and ``setl_id`` (two institutions' numbering is
  their own: issue #17 finding 13): the same body again answers the same split, a
  different body 409; a reversal (2208) returns every 分 to the bucket it came from, once;
* no balance goes negative, even with concurrent settlements: the accounts are locked
  (``SELECT … FOR UPDATE`` in id order) for the whole transaction, through the ledger;
* the notices (binders, authorizers, the member) go to the outbox in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.domain import ledger, money_sql, notices_outbox, vouchers
from server.domain.clock import SHANGHAI, cn_iso, parse_uuid
from server.domain.errors import DomainError
from server.domain.institutions import InstitutionInfo
from server.domain.models import (
    InsuredPerson,
    LedgerEntry,
    Notice,
    Settlement,
)
from server.domain.pii import PiiCipher, mask_id, mask_name
from server.domain.policy import PolicyEngine
from server.domain.reasons import error as reason_error
from server.domain.registry import id_hash
from server.domain.settlements.plan import plan as plan_settlement
from server.domain.settlements.request import BREAKDOWN, SettlementRequest, fen_to_yuan


@dataclass(frozen=True)
class SettleResult:
    created: bool
    body: dict[str, Any]


def member_key(
    req: SettlementRequest, member_id: int | None, *, pii: PiiCipher
) -> tuple[money_sql.MemberKey, int | str]:
    """How the request names who pays: a consumed 医保码's member, an ID number or a psn_no."""
    if member_id is not None:
        return "id", member_id
    if req.certno:
        return "id_hash", id_hash(pii, req.id_type, req.certno.upper())
    return "psn_no", req.psn_no or ""


async def find_member(
    conn: BaseDBAsyncClient, req: SettlementRequest, member_id: int | None, *, pii: PiiCipher
) -> money_sql.PayingMember:
    """Who pays: the member behind a consumed 医保码 token, an ID number or a psn_no."""
    by, value = member_key(req, member_id, pii=pii)
    member = await money_sql.paying_member(conn, by, value)
    if member is None:
        raise DomainError("MEMBER_NOT_FOUND", "参保登记中查无此人")
    return member


async def verify_voucher(qr_token: str, *, redis: Redis, pii: PiiCipher) -> dict[str, Any]:
    """Consume a 医保码 token and say who pays: always the member it was issued for.

    SPEC.md "misuse": a binder showing a member's code pays as the member, never as
    themselves. The token is single use; settle afterwards by ``psn_no``.
    """
    claim = await vouchers.consume(redis, qr_token)
    person = await InsuredPerson.get_or_none(id=claim.member_id)
    if person is None:
        raise DomainError("MEMBER_NOT_FOUND", "参保登记中查无此人")
    return {
        "psn_no": person.psn_no,
        "name": pii.decrypt(person.name_enc, purpose="name"),
        "id_type": person.id_type,
        "id_number": mask_id(pii.decrypt(person.id_number_enc, purpose="id_number")),
        "insurance_type": person.insurance_type,
        "region_code": person.region_code,
        "status": person.status,
        "has_personal_account": person.has_personal_account,
    }


async def settle(
    req: SettlementRequest,
    *,
    institution: InstitutionInfo,
    redis: Redis,
    pii: PiiCipher,
    policy: PolicyEngine,
) -> SettleResult:
    """Apply a 2207 settlement once; the same ``setl_id`` again answers the stored split."""
    member_id: int | None = None
    if req.qr_token:
        try:
            member_id = (await vouchers.consume(redis, req.qr_token)).member_id
        except DomainError:
            # A retry of a settlement whose token was consumed by its first attempt.
            existing = await find_existing(institution.code, req.setl_id)
            if existing is None:
                raise
            return SettleResult(False, replay(existing, req))
    try:
        body = await _apply(req, member_id, institution=institution, pii=pii, policy=policy)
    except IntegrityError:
        existing = await find_existing(institution.code, req.setl_id)
        if existing is None:
            raise
        return SettleResult(False, replay(existing, req))
    return SettleResult(True, body)


async def find_existing(institution_code: str, setl_id: str) -> Settlement | None:
    """This institution's settlement ``setl_id`` (another institution's is not ours)."""
    return await Settlement.get_or_none(institution_id=institution_code, setl_id=setl_id)


def replay(existing: Settlement, req: SettlementRequest) -> dict[str, Any]:
    """The stored answer for a repeated 2207; a different body under the number is 409."""
    if existing.body_sha256 != req.body_sha256:
        raise DomainError(
            "SETTLEMENT_CONFLICT",
            "该结算流水号(setl_id)已用于内容不同的结算",
            detail={"setl_id": req.setl_id},
        )
    return result_of(existing)


async def _apply(
    req: SettlementRequest,
    member_id: int | None,
    *,
    institution: InstitutionInfo,
    pii: PiiCipher,
    policy: PolicyEngine,
) -> dict[str, Any]:
    # One connection for the whole request: every statement below runs in this transaction.
    async with in_transaction() as conn:
        member = await find_member(conn, req, member_id, pii=pii)
        if member.status != "active":
            raise reason_error("MEMBER_NOT_INSURED")
        # Lock every account this settlement may touch, in id order (no deadlock cycles),
        # then the quotas (ledger module doc: accounts before quotas, always).
        auths = member.authorizations
        accounts = await money_sql.lock_person_accounts(
            conn, [member.id, *(a.authorizer_person_id for a in auths)]
        )
        quotas = await ledger.lock_quotas(a.id for a in auths if a.quota_fen is not None)
        plan = plan_settlement(req, member, accounts, quotas, pii=pii, policy=policy)
        split = plan.split
        settlement = await Settlement.create(
            using_db=conn,
            setl_id=req.setl_id,
            institution_id=institution.code,
            member_id=member.id,
            mdtrt_id=req.mdtrt_id,
            med_type=req.med_type,
            setl_time=req.setl_time,
            body_sha256=req.body_sha256,
            medfee_sumamt_fen=req.medfee_fen,
            hifp_pay_fen=req.hifp_fen,
            fund_pay_sumamt_fen=req.fund_pay_fen,
            psn_part_amt_fen=req.psn_part_fen,
            acct_pay_fen=split.acct_pay_fen,
            acct_mulaid_pay_fen=split.mulaid_fen,
            psn_cash_pay_fen=split.psn_cash_pay_fen,
            balc_fen=plan.balc_fen,
            detail=plan.detail,
            state="settled",
        )
        await ledger.apply_postings(plan.postings, plan.available, settlement_id=settlement.id)

        facts = notices_outbox.SettlementFacts(
            setl_id=req.setl_id,
            member_name=mask_name(pii.decrypt(member.name_enc, purpose="name")),
            institution=institution.name,
            setl_time=cn_iso(req.setl_time),
            med_type=req.med_type,
            medfee_fen=req.medfee_fen,
            psn_part_fen=req.psn_part_fen,
            acct_pay_fen=split.acct_pay_fen,
            mulaid_fen=split.mulaid_fen,
            cash_fen=split.psn_cash_pay_fen,
        )
        notices = notices_outbox.settlement_notices(
            facts,
            settlement_id=settlement.id,
            binder_ids=member.binder_ids,
            authorizer_amounts=plan.authorizer_amounts,
            member_user_ids=member.user_ids,
        )
        if notices:
            await notices_outbox.save(notices, using_db=conn)
    return result_of(settlement)


def result_of(s: Settlement) -> dict[str, Any]:
    """The 2207 answer in the national names (amounts in yuan strings)."""
    detail = s.detail or {}
    out: dict[str, Any] = {
        "setl_id": s.setl_id,
        "psn_no": detail.get("psn_no"),
        "med_type": s.med_type,
        "setl_time": cn_iso(s.setl_time),
        "medfee_sumamt": fen_to_yuan(s.medfee_sumamt_fen),
        "hifp_pay": fen_to_yuan(s.hifp_pay_fen),
        "fund_pay_sumamt": fen_to_yuan(s.fund_pay_sumamt_fen),
        "psn_part_amt": fen_to_yuan(s.psn_part_amt_fen),
        "acct_pay": fen_to_yuan(s.acct_pay_fen),
        "acct_mulaid_pay": fen_to_yuan(s.acct_mulaid_pay_fen),
        "mulaid_detail": [
            {"authorizer": d["authorizer"], "amount": fen_to_yuan(d["amount_fen"])}
            for d in detail.get("mulaid_detail", [])
        ],
        "psn_cash_pay": fen_to_yuan(s.psn_cash_pay_fen),
        "balc": fen_to_yuan(s.balc_fen),
        "state": s.state,
    }
    if s.reversed_at is not None:
        out["reversed_at"] = cn_iso(s.reversed_at)
    breakdown = detail.get("breakdown")
    if breakdown:
        out.update({name: fen_to_yuan(breakdown[name]) for name in BREAKDOWN})
    return out


async def reverse(
    *, setl_id: str, reason: str | None, institution: InstitutionInfo
) -> dict[str, Any]:
    """2208: return every 分 of a settlement to the bucket it came from, once; notify again.

    Only the institution that reported the settlement may reverse it. A reversal of an
    already reversed settlement answers the same result and changes nothing. Quota money
    whose authorization ended meanwhile goes back to the authorizer's own balance (where
    the released quota went).
    """
    async with in_transaction():
        s = (
            await Settlement.filter(institution_id=institution.code, setl_id=setl_id)
            .select_for_update()
            .first()
        )
        if s is None:
            raise DomainError("SETTLEMENT_NOT_FOUND", "未找到该机构的这笔结算")
        if s.state == "reversed":
            return result_of(s)
        entries = await LedgerEntry.filter(settlement_id=s.id).values(
            "account_id", "authorization_id", "amount_fen"
        )
        balances = await ledger.lock_accounts(e["account_id"] for e in entries)
        quotas = await ledger.lock_quotas(
            q for e in entries if (q := parse_uuid(e["authorization_id"])) is not None
        )
        available = {ledger.bucket_key(i, None): b for i, b in balances.items()}
        postings = []
        for e in entries:
            auth_id = parse_uuid(e["authorization_id"])
            if auth_id is not None and quotas[auth_id][0] != "active":
                auth_id = None
            if auth_id is not None:
                available[ledger.bucket_key(0, auth_id)] = quotas[auth_id][1]
            postings.append(
                ledger.Posting(
                    e["account_id"],
                    -int(e["amount_fen"]),
                    "reversal",
                    authorization_id=auth_id,
                    note=setl_id,
                )
            )
        after = await ledger.apply_postings(postings, available, settlement_id=s.id)
        own_parts = [p for p in (s.detail or {}).get("parts", []) if p["source"] == "own"]
        if own_parts:
            s.balc_fen = after[ledger.bucket_key(own_parts[0]["account_id"], None)]
        s.state = "reversed"
        # Beijing time, like setl_time: the reconciliation's day bounds compare them
        s.reversed_at = datetime.now(SHANGHAI)
        s.reversal_reason = (reason or "")[:200] or None
        await s.save(update_fields=["state", "reversed_at", "reversal_reason", "balc_fen"])
        originals = (
            await Notice.filter(settlement_id=s.id)
            .exclude(kind=notices_outbox.REVERSAL)
            .values("recipient_id", "kind", "data")
        )
        notices = notices_outbox.reversal_notices(
            originals,
            setl_id=setl_id,
            settlement_id=s.id,
            reason=s.reversal_reason,
            reversed_at=cn_iso(s.reversed_at),
        )
        if notices:
            await notices_outbox.save(notices)
    return result_of(s)
