"""2206 预结算: the split a 2207 with the same body would apply right now, applying nothing.

API.md v1.1 "Institutions": the same body as 2207 → the split that would apply (own
account, each authorizer, cash, the member's balance after); nothing stored, no notice.

* The decision is :func:`server.domain.settlements.plan.plan`, the settlement's own, on
  balances read **without** a lock and outside any transaction, in one statement
  (:func:`server.domain.money_sql.preview_member`): a preview never waits for a
  settlement's row locks and holds none past its answer (tested on PostgreSQL), and costs
  well under half a settlement's server CPU (bench/scenario_institutions.py).
* A 医保码 (``qr_token``) is looked at, not consumed: the 2207 that follows uses it.
* A ``setl_id`` this institution already settled answers what the 2207 would: the stored
  split for the same body, 409 for a different one.
* What a preview says can differ from the settlement that follows only when the balances
  change in between (another settlement of the family, a credit) — it is a preview.
* The answer names the member's own balance after (``balc``, as 2207 does) and each
  authorizer's masked name and amount; never an authorizer's balance: that is the
  authorizer's personal data, not the institution's business (PIPL minimum necessary).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from server.domain import money_sql, vouchers
from server.domain.clock import cn_iso
from server.domain.errors import DomainError
from server.domain.institutions import InstitutionInfo
from server.domain.models import Account, Settlement
from server.domain.pii import PiiCipher
from server.domain.policy import PolicyEngine
from server.domain.reasons import error as reason_error
from server.domain.settlements.plan import plan as plan_settlement
from server.domain.settlements.request import BREAKDOWN, SettlementRequest, fen_to_yuan
from server.domain.settlements.service import find_existing, member_key, replay


async def preview(
    req: SettlementRequest,
    *,
    institution: InstitutionInfo,
    redis: Redis,
    pii: PiiCipher,
    policy: PolicyEngine,
) -> dict[str, Any]:
    """The 2207 answer for ``req`` on the balances as they are, with ``state`` "preview"."""
    member_id: int | None = None
    if req.qr_token:
        try:
            member_id = (await vouchers.peek(redis, req.qr_token)).member_id
        except DomainError:  # used by the 2207 of this very setl_id? then its answer
            existing = await find_existing(institution.code, req.setl_id)
            if existing is None:
                raise
            return replay(existing, req)
    conn = Account._meta.db  # no transaction: one statement, no lock taken
    by, value = member_key(req, member_id, pii=pii)
    read = await money_sql.preview_member(
        conn, by, value, institution=institution.code, setl_id=req.setl_id
    )
    if read is not None and read.existing_settlement_id is not None:
        return replay(await Settlement.get(id=read.existing_settlement_id), req)
    if read is None:
        existing = await find_existing(institution.code, req.setl_id)  # a known setl_id
        if existing is not None:
            return replay(existing, req)
        raise DomainError("MEMBER_NOT_FOUND", "参保登记中查无此人")
    member = read.member
    if member.status != "active":
        raise reason_error("MEMBER_NOT_INSURED")
    p = plan_settlement(req, member, read.accounts, read.quotas, pii=pii, policy=policy)
    out: dict[str, Any] = {
        "setl_id": req.setl_id,
        "psn_no": member.psn_no,
        "med_type": req.med_type,
        "setl_time": cn_iso(req.setl_time),
        "medfee_sumamt": fen_to_yuan(req.medfee_fen),
        "hifp_pay": fen_to_yuan(req.hifp_fen),
        "fund_pay_sumamt": fen_to_yuan(req.fund_pay_fen),
        "psn_part_amt": fen_to_yuan(req.psn_part_fen),
        "acct_pay": fen_to_yuan(p.split.acct_pay_fen),
        "acct_mulaid_pay": fen_to_yuan(p.split.mulaid_fen),
        "mulaid_detail": [
            {"authorizer": d["authorizer"], "amount": fen_to_yuan(d["amount_fen"])}
            for d in p.detail["mulaid_detail"]
        ],
        "psn_cash_pay": fen_to_yuan(p.split.psn_cash_pay_fen),
        "balc": fen_to_yuan(p.balc_fen),
        "state": "preview",
    }
    breakdown = req.breakdown()
    if breakdown:
        out.update({name: fen_to_yuan(breakdown[name]) for name in BREAKDOWN})
    return out


__all__ = ["preview"]
