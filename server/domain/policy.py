"""The policy engine: dated, per-region settings and the binding / authorization rules.

SPEC.md "Policy is data": every limit and list that varies by region or date comes from
``config/policy.toml`` with its source; this module only knows how to resolve them and
how to apply them. One engine answers the mini-program's precheck, the submit and the
bot alike, so they never disagree. It is pure: callers gather the facts (registry match,
counts, uploaded materials…) and pass them in; nothing here does I/O except reading the
TOML file in ``from_file``.

Resolution of a setting for (region, date), field by field:
the region's chain is district → city (``4201xx`` → ``420100``) → province
(``420000``) → national (``000000``); the most specific level that has an entry
effective on the date and setting the field wins; within one level the newest such entry
wins.

Material requirements are tuples of strings; each string is one requirement and
alternatives are joined by ``|`` and the kinds of one alternative by ``+``:
``("birth_certificate|household_register|relationship_notarization",)`` means "one of
these three", ``("household_register|id_card_front+id_card_back",)`` means "a 户口本
page, or the 身份证 front and back". Every requirement must be met
(see ``missing_materials``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from server.domain.identity import IdDocument, age_on, normalize_id_number
from server.domain.policy_data import (  # noqa: F401 - public names re-exported
    AUTHORIZATION_SETTINGS,
    BINDING_SETTINGS,
    DEDUCTION_ORDERS,
    DEFAULT_POLICY_PATH,
    MATERIAL_KINDS,
    MATERIAL_LABELS,
    NATIONAL,
    OUT_OF_SCOPE_PARTS,
    RELATIONSHIP_LABELS,
    RELATIONSHIPS,
    SETTINGS,
    MutualAidRules,
    PolicyEntry,
    RegionPolicy,
    SettingOrigin,
    _cn_date,
    _labels,
    _parse_entries,
    add_months,
    material_requirement_met,
    missing_materials,
    pooling_area_of,
    province_of,
    region_chain,
    requirement_label,
)
from server.domain.reasons import (
    RELATIONSHIP_HINT_MUTUAL_AID,
    reason,
)

# --- decisions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Blocker:
    """One reason the attempt cannot go through, worded from the reasons catalogue."""

    code: str
    message: str
    fix: str


def blocker(code: str, **fmt: Any) -> Blocker:
    """A blocker worded from the reasons catalogue."""
    r = reason(code, **fmt)
    return Blocker(r.code, r.message, r.fix)


_blocker = blocker


@dataclass(frozen=True)
class BindingContext:
    """The facts about one 亲情账户 binding attempt, gathered by the caller.

    ``member_binders_this_month``: distinct binder ids with an effective binding to this
    member at any time during the current natural month (Asia/Shanghai), the caller's
    binder included if applicable. ``member_binders_now``: binder ids holding an
    effective binding right now; used instead when the policy lets an unbind free the
    slot (``unbind_frees_monthly_slot``).
    """

    today: date
    binder_id: str
    binder_verified: bool
    binder_region: str
    member_doc: IdDocument | None  # None: the ID number did not parse
    relationship: str
    registry_match: Literal["match", "mismatch", "not_found"]
    member_voucher_activated: bool
    member_status: str  # "active" / "suspended"
    binder_active_or_pending_count: int
    member_binders_this_month: frozenset[str]
    already_bound: bool
    materials: frozenset[str] = frozenset()
    commitment: Literal["missing", "current", "outdated"] = "missing"
    stage: Literal["precheck", "submit"] = "precheck"
    member_face_passed: bool | None = None  # submit only
    member_binders_now: frozenset[str] = frozenset()
    # The registry records the binder as the (minor) member's guardian (SPEC.md "a minor's
    # guardian"); ``member_guardian_binders``: which of the month's binders are guardians.
    binder_is_guardian: bool = False
    member_guardian_binders: frozenset[str] = frozenset()
    # "documents": the member cannot do the face check; 户口本 pages showing the
    # relationship or a 关系公证书 instead, decided by a reviewer (SPEC.md a way without
    # the face)
    verification: Literal["face", "documents"] = "face"


class _Blocked:
    """What every decision says about its blockers (the first one is the one to record)."""

    blocking: tuple[Blocker, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(b.code for b in self.blocking)

    @property
    def failure(self) -> Blocker | None:
        return self.blocking[0] if self.blocking else None


@dataclass(frozen=True)
class BindingDecision(_Blocked):
    """The answer for a binding attempt.

    ``ok`` means nothing blocks at this stage. ``blocking`` is ordered most fundamental
    first; its first item is the reason to record for a failed submit.
    ``required_materials``: one string per requirement, alternatives joined by ``|``.
    ``review_required``: on submit, the application goes to ``pending_review``
    instead of ``active``.
    """

    ok: bool
    blocking: tuple[Blocker, ...]
    required_materials: tuple[str, ...]
    face_check_required: bool
    review_required: bool
    minor: bool
    policy_sources: dict[str, str]
    # the binding activates the member's 医保电子凭证 (代激活, SPEC.md)
    activates_voucher: bool = False


@dataclass(frozen=True)
class AuthorizationContext:
    """The facts about one 家庭共济 authorization attempt, gathered by the caller.

    ``authorized_count``: relatives this authorizer already authorizes (active or
    pending), the authorizer not counted. ``member_authorizer_ids``: authorizers that
    already authorize this member. ``member_region``: the member's insurance region
    from the registry (None when not found).
    """

    today: date
    authorizer_id: str
    authorizer_verified: bool
    authorizer_id_number: str
    authorizer_region: str
    authorizer_insurance_type: Literal["employee", "resident"] | None
    authorizer_has_personal_account: bool
    authorizer_status: str  # "active" / "suspended"
    member_doc: IdDocument | None
    member_region: str | None
    relationship: str
    registry_match: Literal["match", "mismatch", "not_found"]
    member_status: str
    authorized_count: int
    member_authorizer_ids: frozenset[str]
    notice: Literal["missing", "current", "outdated"] = "missing"
    quota_fen: int | None = None  # 共济额度, cross-province only
    stage: Literal["precheck", "submit"] = "precheck"


@dataclass(frozen=True)
class AuthorizationDecision(_Blocked):
    ok: bool
    blocking: tuple[Blocker, ...]
    cross_province: bool
    quota_required: bool
    policy_sources: dict[str, str]


@dataclass(frozen=True)
class UnbindDecision:
    ok: bool
    blocker: Blocker | None
    unlock_date: date
    source: str


# --- the engine ---------------------------------------------------------------------


class PolicyEngine:
    """Resolves settings and applies the binding / authorization rules."""

    def __init__(self, entries: Sequence[PolicyEntry], *, origin: str = "<policy>") -> None:
        self.origin = origin
        by_region: dict[str, list[PolicyEntry]] = {}
        for e in entries:
            by_region.setdefault(e.region, []).append(e)
        # Newest first, so the first entry that sets a field is the one in force.
        self._by_region = {
            r: sorted(es, key=lambda e: e.effective_from, reverse=True)
            for r, es in by_region.items()
        }
        self._dates = sorted({e.effective_from for e in entries})
        self._cache: dict[tuple[str, date], RegionPolicy] = {}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, origin: str = "<dict>") -> PolicyEngine:
        return cls(_parse_entries(data, origin), origin=origin)

    @classmethod
    def from_file(cls, path: str | Path = DEFAULT_POLICY_PATH) -> PolicyEngine:
        """Load and validate a policy file; a bad file raises ValueError naming the key."""
        p = Path(path)
        try:
            with p.open("rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{p}: not valid TOML: {e}") from None
        return cls.from_dict(data, origin=str(p))

    # settings

    def settings(self, region_code: str, on: date) -> RegionPolicy:
        key = (region_code, on)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        chain = region_chain(region_code)
        values: dict[str, Any] = {}
        origins: dict[str, SettingOrigin] = {}
        for name in SETTINGS:
            for level in chain:
                entry = next(
                    (
                        e
                        for e in self._by_region.get(level, ())
                        if e.effective_from <= on and name in e.values
                    ),
                    None,
                )
                if entry is not None:
                    values[name] = entry.values[name]
                    origins[name] = SettingOrigin(
                        entry.sources[name], entry.region, entry.effective_from
                    )
                    break
            else:
                raise ValueError(
                    f"{self.origin}: no value of {name!r} for region {region_code} on {on}"
                )
        policy = RegionPolicy(
            region=region_code, on=on, origins=MappingProxyType(origins), **values
        )
        self._cache[key] = policy
        return policy

    def mutual_aid_rules(self, region_code: str, on: date) -> MutualAidRules:
        p = self.settings(region_code, on)
        names = ("deduction_order", "inpatient_mutual_aid", "unbind_lock_months")
        return MutualAidRules(
            region=region_code,
            on=on,
            deduction_order=p.deduction_order,
            inpatient_allowed=p.inpatient_mutual_aid,
            unbind_lock_months=p.unbind_lock_months,
            sources=p.sources(names),
        )

    def next_date_when(
        self, region_codes: Sequence[str], after: date, test: Callable[[RegionPolicy], bool]
    ) -> date | None:
        """The first effective date after ``after`` on which ``test`` holds for every region."""
        for d in self._dates:
            if d > after and all(test(self.settings(r, d)) for r in region_codes):
                return d
        return None

    # rules

    @staticmethod
    def is_minor(doc: IdDocument | None, on: date, policy: RegionPolicy) -> bool:
        """Under ``minor_age`` on ``on``; a 出生医学证明 as the ID always means a child."""
        if doc is None:
            return False
        if doc.id_type == "birth_certificate":
            return True
        return doc.birth_date is not None and age_on(doc.birth_date, on) < policy.minor_age

    def check_binding(self, ctx: BindingContext) -> BindingDecision:
        """Can this 亲情账户 binding work? (SPEC.md 亲情账户 binding; seed 000 failure reasons)

        Blocked, in this order, if: the binder is not real-name verified; the ID number is
        invalid; the relationship is not allowed (under ``minor_age`` only 子女, bound by a
        guardian); the registry does not match; the member is not insured / their voucher
        is not activated (a minor's is activated by the guardian where the policy says
        so); already bound; the binder has ``max_members_per_binder``; the member had
        ``max_binders_per_member_per_month`` other binders this month (for a minor's
        registered guardian only other guardians count); and, on submit
        only: missing birth papers for a minor, missing materials, the member's face
        check, the commitment (个人承诺书) missing or outdated.

        Review (``pending_review``) where the document type or a material asks for it, and
        for a minor whose binder the registry does not record as a guardian (SPEC.md "a
        minor's guardian").
        """
        p = self.settings(ctx.binder_region, ctx.today)
        doc = ctx.member_doc
        minor = self.is_minor(doc, ctx.today, p)
        out: list[Blocker] = []
        activates = False

        if not ctx.binder_verified:
            out.append(_blocker("BINDER_NOT_VERIFIED"))
        if doc is None:
            out.append(_blocker("INVALID_ID_NUMBER"))

        allowed = _labels(p.binding_relationships)
        if ctx.relationship not in p.binding_relationships:
            out.append(
                _blocker(
                    "RELATIONSHIP_NOT_ALLOWED",
                    relationship=RELATIONSHIP_LABELS.get(ctx.relationship, ctx.relationship),
                    allowed=allowed,
                )
            )
        elif minor and ctx.relationship != "child":
            out.append(
                _blocker(
                    "RELATIONSHIP_NOT_ALLOWED",
                    relationship=RELATIONSHIP_LABELS[ctx.relationship],
                    allowed=f"子女(未满{p.minor_age}周岁的成员须由监护人绑定)",
                )
            )

        # Registry facts mean nothing for an ID that did not parse.
        if doc is not None:
            if ctx.registry_match != "match":
                out.append(_blocker("INFO_MISMATCH"))
            else:
                if ctx.member_status != "active":
                    out.append(_blocker("MEMBER_NOT_INSURED"))
                # 代激活: binding an adult whose voucher is not activated activates it,
                # unless the region turns that off; a minor's by the guardian likewise
                by_binding = p.minor_activation_by_guardian if minor else p.proxy_activation
                if not ctx.member_voucher_activated:
                    if by_binding:
                        activates = True
                    else:
                        out.append(_blocker("MEMBER_NOT_ACTIVATED"))

        if ctx.already_bound:
            out.append(_blocker("ALREADY_BOUND"))
        else:
            if ctx.binder_active_or_pending_count >= p.max_members_per_binder:
                out.append(_blocker("MEMBER_LIMIT_REACHED", limit=p.max_members_per_binder))
            holders = (
                ctx.member_binders_now
                if p.unbind_frees_monthly_slot
                else ctx.member_binders_this_month
            )
            if minor and ctx.binder_is_guardian:
                # A registered guardian is never locked out of their own child by others
                # (slot squatting, adversarial review 2026-12): only guardians count.
                holders = holders & ctx.member_guardian_binders
            # A binder already counted this month does not take a second slot.
            if ctx.binder_id not in holders and len(holders) >= p.max_binders_per_member_per_month:
                next_month = add_months(ctx.today.replace(day=1), 1)
                out.append(
                    _blocker(
                        "MONTHLY_BINDER_LIMIT",
                        limit=p.max_binders_per_member_per_month,
                        next_month=_cn_date(next_month),
                        slot_note="" if p.unbind_frees_monthly_slot else ",本月内已解除的绑定仍占名额",
                    )
                )

        if doc is None:
            required: tuple[str, ...] = ()
        elif minor:
            required = ("|".join(p.minor_documents),)
        else:
            required = p.adult_materials.get(doc.id_type, ())
        documents_way = ctx.verification == "documents" and doc is not None and not minor
        face_required = (
            doc is not None and not minor and p.face_check_for_adults and not documents_way
        )
        if documents_way:
            # without the face, the relationship is shown on paper and a person decides
            required = (*required, "|".join(p.documents_way_materials))
        review_set = frozenset(p.review_required_for)
        review = doc is not None and doc.id_type in review_set
        # A document image proves nothing by itself: a minor is bound at once only by a
        # guardian the registry records; anyone else's application goes to a reviewer.
        review = review or (minor and not ctx.binder_is_guardian) or documents_way

        if ctx.stage == "submit":
            review = review or bool(ctx.materials & review_set)
            missing = missing_materials(required, ctx.materials)
            if missing and minor:
                out.append(_blocker("MINOR_DOCUMENTS_MISSING", minor_age=p.minor_age))
            elif missing:
                labels = "、".join(requirement_label(r) for r in missing)
                out.append(_blocker("MATERIALS_MISSING", missing=labels))
            if face_required and ctx.member_face_passed is not True:
                out.append(_blocker("FACE_CHECK_FAILED"))
            if ctx.commitment == "missing":
                out.append(_blocker("COMMITMENT_REQUIRED"))
            elif ctx.commitment == "outdated":
                out.append(_blocker("COMMITMENT_OUTDATED"))

        return BindingDecision(
            ok=not out,
            blocking=tuple(out),
            required_materials=tuple(required),
            face_check_required=face_required,
            review_required=review,
            minor=minor,
            policy_sources=p.sources(BINDING_SETTINGS),
            activates_voucher=activates,
        )

    def check_authorization(self, ctx: AuthorizationContext) -> AuthorizationDecision:
        """Can this 家庭共济 authorization work? (SPEC.md 家庭共济)

        Blocked, in this order, if: the authorizer is not verified; is not an active 职工医保
        insured (AUTHORIZER_NOT_EMPLOYEE) or has no personal account; the member's ID is
        invalid or is the authorizer's own; the relationship is not allowed in the
        authorizer's region on that date; the registry does not match or the member is not
        insured; the two are in different provinces and cross-province 共济 is not open for
        both regions (or, before within-province opening, in different 统筹区); already
        authorized; the family (authorizer included) would exceed ``max_family_size``; the
        member already has ``max_authorizers_per_member`` (member's region); and on submit
        only: a cross-province authorization without a 共济额度 where required, the 告知书
        not accepted or outdated.
        """
        pa = self.settings(ctx.authorizer_region, ctx.today)
        member_region = ctx.member_region if ctx.registry_match == "match" else None
        pm = self.settings(member_region, ctx.today) if member_region else pa
        doc = ctx.member_doc
        out: list[Blocker] = []

        if not ctx.authorizer_verified:
            out.append(_blocker("AUTHORIZER_NOT_VERIFIED"))
        if ctx.authorizer_insurance_type != "employee" or ctx.authorizer_status != "active":
            out.append(_blocker("AUTHORIZER_NOT_EMPLOYEE"))
        elif not ctx.authorizer_has_personal_account:
            out.append(_blocker("NO_PERSONAL_ACCOUNT"))
        if doc is None:
            out.append(_blocker("INVALID_ID_NUMBER"))
        elif doc.id_number == normalize_id_number(ctx.authorizer_id_number):
            out.append(_blocker("SELF_NOT_ALLOWED"))
        if ctx.relationship not in pa.mutual_aid_relationships:
            out.append(
                _blocker(
                    "RELATIONSHIP_NOT_ALLOWED",
                    relationship=RELATIONSHIP_LABELS.get(ctx.relationship, ctx.relationship),
                    allowed=_labels(pa.mutual_aid_relationships),
                    hint=RELATIONSHIP_HINT_MUTUAL_AID,
                )
            )
        if doc is not None:
            if ctx.registry_match != "match":
                out.append(_blocker("INFO_MISMATCH"))
            elif ctx.member_status != "active":
                out.append(_blocker("MEMBER_NOT_INSURED"))

        cross_province = False
        if member_region is not None:
            if province_of(member_region) != province_of(ctx.authorizer_region):
                cross_province = True
                if not (pa.cross_province_allowed and pm.cross_province_allowed):
                    regions = (ctx.authorizer_region, member_region)
                    opens = self.next_date_when(
                        regions, ctx.today, lambda s: s.cross_province_allowed
                    )
                    opening = (
                        f";跨省共济将于{_cn_date(opens)}起开通,届时可在国家医保服务平台App「医保钱包」中办理"
                        if opens
                        else ""
                    )
                    out.append(_blocker("CROSS_PROVINCE_NOT_ALLOWED", opening=opening))
            elif (
                pooling_area_of(member_region) != pooling_area_of(ctx.authorizer_region)
                and not pa.within_province_allowed
            ):
                out.append(_blocker("OUTSIDE_POOLING_AREA"))

        if ctx.authorizer_id in ctx.member_authorizer_ids:
            out.append(_blocker("ALREADY_AUTHORIZED"))
        else:
            if ctx.authorized_count + 2 > pa.max_family_size:  # + the authorizer + the new member
                out.append(_blocker("FAMILY_SIZE_LIMIT", limit=pa.max_family_size))
            cap = pm.max_authorizers_per_member
            if cap is not None and len(ctx.member_authorizer_ids) >= cap:
                out.append(_blocker("AUTHORIZER_LIMIT", limit=cap))

        quota_required = cross_province and pa.cross_province_quota_required
        if ctx.stage == "submit":
            if quota_required and (ctx.quota_fen is None or ctx.quota_fen <= 0):
                out.append(_blocker("CROSS_PROVINCE_QUOTA_REQUIRED"))
            if ctx.notice == "missing":
                out.append(_blocker("NOTICE_REQUIRED"))
            elif ctx.notice == "outdated":
                out.append(_blocker("NOTICE_OUTDATED"))

        sources = pa.sources(AUTHORIZATION_SETTINGS)
        if pm is not pa:
            sources["max_authorizers_per_member"] = pm.source("max_authorizers_per_member")
        return AuthorizationDecision(
            ok=not out,
            blocking=tuple(out),
            cross_province=cross_province,
            quota_required=quota_required,
            policy_sources=sources,
        )

    def check_mutual_aid_unbind(
        self, *, authorizer_region: str, bound_on: date, today: date
    ) -> UnbindDecision:
        """Some regions forbid ending a 共济 relationship within N months (Wuhan: 3).

        The lock in force on the binding day applies; it ends on the same day N months
        later (clamped to the month's end).
        """
        p = self.settings(authorizer_region, bound_on)
        months = p.unbind_lock_months
        unlock = add_months(bound_on, months)
        blocker = None
        if today < unlock:
            blocker = _blocker("UNBIND_LOCKED", months=months, unlock_date=_cn_date(unlock))
        return UnbindDecision(blocker is None, blocker, unlock, p.source("unbind_lock_months"))


def load_default() -> PolicyEngine:
    """The engine of the repository's ``config/policy.toml``."""
    return PolicyEngine.from_file(DEFAULT_POLICY_PATH)


__all__ = [
    "AUTHORIZATION_SETTINGS",
    "BINDING_SETTINGS",
    "DEFAULT_POLICY_PATH",
    "NATIONAL",
    "RELATIONSHIPS",
    "RELATIONSHIP_LABELS",
    "MATERIAL_KINDS",
    "MATERIAL_LABELS",
    "SETTINGS",
    "AuthorizationContext",
    "AuthorizationDecision",
    "BindingContext",
    "BindingDecision",
    "Blocker",
    "MutualAidRules",
    "PolicyEngine",
    "PolicyEntry",
    "RegionPolicy",
    "SettingOrigin",
    "UnbindDecision",
    "add_months",
    "load_default",
    "material_requirement_met",
    "missing_materials",
    "pooling_area_of",
    "province_of",
    "region_chain",
    "requirement_label",
]
