"""Settlements (national 2207 / 2208): the use cases, with their I/O.

SPEC.md "Settlements" / "家庭共济" / "Money":
* the split of the 个人负担 is :func:`server.domain.settlements.split.compute_split`
  (own account first, then the authorizers in authorization order, the rest cash);
* inpatient (住院, ``med_type`` 2x) 共济 only where the member's and the authorizer's
  regions allow it (seed 004: Zhejiang does not);
* a cross-province authorization pays from its 共济额度 only (2026-01-09 notice);
* applied at most once per ``setl_id``: the same body again answers the same split, a
  different body 409; a reversal (2208) returns every 分 to the bucket it came from, once;
* no balance goes negative, even with concurrent settlements: the accounts are locked
  (``SELECT … FOR UPDATE`` in id order) for the whole transaction, through the ledger;
* the notices (binders, authorizers, the member) go to the outbox in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import Redis
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.domain import ledger, notices_outbox, vouchers
from server.domain.clock import SHANGHAI, cn_iso, cn_today, parse_uuid
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
from server.domain.settlements.request import SettlementRequest, fen_to_yuan
from server.domain.settlements.split import Payer, compute_split


@dataclass(frozen=True)
class SettleResult:
    created: bool
    body: dict[str, Any]


# --- the hot path's statements ---------------------------------------------------------
# The settlement path runs a fixed handful of statements per request; they are written
# once as SQL (PostgreSQL syntax: $n placeholders, FOR UPDATE) instead of being rebuilt by
# the ORM's query builder on every call, which cost more CPU than the database work.
# On SQLite (tests, demo) ``ledger.dialect_sql`` adapts them.

# The member, their active authorizations (in authorization order, with each authorizer's
# region, status and name) and who to notify (binders, the member's own users): one trip.
_MEMBER_SQL = (
    "SELECT m.id, m.psn_no, m.name_enc, m.region_code, m.status, "
    "(SELECT string_agg(CAST(b.binder_id AS TEXT), ',') FROM bindings b "
    " WHERE b.member_id = m.id AND b.state = 'active') AS binders, "
    "(SELECT string_agg(CAST(u.id AS TEXT), ',') FROM users u WHERE u.person_id = m.id) AS member_users, "
    "a.id AS auth_id, a.authorizer_id, a.authorizer_person_id, a.quota_fen, "
    "p.region_code AS auth_region, p.status AS auth_status, p.name_enc AS auth_name_enc "
    "FROM insured_persons m "
    "LEFT JOIN authorizations a ON a.member_id = m.id AND a.state = 'active' "
    "LEFT JOIN insured_persons p ON p.id = a.authorizer_person_id "
    "WHERE m.{col} = $1 ORDER BY a.created_at, a.id"
)
_LOCK_SQL = "SELECT id, person_id, balance_fen FROM accounts WHERE person_id IN ({ids}) ORDER BY id FOR UPDATE"
_INSERT_SQL = (
    "INSERT INTO settlements (setl_id, institution_id, member_id, mdtrt_id, med_type, setl_time, body_sha256, "
    "medfee_sumamt_fen, hifp_pay_fen, fund_pay_sumamt_fen, psn_part_amt_fen, acct_pay_fen, acct_mulaid_pay_fen, "
    "psn_cash_pay_fen, balc_fen, detail, state, created_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'settled', $17) RETURNING id"
)


async def _rows(conn: Any, sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        dict(r)
        for r in await conn.execute_query_dict(
            ledger.dialect_sql(conn.capabilities.dialect, sql), list(values)
        )
    ]


def _params(start: int, n: int) -> str:
    return ", ".join(f"${i}" for i in range(start, start + n))


@dataclass(frozen=True)
class _Member:
    id: int
    psn_no: str
    name_enc: str
    region_code: str
    status: str
    binder_ids: list[int]
    user_ids: list[int]
    auths: list[
        dict[str, Any]
    ]  # id, authorizer_id, authorizer_person_id, quota_fen, region_code, status, name_enc


def _ids(csv: str | None) -> list[int]:
    return [int(x) for x in dict.fromkeys(csv.split(","))] if csv else []


async def _find_member(
    conn: Any, req: SettlementRequest, member_id: int | None, *, pii: PiiCipher
) -> _Member:
    """Who pays: the member behind a consumed 医保码 token, an ID number or a psn_no."""
    if member_id is not None:
        col, value = "id", member_id
    elif req.certno:
        col, value = "id_hash", id_hash(pii, req.id_type, req.certno.upper())
    else:
        col, value = "psn_no", req.psn_no
    rows = await _rows(conn, _MEMBER_SQL.format(col=col), [value])
    if not rows:
        raise DomainError("MEMBER_NOT_FOUND", "参保登记中查无此人", 404)
    m = rows[0]
    auths = [
        {
            "id": r["auth_id"],
            "authorizer_id": r["authorizer_id"],
            "authorizer_person_id": r["authorizer_person_id"],
            "quota_fen": r["quota_fen"],
            "region_code": r["auth_region"],
            "status": r["auth_status"],
            "name_enc": r["auth_name_enc"],
        }
        for r in rows
        if r["auth_id"] is not None
    ]
    return _Member(
        int(m["id"]),
        m["psn_no"],
        m["name_enc"],
        m["region_code"],
        m["status"],
        _ids(m["binders"]),
        _ids(m["member_users"]),
        auths,
    )


async def verify_voucher(qr_token: str, *, redis: Redis, pii: PiiCipher) -> dict[str, Any]:
    """Consume a 医保码 token and say who pays: always the member it was issued for.

    SPEC.md "misuse": a binder showing a member's code pays as the member, never as
    themselves. The token is single use; settle afterwards by ``psn_no``.
    """
    claim = await vouchers.consume(redis, qr_token)
    person = await InsuredPerson.get_or_none(id=claim.member_id)
    if person is None:
        raise DomainError("MEMBER_NOT_FOUND", "参保登记中查无此人", 404)
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
            existing = await Settlement.get_or_none(setl_id=req.setl_id)
            if existing is None:
                raise
            return SettleResult(False, _replay(existing, req))
    try:
        body = await _apply(req, member_id, institution=institution, pii=pii, policy=policy)
    except IntegrityError:
        existing = await Settlement.get_or_none(setl_id=req.setl_id)
        if existing is None:
            raise
        return SettleResult(False, _replay(existing, req))
    return SettleResult(True, body)


def _replay(existing: Settlement, req: SettlementRequest) -> dict[str, Any]:
    if existing.body_sha256 != req.body_sha256:
        raise DomainError(
            "SETTLEMENT_CONFLICT",
            "该结算流水号(setl_id)已用于内容不同的结算",
            409,
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
    setl_day = cn_today(req.setl_time)
    # One connection for the whole request: every statement below runs in this transaction.
    async with in_transaction() as conn:
        member = await _find_member(conn, req, member_id, pii=pii)
        member_id = member.id
        if member.status != "active":
            raise reason_error("MEMBER_NOT_INSURED")
        member_rules = policy.mutual_aid_rules(member.region_code, setl_day)
        auths = member.auths
        person_ids = [member_id, *(int(a["authorizer_person_id"]) for a in auths)]
        # Lock every account this settlement may touch, in id order (no deadlock cycles).
        rows = await _rows(conn, _LOCK_SQL.format(ids=_params(1, len(person_ids))), person_ids)
        account_of = {int(r["person_id"]): int(r["id"]) for r in rows}
        available = {ledger.bucket_key(int(r["id"]), None): int(r["balance_fen"]) for r in rows}
        quota_ids = [
            q for a in auths if a["quota_fen"] is not None and (q := parse_uuid(a["id"])) is not None
        ]
        if quota_ids:
            quotas = await ledger.lock_quotas(quota_ids)
            for qid, (state, remaining) in quotas.items():
                available[ledger.bucket_key(0, qid)] = remaining if state == "active" else 0

        own_account = account_of.get(member_id)
        own = (
            Payer("own", ledger.bucket_key(own_account, None)) if own_account is not None else None
        )
        payers: list[Payer] = []
        by_key: dict[str, dict[str, Any]] = {}
        for a in auths:
            account_id = account_of.get(int(a["authorizer_person_id"]))
            if account_id is None:
                continue
            allowed = a["status"] == "active"
            if req.inpatient:
                region_rules = policy.mutual_aid_rules(a["region_code"], setl_day)
                allowed = (
                    allowed and member_rules.inpatient_allowed and region_rules.inpatient_allowed
                )
            key = str(a["id"])
            quota = a["quota_fen"] is not None
            payers.append(
                Payer(key, ledger.bucket_key(account_id, key if quota else None), allowed)
            )
            by_key[key] = {**a, "account_id": account_id, "quota": quota}
        split = compute_split(req.psn_part_fen, own, payers, available)

        balc = available[own.bucket] - split.acct_pay_fen if own is not None else 0
        mulaid_detail = []
        parts: list[dict[str, Any]] = []
        postings: list[ledger.Posting] = []
        if split.acct_pay_fen and own_account is not None:
            parts.append(
                {"source": "own", "account_id": own_account, "amount_fen": split.acct_pay_fen}
            )
            postings.append(
                ledger.Posting(own_account, -split.acct_pay_fen, "settlement", note=req.setl_id)
            )
        authorizer_amounts: dict[int, int] = {}
        for key, amount in split.mulaid:
            a = by_key[key]
            name = mask_name(pii.decrypt(a["name_enc"], purpose="name"))
            mulaid_detail.append({"authorizer": name, "amount_fen": amount})
            parts.append(
                {
                    "source": "quota" if a["quota"] else "mulaid",
                    "account_id": a["account_id"],
                    "authorization_id": key,
                    "authorizer_user_id": int(a["authorizer_id"]),
                    "amount_fen": amount,
                }
            )
            postings.append(
                ledger.Posting(
                    a["account_id"],
                    -amount,
                    "mutual_aid",
                    authorization_id=parse_uuid(key) if a["quota"] else None,
                    note=req.setl_id,
                )
            )
            uid = int(a["authorizer_id"])
            authorizer_amounts[uid] = authorizer_amounts.get(uid, 0) + amount

        now = datetime.now(SHANGHAI)
        settlement = AppliedSettlement(
            setl_id=req.setl_id,
            institution_id=institution.code,
            member_id=member_id,
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
            balc_fen=balc,
            detail={"psn_no": member.psn_no, "parts": parts, "mulaid_detail": mulaid_detail},
        )
        inserted = await _rows(
            conn,
            _INSERT_SQL,
            [
                req.setl_id,
                institution.code,
                member_id,
                req.mdtrt_id,
                req.med_type,
                req.setl_time,
                req.body_sha256,
                req.medfee_fen,
                req.hifp_fen,
                req.fund_pay_fen,
                req.psn_part_fen,
                split.acct_pay_fen,
                split.mulaid_fen,
                split.psn_cash_pay_fen,
                balc,
                json.dumps(settlement.detail, ensure_ascii=False),
                now,
            ],
        )
        settlement_id = int(inserted[0]["id"])
        await ledger.apply_postings(postings, available, settlement_id=settlement_id)

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
            settlement_id=settlement_id,
            binder_ids=member.binder_ids,
            authorizer_amounts=authorizer_amounts,
            member_user_ids=member.user_ids,
        )
        if notices:
            await Notice.bulk_create(notices)
    return result_of(settlement)


@dataclass
class AppliedSettlement:
    """A settlement as just written (the hot path answers from it, not from a model row)."""

    setl_id: str
    institution_id: str
    member_id: int
    mdtrt_id: str | None
    med_type: str
    setl_time: datetime
    body_sha256: str
    medfee_sumamt_fen: int
    hifp_pay_fen: int
    fund_pay_sumamt_fen: int
    psn_part_amt_fen: int
    acct_pay_fen: int
    acct_mulaid_pay_fen: int
    psn_cash_pay_fen: int
    balc_fen: int
    detail: dict[str, Any]
    state: str = "settled"
    reversed_at: datetime | None = None


def result_of(s: Settlement | AppliedSettlement) -> dict[str, Any]:
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
        s = await Settlement.filter(setl_id=setl_id).select_for_update().first()
        if s is None or s.institution_id != institution.code:  # type: ignore[attr-defined]
            raise DomainError("SETTLEMENT_NOT_FOUND", "未找到该机构的这笔结算", 404)
        if s.state == "reversed":
            return result_of(s)
        entries = await LedgerEntry.filter(settlement_id=s.id).values(
            "account_id", "authorization_id", "amount_fen"
        )
        balances = await ledger.lock_accounts(e["account_id"] for e in entries)
        quotas = await ledger.lock_quotas(
            e["authorization_id"] for e in entries if e["authorization_id"]
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
        s.reversed_at = datetime.now(timezone.utc)
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
            await Notice.bulk_create(notices)
    return result_of(s)
