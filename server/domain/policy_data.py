"""Policy data: the dated, per-region settings of ``config/policy.toml`` — their names,
validators, the resolved ``RegionPolicy`` — and the pure helpers on regions and material
requirements. ``server.domain.policy`` holds the engine that applies them (and re-exports
these names, so callers import from one place).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

from server.domain.identity import ID_TYPES

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

    def __hash__(self) -> int:  # type: ignore[override]  # dict declares __hash__ = None
        return hash(tuple(sorted(self.items())))

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("policy settings are read-only")

    __setitem__ = __delitem__ = _readonly
    # one refusal for every mutator, whatever its signature in dict
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



# --- helpers ------------------------------------------------------------------------


def _check_region(code: object) -> str:
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
            region = _check_region(region)
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
