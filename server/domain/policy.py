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

import calendar
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from server.domain.identity import ID_TYPES, IdDocument, age_on, normalize_id_number
from server.domain.reasons import (
    RELATIONSHIP_HINT_MUTUAL_AID,
    reason,
)

NATIONAL = "000000"
DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "config" / "policy.toml"

# What the member is to the binder / authorizer (API.md ``relationship``).
RELATIONSHIP_LABELS: Mapping[str, str] = {
    "spouse": "配偶",
    "parent": "父母",
    "child": "子女",
    "sibling": "兄弟姐妹",
    "grandparent": "祖父母、外祖父母",
    "grandchild": "孙子女、外孙子女",
}
RELATIONSHIPS: tuple[str, ...] = tuple(RELATIONSHIP_LABELS)

# API.md material ``kind`` values, plus 关系公证书 (SPEC.md verification, under 16).
MATERIAL_LABELS: Mapping[str, str] = {
    "household_register": "户口本",
    "id_card_front": "身份证人像面",
    "id_card_back": "身份证国徽面",
    "birth_certificate": "出生医学证明",
    "passport": "护照",
    "residence_permit": "居住证",
    "travel_permit": "通行证",
    "relationship_notarization": "亲属关系公证书",
}
MATERIAL_KINDS: tuple[str, ...] = tuple(MATERIAL_LABELS)

DEDUCTION_ORDERS: tuple[str, ...] = ("own_first_then_authorizers_by_binding_order",)
# Parts of a 个人负担 outside the policy's scope (national 2207 names without ``_amt``).
OUT_OF_SCOPE_PARTS: tuple[str, ...] = ("fulamt_ownpay", "overlmt_selfpay")

# Municipalities are one 统筹区 each; elsewhere the pooling area is the city (4 digits).
_MUNICIPALITY_PREFIXES = frozenset({"11", "12", "31", "50"})


# --- settings schema ----------------------------------------------------------------


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {v!r}")
    return v


def _int(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"must be an integer >= {minimum}, got {v!r}")
        if maximum is not None and v > maximum:
            raise ValueError(f"must be an integer <= {maximum}, got {v!r}")
        return v

    return check


def _int_or_unlimited(v: Any) -> int | None:
    if v == "unlimited":
        return None
    try:
        return _int(1)(v)
    except ValueError:
        raise ValueError(f'must be a positive integer or "unlimited", got {v!r}') from None


def _choice_list(
    choices: Sequence[str], *, alternatives: bool = False
) -> Callable[[Any], tuple[str, ...]]:
    def check(v: Any) -> tuple[str, ...]:
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ValueError(f"must be a list of strings, got {v!r}")
        for item in v:
            parts = [k for alt in item.split("|") for k in alt.split("+")] if alternatives else [item]
            for part in parts:
                if part not in choices:
                    expected = ", ".join(choices)
                    raise ValueError(f"unknown value {part!r}; expected one of {expected}")
        if len(set(v)) != len(v):
            raise ValueError(f"has duplicates: {v!r}")
        return tuple(v)

    return check


def _choice(choices: Sequence[str]) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {v!r}")
        return str(v)

    return check


def _materials_by_id_type(v: Any) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(v, dict):
        raise ValueError(f"must be a table id_type → list of material requirements, got {v!r}")
    out: dict[str, tuple[str, ...]] = {}
    for id_type, reqs in v.items():
        if id_type not in ID_TYPES:
            raise ValueError(f"unknown id_type {id_type!r}")
        try:
            out[id_type] = _choice_list(MATERIAL_KINDS, alternatives=True)(reqs)
        except ValueError as e:
            raise ValueError(f"{id_type}: {e}") from None
    return _FrozenDict(out)


class _FrozenDict(dict[str, tuple[str, ...]]):
    """A read-only dict (hashable, so RegionPolicy stays a proper frozen value)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("policy settings are read-only")

    __setitem__ = __delitem__ = _readonly  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]


SETTINGS: Mapping[str, Callable[[Any], Any]] = {
    # 亲情账户 binding
    "binding_relationships": _choice_list(RELATIONSHIPS),
    "max_members_per_binder": _int(1),
    "max_binders_per_member_per_month": _int(1),
    "unbind_frees_monthly_slot": _bool,
    "minor_age": _int(1, 18),
    "minor_activation_by_guardian": _bool,
    "face_check_for_adults": _bool,
    "minor_documents": _choice_list(MATERIAL_KINDS),
    "adult_materials": _materials_by_id_type,
    "review_required_for": _choice_list((*ID_TYPES, *MATERIAL_KINDS)),
    "proxy_activation": _bool,
    "documents_way_materials": _choice_list(MATERIAL_KINDS, alternatives=True),
    "needs_action_holds_slot": _bool,
    "voucher_password_required": _bool,
    "voucher_password_max_attempts": _int(1, 20),
    "voucher_password_lock_minutes": _int(1, 7 * 24 * 60),
    # 家庭共济 mutual aid
    "mutual_aid_relationships": _choice_list(RELATIONSHIPS),
    "max_family_size": _int(2),
    "max_authorizers_per_member": _int_or_unlimited,
    "within_province_allowed": _bool,
    "cross_province_allowed": _bool,
    "cross_province_quota_required": _bool,
    "deduction_order": _choice(DEDUCTION_ORDERS),
    "inpatient_mutual_aid": _bool,
    "unbind_lock_months": _int(0, 120),
    "own_account_out_of_scope": _choice_list(OUT_OF_SCOPE_PARTS),
    # 职工医保代缴居民医保
    "proxy_payment_max_persons": _int(1),
    "proxy_payment_relationships": _choice_list(RELATIONSHIPS),
}

BINDING_SETTINGS: tuple[str, ...] = (
    "binding_relationships",
    "max_members_per_binder",
    "max_binders_per_member_per_month",
    "unbind_frees_monthly_slot",
    "minor_age",
    "minor_activation_by_guardian",
    "face_check_for_adults",
    "minor_documents",
    "adult_materials",
    "review_required_for",
    "proxy_activation",
    "documents_way_materials",
    "needs_action_holds_slot",
)
AUTHORIZATION_SETTINGS: tuple[str, ...] = (
    "mutual_aid_relationships",
    "max_family_size",
    "max_authorizers_per_member",
    "within_province_allowed",
    "cross_province_allowed",
    "cross_province_quota_required",
)


@dataclass(frozen=True)
class SettingOrigin:
    """Where a resolved value came from."""

    source: str
    region: str
    effective_from: date


@dataclass(frozen=True)
class PolicyEntry:
    """One ``[[entry]]`` of the policy file: a region's settings from a date on."""

    region: str
    effective_from: date
    values: Mapping[str, Any]
    sources: Mapping[str, str]
    note: str = ""


@dataclass(frozen=True)
class RegionPolicy:
    """All settings resolved for one region on one date; ``source(name)`` says why."""

    region: str
    on: date
    binding_relationships: tuple[str, ...]
    max_members_per_binder: int
    max_binders_per_member_per_month: int
    unbind_frees_monthly_slot: bool
    minor_age: int
    minor_activation_by_guardian: bool
    face_check_for_adults: bool
    minor_documents: tuple[str, ...]
    adult_materials: Mapping[str, tuple[str, ...]]
    review_required_for: tuple[str, ...]
    proxy_activation: bool
    documents_way_materials: tuple[str, ...]
    needs_action_holds_slot: bool
    voucher_password_required: bool
    voucher_password_max_attempts: int
    voucher_password_lock_minutes: int
    mutual_aid_relationships: tuple[str, ...]
    max_family_size: int
    max_authorizers_per_member: int | None  # None: no cap
    within_province_allowed: bool
    cross_province_allowed: bool
    cross_province_quota_required: bool
    deduction_order: str
    inpatient_mutual_aid: bool
    unbind_lock_months: int
    own_account_out_of_scope: tuple[str, ...]  # what the member's own account may pay beyond scope
    proxy_payment_max_persons: int
    proxy_payment_relationships: tuple[str, ...]
    origins: Mapping[str, SettingOrigin]

    def origin(self, name: str) -> SettingOrigin:
        try:
            return self.origins[name]
        except KeyError:
            raise KeyError(f"unknown policy setting {name!r}") from None

    def source(self, name: str) -> str:
        return self.origin(name).source

    def sources(self, names: Iterable[str] | None = None) -> dict[str, str]:
        return {n: self.source(n) for n in (SETTINGS if names is None else names)}


# Every setting is a field of RegionPolicy and the other way round.
assert {f.name for f in fields(RegionPolicy)} - {"region", "on", "origins"} == set(SETTINGS)


@dataclass(frozen=True)
class MutualAidRules:
    """How a settlement uses 共济 money in a region (the settlement service applies it)."""

    region: str
    on: date
    deduction_order: str
    inpatient_allowed: bool
    unbind_lock_months: int
    sources: Mapping[str, str]


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


# --- helpers ------------------------------------------------------------------------


def _check_region(code: str) -> str:
    if not isinstance(code, str) or len(code) != 6 or not code.isdigit():
        raise ValueError(f"region code must be 6 digits, got {code!r}")
    return code


def region_chain(code: str) -> tuple[str, ...]:
    """``420102`` → (``420102``, ``420100``, ``420000``, ``000000``), duplicates removed."""
    _check_region(code)
    chain = [code, code[:4] + "00", code[:2] + "0000", NATIONAL]
    return tuple(dict.fromkeys(chain))


def province_of(code: str) -> str:
    return _check_region(code)[:2]


def pooling_area_of(code: str) -> str:
    """The 统筹区 a region belongs to: the municipality, or else the city."""
    _check_region(code)
    return code[:2] if code[:2] in _MUNICIPALITY_PREFIXES else code[:4]


def add_months(d: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (Nov 30 + 3 → Feb 28/29)."""
    index = d.month - 1 + months
    year, month = d.year + index // 12, index % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _cn_date(d: date) -> str:
    return f"{d.year}年{d.month}月{d.day}日"


def _labels(relationships: Iterable[str]) -> str:
    return "、".join(RELATIONSHIP_LABELS[r] for r in relationships)


def material_requirement_met(requirement: str, materials: Iterable[str]) -> bool:
    have = set(materials)
    return any(all(k in have for k in alt.split("+")) for alt in requirement.split("|"))


def missing_materials(requirements: Iterable[str], materials: Iterable[str]) -> tuple[str, ...]:
    have = frozenset(materials)
    return tuple(r for r in requirements if not material_requirement_met(r, have))


def requirement_label(requirement: str) -> str:
    return "或".join(
        "和".join(MATERIAL_LABELS[k] for k in alt.split("+")) for alt in requirement.split("|")
    )


# --- loading ------------------------------------------------------------------------


def _parse_entries(data: Mapping[str, Any], origin: str) -> list[PolicyEntry]:
    unknown_top = set(data) - {"schema_version", "entry"}
    if unknown_top:
        raise ValueError(f"{origin}: unknown top-level key(s): {', '.join(sorted(unknown_top))}")
    raw_entries = data.get("entry")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise ValueError(f"{origin}: needs at least one [[entry]]")
    entries: list[PolicyEntry] = []
    seen: set[tuple[str, date]] = set()
    for n, raw in enumerate(raw_entries, 1):
        where = f"{origin}: entry #{n}"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: must be a table")
        region = raw.get("region")
        try:
            _check_region(region)
        except ValueError as e:
            raise ValueError(f"{where}: region: {e}") from None
        eff = raw.get("effective_from")
        if not isinstance(eff, date) or hasattr(eff, "hour"):
            raise ValueError(
                f"{where} (region {region}): effective_from must be a date, got {eff!r}"
            )
        where = f"{origin}: entry #{n} (region {region}, effective_from {eff})"
        if (region, eff) in seen:
            raise ValueError(f"{where}: duplicate region and effective_from")
        seen.add((region, eff))
        note = raw.get("note", "")
        if not isinstance(note, str):
            raise ValueError(f"{where}: note must be a string")
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for key, setting in raw.items():
            if key in ("region", "effective_from", "note"):
                continue
            if key not in SETTINGS:
                raise ValueError(f"{where}: unknown setting {key!r}")
            if not isinstance(setting, dict) or "value" not in setting:
                raise ValueError(f"{where}: {key} must be a table with 'value' and 'source'")
            extra = set(setting) - {"value", "source", "note"}
            if extra:
                raise ValueError(f"{where}: {key}: unknown key(s) {', '.join(sorted(extra))}")
            source = setting.get("source")
            if not isinstance(source, str) or not source.strip():
                raise ValueError(f"{where}: {key}.source is missing or empty")
            try:
                values[key] = SETTINGS[key](setting["value"])
            except ValueError as e:
                raise ValueError(f"{where}: {key}.value {e}") from None
            sources[key] = source.strip()
        if not values:
            raise ValueError(f"{where}: sets no setting")
        entries.append(PolicyEntry(region, eff, values, sources, note))
    national = {k for e in entries if e.region == NATIONAL for k in e.values}
    missing = [k for k in SETTINGS if k not in national]
    if missing:
        raise ValueError(f"{origin}: the national ({NATIONAL}) entries miss: {', '.join(missing)}")
    return entries


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
