"""家庭共济 authorizations: an authorizer lets relatives spend their personal-account balance.

Rules (SPEC.md 家庭共济, all from the dated per-region policy through the one engine,
``PolicyEngine.check_authorization``, the same one the binding flow uses):
* who may authorize: a real-name verified 职工医保 insured with a personal account (seed 002);
* whom: the relationships the authorizer's region allows on that date (2021 配偶、父母、
  子女; 近亲属 from the region's rollout of 国办发〔2024〕38号 — seeds 001, 004);
* how many: ``max_family_size`` incl. the authorizer (seed 001: 7), ``max_authorizers_per_member``
  in the member's region (Zhejiang: 1);
* where: same 统筹区, within the province since 2024-11, cross-province from 2026-01-09
  with a 共济额度 set aside from the authorizer's balance (returned when it ends);
* consent: the current 共济绑定告知书 accepted (seed 001 淮南 snippet);
* revocable, except within ``unbind_lock_months`` of the start (Wuhan: 3).

Concurrency: the authorizer's user row and the member's registry row are locked in this
order, so two requests can never together pass a limit one of them alone would hit. The
locks are FOR NO KEY UPDATE: a settlement inserting rows that reference the member (a
foreign-key KEY SHARE lock) never waits for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal, cast

from tortoise.exceptions import BaseORMException
from tortoise.transactions import in_transaction

from server.domain import ledger
from server.domain.clock import cn_iso, cn_today, parse_uuid, utc_now
from server.domain.documents import LegalText, shipped
from server.domain.errors import DomainError
from server.domain.guessing import GuessBudget
from server.domain.identity import IdDocument, parse_id
from server.domain.models import Authorization, InsuredPerson, MutualAidRefusal, User
from server.domain.pii import PiiCipher, mask_id, mask_name
from server.domain.policy import AuthorizationContext, Blocker, PolicyEngine, add_months
from server.domain.policy import blocker as policy_blocker
from server.domain.reasons import error as reason_error
from server.domain.registry import id_hash, name_hash

NOTICE = "mutual_aid_notice"  # config/mutual_aid_notice.toml, through the one loader

InsuranceType = Literal["employee", "resident"]

log = logging.getLogger(__name__)

# Refusals kept for the bot's personal diagnosis ([bot] diagnosis_days, 30 by default),
# then dropped when the same user is refused again: no longer than needed (PIPL art. 19).
REFUSALS_KEPT_DAYS = 90
# Not the rules saying no: a stale session, a spent identity-guessing budget (recording
# those would let a flood write a row per request), an authorization that is not there.
_NOT_RECORDED = frozenset({"UNAUTHORIZED", "RATE_LIMITED", "AUTHORIZATION_NOT_FOUND"})


def current_notice(now: datetime | None = None) -> LegalText:
    """The 共济绑定告知书 in force now (wall clock: the text a client is shown today,
    whatever day a test's policy decisions are made for)."""
    return shipped(NOTICE).current(now or utc_now())


def _notice_state(
    version: str, sha256: str, now: datetime | None = None
) -> Literal["missing", "current", "outdated"]:
    """Whether the 告知书 the authorizer accepted is the one in force: an older version
    and a hash that is not that version's text are both ``outdated`` (show it again)."""
    if not version or not sha256:
        return "missing"
    state = shipped(NOTICE).check_signed(version=version, sha256=sha256, now=now or utc_now())
    return "current" if state == "current" else "outdated"


def refusal(first: Blocker, blocking: Sequence[Blocker] = ()) -> DomainError:
    """The first blocker as the error (as policy worded it), every blocker listed."""
    err = reason_error(first.code)
    err.message = first.message
    err.detail = {"fix": first.fix}
    if blocking:
        err.detail["blocking"] = [
            {"code": b.code, "message": b.message, "fix": b.fix} for b in blocking
        ]
    return err


async def record_refusal(user_id: int, action: str, err: DomainError) -> None:
    """Keep a refused 家庭共济 request (code, the message shown, time) for the bot to explain
    (issue 11: "共济 refusals are recorded so the bot can explain them"); nothing about the
    relative. Runs after the refused transaction rolled back; failing to record never
    hides the refusal itself."""
    if err.code in _NOT_RECORDED:
        return
    try:
        await MutualAidRefusal.create(
            user_id=user_id, action=action, code=err.code, message=err.message[:200]
        )
        cutoff = datetime.now(timezone.utc) - timedelta(days=REFUSALS_KEPT_DAYS)
        await MutualAidRefusal.filter(user_id=user_id, at__lt=cutoff).delete()
    except (BaseORMException, OSError):
        log.exception("could not record a 家庭共济 refusal (%s)", err.code)


async def authorize(
    *,
    user_id: int,
    name: str,
    id_type: str,
    id_number: str,
    relationship: str,
    notice_version: str,
    notice_sha256: str,
    quota_fen: int | None,
    pii: PiiCipher,
    policy: PolicyEngine,
    redis: Any,
    guesses: GuessBudget,
    ip: str | None,
    today: date | None = None,
) -> dict[str, Any]:
    """Create a 家庭共济 authorization from ``user_id`` to the named relative (see module doc).

    An authorizer who is not real-name verified learns nothing about the relative (no
    registry look-up); every look-up spends the identity-guessing budget (issue #17).
    A refusal is recorded (``record_refusal``) before it is raised."""
    try:
        return await _authorize(
            user_id=user_id, name=name, id_type=id_type, id_number=id_number,
            relationship=relationship, notice_version=notice_version,
            notice_sha256=notice_sha256, quota_fen=quota_fen, pii=pii, policy=policy,
            redis=redis, guesses=guesses, ip=ip, today=today,
        )
    except DomainError as err:
        await record_refusal(user_id, "authorize", err)
        raise


async def _authorize(
    *,
    user_id: int,
    name: str,
    id_type: str,
    id_number: str,
    relationship: str,
    notice_version: str,
    notice_sha256: str,
    quota_fen: int | None,
    pii: PiiCipher,
    policy: PolicyEngine,
    redis: Any,
    guesses: GuessBudget,
    ip: str | None,
    today: date | None,
) -> dict[str, Any]:
    today = today or cn_today()
    verified = await User.filter(
        id=user_id, realname_verified=True, person_id__isnull=False
    ).exists()
    if not verified:
        first = policy_blocker("AUTHORIZER_NOT_VERIFIED")
        raise refusal(first, [first])
    await guesses.spend(redis, user_id=user_id, ip=ip)
    doc: IdDocument | None
    parse_error: DomainError | None = None
    try:
        doc = parse_id(id_type, id_number, today=today)
    except DomainError as err:
        if err.code != "INVALID_ID_NUMBER":
            raise
        doc, parse_error = None, err

    async with in_transaction():
        user = await User.filter(id=user_id).select_for_update(no_key=True).first()
        if user is None:
            raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
        me = await InsuredPerson.get_or_none(id=user.person_id) if user.person_id else None
        member = None
        if doc is not None:
            member = (
                await InsuredPerson.filter(id_hash=id_hash(pii, doc.id_type, doc.id_number))
                .select_for_update(no_key=True)
                .first()
            )
        match: Literal["match", "mismatch", "not_found"] = "not_found"
        if member is not None:
            match = "match" if member.name_hash == name_hash(pii, name) else "mismatch"
        authorized_count = await Authorization.filter(authorizer_id=user.id, state="active").count()
        member_authorizers: frozenset[str] = frozenset()
        if member is not None:
            ids = await Authorization.filter(member_id=member.id, state="active").values_list(
                "authorizer_id", flat=True
            )
            member_authorizers = frozenset(str(i) for i in ids)
        my_id_number = pii.decrypt(me.id_number_enc, purpose="id_number") if me else ""
        ctx = AuthorizationContext(
            today=today,
            authorizer_id=str(user.id),
            authorizer_verified=bool(user.realname_verified and me is not None),
            authorizer_id_number=my_id_number,
            authorizer_region=me.region_code if me else "000000",
            # the registry's column holds employee | resident (server/domain/models/registry.py)
            authorizer_insurance_type=cast(InsuranceType, me.insurance_type) if me else None,
            authorizer_has_personal_account=bool(me and me.has_personal_account),
            authorizer_status=me.status if me else "unknown",
            member_doc=doc,
            member_region=member.region_code if member is not None else None,
            relationship=relationship,
            registry_match=match,
            member_status=member.status if member is not None else "unknown",
            authorized_count=authorized_count,
            member_authorizer_ids=member_authorizers,
            notice=_notice_state(notice_version, notice_sha256),
            quota_fen=quota_fen,
            stage="submit",
        )
        decision = policy.check_authorization(ctx)
        if not decision.ok:
            if decision.blocking[0].code == "INVALID_ID_NUMBER" and parse_error is not None:
                raise parse_error
            raise refusal(decision.blocking[0], decision.blocking)
        assert me is not None and member is not None
        if quota_fen is not None and not decision.quota_required:
            raise DomainError(
                "QUOTA_NOT_APPLICABLE",
                "共济额度仅适用于跨省共济,省内共济直接使用您的个人账户余额",
                fields={"quota_fen": "QUOTA_NOT_APPLICABLE"},
            )
        auth = await Authorization.create(
            authorizer_id=user.id,
            authorizer_person_id=me.id,
            member_id=member.id,
            relationship=relationship,
            notice_version=notice_version,
            notice_sha256=notice_sha256.lower(),
            quota_fen=quota_fen if decision.quota_required else None,
            quota_remaining_fen=0 if decision.quota_required else None,
            cross_province=decision.cross_province,
        )
        if decision.quota_required:
            assert quota_fen is not None
            await _move_quota(auth, me.id, "quota_hold", lambda _: quota_fen)
            auth.quota_remaining_fen = quota_fen
    return present(auth, member=member, pii=pii, policy=policy, region=me.region_code)


async def _move_quota(
    auth: Authorization, authorizer_person_id: int, kind: str, amount: Callable[[int], int]
) -> None:
    """Move ``amount(locked remaining quota)`` from the authorizer's balance into the quota
    (negative: back). The amount is decided on the locked rows, never on a stale read."""
    accounts = await ledger.person_account_ids([authorizer_person_id])
    account_id = accounts.get(authorizer_person_id)
    if account_id is None:
        raise ledger.insufficient()
    balances = await ledger.lock_accounts([account_id])  # accounts before quotas, always
    quotas = await ledger.lock_quotas([auth.id])
    amount_fen = amount(quotas[auth.id][1])
    note = f"共济额度 {auth.id}"
    await ledger.apply_postings(
        [
            ledger.Posting(account_id, -amount_fen, kind, note=note),
            ledger.Posting(account_id, amount_fen, kind, authorization_id=auth.id, note=note),
        ],
        {
            ledger.bucket_key(account_id, None): balances[account_id],
            ledger.bucket_key(account_id, auth.id): quotas[auth.id][1],
        },
    )


async def revoke(
    *, user_id: int, authorization_id: str, policy: PolicyEngine, today: date | None = None
) -> None:
    """End an authorization (authorizer only); unused 共济额度 returns to their balance.

    Refused with UNBIND_LOCKED within the region's ``unbind_lock_months`` of its start
    (the lock in force on the start date — Wuhan guide). Settlements that start after the
    revocation commits no longer use it; one already in flight may still complete with
    the authorizer's balance (a quota, though, is re-read under its lock and is exact).
    A refusal is recorded (``record_refusal``) before it is raised.
    """
    try:
        await _revoke(
            user_id=user_id, authorization_id=authorization_id, policy=policy, today=today
        )
    except DomainError as err:
        await record_refusal(user_id, "revoke", err)
        raise


async def _revoke(
    *, user_id: int, authorization_id: str, policy: PolicyEngine, today: date | None
) -> None:
    today = today or cn_today()
    auth_uuid = parse_uuid(authorization_id)
    if auth_uuid is None:
        raise _not_found()
    async with in_transaction():
        auth = await Authorization.get_or_none(id=auth_uuid, authorizer_id=user_id, state="active")
        if auth is None:
            raise _not_found()
        person = await InsuredPerson.get(id=auth.authorizer_person_id)
        decision = policy.check_mutual_aid_unbind(
            authorizer_region=person.region_code,
            bound_on=cn_today(auth.created_at),
            today=today,
        )
        if decision.blocker is not None:
            raise refusal(decision.blocker)
        if not await _end(auth, person.id):  # revoked by a concurrent request meanwhile
            raise _not_found()


async def _end(auth: Authorization, authorizer_person_id: int) -> bool:
    """End an active authorization in the caller's transaction: unused 共济额度 back to
    the authorizer's balance (policy.toml: "unused quota returns when the relationship
    ends"). False when it was no longer active."""
    if auth.quota_fen is not None:
        # all that is left, as locked (settlements may have spent some meanwhile)
        await _move_quota(auth, authorizer_person_id, "quota_release", lambda left: -left)
    updated = await Authorization.filter(id=auth.id, state="active").update(
        state="revoked", revoked_at=datetime.now(timezone.utc)
    )
    return updated == 1


async def end_for_account_deletion(*, user_id: int, person_id: int | None) -> int:
    """End every active authorization ``user_id`` gave, and every one given to the
    insured person ``person_id`` (the account's own), when the account is deleted
    (SPEC.md "withdraw consent, delete"; issue #12). The region's unbind lock does not
    apply: it holds a voluntary revocation, not the withdrawal of consent to processing
    (PIPL art. 15: withdrawing must be as easy as consenting). Quotas return as on a
    revocation. Idempotent: returns how many it ended now."""
    q = Authorization.filter(authorizer_id=user_id, state="active")
    ids = set(await q.values_list("id", flat=True))
    if person_id is not None:
        ids |= set(
            await Authorization.filter(member_id=person_id, state="active").values_list("id", flat=True)
        )
    ended = 0
    for auth_id in sorted(ids, key=str):  # one transaction each: locks as a revocation takes them
        async with in_transaction():
            auth = await Authorization.get_or_none(id=auth_id, state="active")
            if auth is not None and await _end(auth, auth.authorizer_person_id):
                ended += 1
    return ended


async def list_for_user(*, user_id: int, pii: PiiCipher, policy: PolicyEngine) -> dict[str, Any]:
    """``items``: the relatives this user authorizes; ``received``: who authorizes this user."""
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
    given = await (
        Authorization.filter(authorizer_id=user_id, state="active")
        .order_by("created_at", "id")
        .select_related("member", "authorizer_person")
    )
    items = [
        present(a, member=a.member, pii=pii, policy=policy, region=a.authorizer_person.region_code)
        for a in given
    ]
    received: list[dict[str, Any]] = []
    if user.person_id:
        rows = await (
            Authorization.filter(member_id=user.person_id, state="active")
            .order_by("created_at", "id")
            .select_related("authorizer_person")
        )
        for a in rows:
            received.append(
                {
                    "id": str(a.id),
                    "authorizer": _person_brief(a.authorizer_person, pii),
                    "relationship": a.relationship,
                    "created_at": cn_iso(a.created_at),
                }
            )
    return {"items": items, "received": received}


def present(
    auth: Authorization, *, member: InsuredPerson, pii: PiiCipher, policy: PolicyEngine, region: str
) -> dict[str, Any]:
    """The mini-program's view of an authorization (personal data masked)."""
    bound_on = cn_today(auth.created_at)
    lock = policy.settings(region, bound_on).unbind_lock_months
    return {
        "id": str(auth.id),
        "member": _person_brief(member, pii),
        "relationship": auth.relationship,
        "state": auth.state,
        "cross_province": auth.cross_province,
        "quota_fen": auth.quota_fen,
        "quota_remaining_fen": auth.quota_remaining_fen,
        "notice_version": auth.notice_version,
        "created_at": cn_iso(auth.created_at),
        "revocable_from": add_months(bound_on, lock).isoformat(),
    }


def _person_brief(person: InsuredPerson, pii: PiiCipher) -> dict[str, Any]:
    return {
        "name": mask_name(pii.decrypt(person.name_enc, purpose="name")),
        "id_number": mask_id(pii.decrypt(person.id_number_enc, purpose="id_number")),
        "region_code": person.region_code,
    }


def _not_found() -> DomainError:
    return DomainError("AUTHORIZATION_NOT_FOUND", "共济授权不存在或已解除")
