"""The policy engine: file validation, region/date resolution, binding and 共济 rules."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from server.domain.identity import IdDocument, make_resident_id, parse_id
from server.domain.policy import (
    DEFAULT_POLICY_PATH,
    SETTINGS,
    AuthorizationContext,
    BindingContext,
    PolicyEngine,
    add_months,
    load_default,
    missing_materials,
    pooling_area_of,
    region_chain,
)
from server.domain.reasons import REASONS

TODAY = date(2025, 6, 15)
WUHAN, HUBEI, HANGZHOU, GANSU, LANZHOU = "420100", "420000", "330100", "620000", "620100"
BEIJING, CHENGDU = "110101", "510100"


@pytest.fixture(scope="module")
def engine() -> PolicyEngine:
    return load_default()


def _doc(birth: date = date(1960, 3, 1), id_type: str = "resident_id", today: date = TODAY) -> IdDocument:
    if id_type == "birth_certificate":
        return parse_id(id_type, "P510012345", today=today)
    if id_type == "passport":
        return parse_id(id_type, "E12345678", today=today)
    return parse_id("resident_id", make_resident_id(region="420102", birth=birth), today=today)


def binding(**kw: Any) -> BindingContext:
    base = BindingContext(
        today=TODAY,
        binder_id="b1",
        binder_verified=True,
        binder_region=WUHAN,
        member_doc=_doc(),
        relationship="parent",
        registry_match="match",
        member_voucher_activated=True,
        member_status="active",
        binder_active_or_pending_count=0,
        member_binders_this_month=frozenset(),
        already_bound=False,
        materials=frozenset({"household_register"}),
        commitment="current",
        stage="submit",
        member_face_passed=True,
    )
    return replace(base, **kw)


AUTHORIZER_ID = make_resident_id(region="420102", birth=date(1985, 1, 1), seq="321")


def authorization(**kw: Any) -> AuthorizationContext:
    base = AuthorizationContext(
        today=TODAY,
        authorizer_id="a1",
        authorizer_verified=True,
        authorizer_id_number=AUTHORIZER_ID,
        authorizer_region=WUHAN,
        authorizer_insurance_type="employee",
        authorizer_has_personal_account=True,
        authorizer_status="active",
        member_doc=_doc(),
        member_region=WUHAN,
        relationship="parent",
        registry_match="match",
        member_status="active",
        authorized_count=0,
        member_authorizer_ids=frozenset(),
        notice="current",
        quota_fen=None,
        stage="submit",
    )
    return replace(base, **kw)


# --- the file -----------------------------------------------------------------------


def test_the_file_loads_and_every_setting_has_a_source(engine: PolicyEngine) -> None:
    data = tomllib.loads(DEFAULT_POLICY_PATH.read_text("utf-8"))
    for entry in data["entry"]:
        for key, setting in entry.items():
            if key in SETTINGS:
                assert setting["source"].strip(), (entry["region"], key)
    for region in ("000000", HUBEI, WUHAN, "420102", HANGZHOU, GANSU, BEIJING):
        for on in (date(2021, 1, 1), date(2024, 7, 1), TODAY, date(2026, 2, 1)):
            policy = engine.settings(region, on)
            for name in SETTINGS:
                assert policy.source(name)
                assert getattr(policy, name) is not None or name == "max_authorizers_per_member"


def _raw() -> dict[str, Any]:
    return tomllib.loads(DEFAULT_POLICY_PATH.read_text("utf-8"))


def _breaks(mutate: Any, *needles: str) -> None:
    data = copy.deepcopy(_raw())
    mutate(data)
    with pytest.raises(ValueError) as info:
        PolicyEngine.from_dict(data, origin="policy.toml")
    for needle in needles:
        assert needle in str(info.value)


def test_bad_files_name_the_key() -> None:
    _breaks(lambda d: d["entry"][0]["max_members_per_binder"].pop("source"), "max_members_per_binder.source")
    _breaks(lambda d: d["entry"][0]["max_members_per_binder"].update(value="5"), "max_members_per_binder.value")
    _breaks(lambda d: d["entry"][0]["max_members_per_binder"].update(value=0), "max_members_per_binder.value")
    _breaks(lambda d: d["entry"][0].update(max_member=dict(value=1, source="x")), "unknown setting 'max_member'")
    _breaks(lambda d: d["entry"][0]["binding_relationships"].update(value=["cousin"]), "binding_relationships", "cousin")
    _breaks(lambda d: d["entry"][0]["adult_materials"]["value"].update(passport=["selfie"]), "adult_materials", "selfie")
    _breaks(lambda d: d["entry"][0]["max_authorizers_per_member"].update(value=0), "max_authorizers_per_member")
    _breaks(lambda d: d["entry"][0]["deduction_order"].update(value="random"), "deduction_order")
    _breaks(lambda d: d["entry"][0].update(region="4201"), "region")
    _breaks(lambda d: d["entry"][0].update(effective_from="2021-01-01"), "effective_from")
    _breaks(lambda d: d["entry"][0].pop("minor_age"), "national", "minor_age")
    _breaks(lambda d: d["entry"].append(copy.deepcopy(d["entry"][-1])), "duplicate")
    _breaks(lambda d: d.update(extra=1), "extra")


def test_from_file_reports_broken_toml(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text("[[entry]\n", "utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        PolicyEngine.from_file(bad)


def test_no_policy_before_the_baseline(engine: PolicyEngine) -> None:
    with pytest.raises(ValueError, match="no value"):
        engine.settings(WUHAN, date(2020, 12, 31))
    with pytest.raises(ValueError, match="6 digits"):
        engine.settings("4201", TODAY)


# --- resolution ---------------------------------------------------------------------


def test_region_chain() -> None:
    assert region_chain("420102") == ("420102", "420100", "420000", "000000")
    assert region_chain("420100") == ("420100", "420000", "000000")
    assert region_chain("000000") == ("000000",)
    assert pooling_area_of("110105") == pooling_area_of("110108") == "11"
    assert pooling_area_of("420102") == "4201" != pooling_area_of("420500")


def test_fallback_city_province_national(engine: PolicyEngine) -> None:
    district = engine.settings("420102", TODAY)
    assert district.unbind_lock_months == 3  # Wuhan city
    assert district.origin("unbind_lock_months").region == WUHAN
    assert district.origin("max_members_per_binder").region == "000000"
    assert engine.settings("420500", TODAY).unbind_lock_months == 0  # Yichang: national
    assert engine.settings(HANGZHOU, TODAY).max_authorizers_per_member == 1  # Zhejiang
    assert engine.settings(HANGZHOU, TODAY).origin("max_authorizers_per_member").region == "330000"
    assert engine.settings(BEIJING, TODAY).max_authorizers_per_member is None


@pytest.mark.parametrize(
    ("region", "on", "grandparent"),
    [
        ("000000", date(2024, 6, 30), False),
        ("000000", date(2024, 7, 1), True),
        (BEIJING, date(2024, 6, 30), False),
        (BEIJING, date(2024, 7, 1), True),
        (WUHAN, date(2024, 7, 1), False),  # Hubei rolls out later
        (WUHAN, date(2024, 9, 30), False),
        (WUHAN, date(2024, 10, 1), True),
        (LANZHOU, date(2026, 6, 1), False),  # Gansu still on the 2021 set
    ],
)
def test_mutual_aid_relationships_by_region_and_date(
    engine: PolicyEngine, region: str, on: date, grandparent: bool
) -> None:
    assert ("grandparent" in engine.settings(region, on).mutual_aid_relationships) is grandparent


def test_resolution_field_by_field(engine: PolicyEngine) -> None:
    # Hubei pins one field; the others still follow national dated changes.
    before, after = engine.settings(WUHAN, date(2024, 10, 31)), engine.settings(WUHAN, date(2024, 11, 1))
    assert not before.within_province_allowed and after.within_province_allowed
    assert after.origin("within_province_allowed").effective_from == date(2024, 11, 1)


def test_mutual_aid_rules(engine: PolicyEngine) -> None:
    wuhan = engine.mutual_aid_rules(WUHAN, TODAY)
    assert wuhan.deduction_order == "own_first_then_authorizers_by_binding_order"
    assert wuhan.inpatient_allowed is True and wuhan.unbind_lock_months == 3
    assert set(wuhan.sources) == {"deduction_order", "inpatient_mutual_aid", "unbind_lock_months"}
    hangzhou = engine.mutual_aid_rules(HANGZHOU, TODAY)
    assert hangzhou.inpatient_allowed is False and hangzhou.unbind_lock_months == 0
    assert engine.settings(BEIJING, TODAY).proxy_payment_max_persons == 3


# --- binding ------------------------------------------------------------------------


def test_happy_binding(engine: PolicyEngine) -> None:
    d = engine.check_binding(binding())
    assert d.ok and d.blocking == ()
    assert d.required_materials == ("household_register|id_card_front+id_card_back",)
    assert d.face_check_required and not d.review_required and not d.minor
    assert d.policy_sources["max_members_per_binder"].startswith("seed 000")


MINOR = _doc(birth=date(2015, 1, 1))


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        (dict(binder_verified=False), "BINDER_NOT_VERIFIED"),
        (dict(member_doc=None), "INVALID_ID_NUMBER"),
        (dict(relationship="grandchild"), "RELATIONSHIP_NOT_ALLOWED"),
        (dict(relationship="sibling"), "RELATIONSHIP_NOT_ALLOWED"),
        (dict(member_doc=MINOR, relationship="spouse", materials=frozenset({"birth_certificate"})), "RELATIONSHIP_NOT_ALLOWED"),
        (dict(registry_match="mismatch"), "INFO_MISMATCH"),
        (dict(registry_match="not_found"), "INFO_MISMATCH"),
        (dict(member_status="suspended"), "MEMBER_NOT_INSURED"),
        (dict(already_bound=True), "ALREADY_BOUND"),
        (dict(binder_active_or_pending_count=5), "MEMBER_LIMIT_REACHED"),
        (dict(member_binders_this_month=frozenset({"x", "y"})), "MONTHLY_BINDER_LIMIT"),
        (dict(member_doc=MINOR, relationship="child", materials=frozenset()), "MINOR_DOCUMENTS_MISSING"),
        (dict(materials=frozenset()), "MATERIALS_MISSING"),
        (dict(member_face_passed=False), "FACE_CHECK_FAILED"),
        (dict(member_face_passed=None), "FACE_CHECK_FAILED"),
        (dict(commitment="missing"), "COMMITMENT_REQUIRED"),
        (dict(commitment="outdated"), "COMMITMENT_OUTDATED"),
    ],
)
def test_each_binding_blocker(engine: PolicyEngine, changes: dict[str, Any], code: str) -> None:
    d = engine.check_binding(binding(**changes))
    assert not d.ok
    assert d.codes == (code,)
    assert d.failure is not None and d.failure.message and d.failure.fix
    assert code in REASONS


def test_blockers_are_ordered_most_fundamental_first(engine: PolicyEngine) -> None:
    d = engine.check_binding(
        binding(
            binder_verified=False,
            relationship="grandchild",
            registry_match="mismatch",
            binder_active_or_pending_count=7,
            member_binders_this_month=frozenset({"x", "y"}),
            materials=frozenset(),
            member_face_passed=False,
            commitment="outdated",
        )
    )
    assert d.codes == (
        "BINDER_NOT_VERIFIED",
        "RELATIONSHIP_NOT_ALLOWED",
        "INFO_MISMATCH",
        "MEMBER_LIMIT_REACHED",
        "MONTHLY_BINDER_LIMIT",
        "MATERIALS_MISSING",
        "FACE_CHECK_FAILED",
        "COMMITMENT_OUTDATED",
    )
    # An invalid ID hides the registry facts derived from it.
    d = engine.check_binding(binding(member_doc=None, registry_match="not_found", member_voucher_activated=False))
    assert d.codes == ("INVALID_ID_NUMBER",)


def test_relationship_message_names_the_choice(engine: PolicyEngine) -> None:
    d = engine.check_binding(binding(relationship="grandchild"))
    assert "孙子女" in d.blocking[0].message and "配偶、父母、子女" in d.blocking[0].message


def test_limits_at_the_boundary(engine: PolicyEngine) -> None:
    assert engine.check_binding(binding(binder_active_or_pending_count=4)).ok
    assert engine.check_binding(binding(member_binders_this_month=frozenset({"x"}))).ok
    # A binder already counted this month (e.g. rebinding after an unbind) takes no new slot.
    assert engine.check_binding(binding(member_binders_this_month=frozenset({"x", "b1"}))).ok
    d = engine.check_binding(binding(member_binders_this_month=frozenset({"x", "y", "b1"})))
    assert d.ok
    d = engine.check_binding(binding(member_binders_this_month=frozenset({"x", "y"})))
    assert "2025年7月1日" in d.blocking[0].fix


def test_guardian_is_never_locked_out_of_their_child(engine: PolicyEngine) -> None:
    full = dict(
        member_doc=MINOR,
        relationship="child",
        member_face_passed=None,
        materials=frozenset({"birth_certificate"}),
        member_binders_this_month=frozenset({"x", "y"}),
    )
    assert "MONTHLY_BINDER_LIMIT" in engine.check_binding(binding(**full)).codes
    guardian = binding(**full, binder_is_guardian=True)
    assert engine.check_binding(guardian).ok
    # ... but two other guardians this month still count
    both = replace(guardian, member_guardian_binders=frozenset({"x", "y"}))
    assert "MONTHLY_BINDER_LIMIT" in engine.check_binding(both).codes


def test_unbind_frees_slot_setting(engine: PolicyEngine) -> None:
    data = _raw()
    data["entry"][0]["unbind_frees_monthly_slot"]["value"] = True
    lenient = PolicyEngine.from_dict(data)
    ctx = binding(member_binders_this_month=frozenset({"x", "y"}), member_binders_now=frozenset({"x"}))
    assert not engine.check_binding(ctx).ok
    assert lenient.check_binding(ctx).ok


def test_minor_binding(engine: PolicyEngine) -> None:
    ctx = binding(
        member_doc=MINOR,
        relationship="child",
        member_voucher_activated=False,  # activated by the guardian
        member_face_passed=None,
        materials=frozenset({"birth_certificate"}),
        binder_is_guardian=True,
    )
    d = engine.check_binding(ctx)
    assert d.ok and d.minor and not d.face_check_required and not d.review_required
    # a binder the registry does not record as the guardian: a reviewer decides
    stranger = engine.check_binding(replace(ctx, binder_is_guardian=False))
    assert stranger.ok and stranger.review_required
    assert d.required_materials == ("birth_certificate|household_register|relationship_notarization",)
    assert engine.check_binding(replace(ctx, materials=frozenset({"household_register"}))).ok
    notarized = engine.check_binding(replace(ctx, materials=frozenset({"relationship_notarization"})))
    assert notarized.ok and notarized.review_required
    newborn = engine.check_binding(replace(ctx, member_doc=_doc(id_type="birth_certificate")))
    assert newborn.ok and newborn.minor


@pytest.mark.parametrize(
    ("on", "minor"),
    [(date(2025, 6, 14), True), (date(2025, 6, 15), False), (date(2025, 6, 16), False)],
)
def test_age_boundary_on_the_16th_birthday(engine: PolicyEngine, on: date, minor: bool) -> None:
    doc = _doc(birth=date(2009, 6, 15), today=on)
    d = engine.check_binding(binding(today=on, member_doc=doc, stage="precheck"))
    assert d.minor is minor
    assert d.face_check_required is not minor
    expected = (
        ("birth_certificate|household_register|relationship_notarization",)
        if minor
        else ("household_register|id_card_front+id_card_back",)
    )
    assert d.required_materials == expected


def test_feb_29_birth_is_16_on_the_leap_day_and_ages_on_march_1(engine: PolicyEngine) -> None:
    doc = _doc(birth=date(2008, 2, 29), today=date(2024, 2, 28))
    assert engine.check_binding(binding(today=date(2024, 2, 28), member_doc=doc, stage="precheck")).minor
    assert not engine.check_binding(binding(today=date(2024, 2, 29), member_doc=doc, stage="precheck")).minor
    # In a common year the anniversary is reached on 1 March (checked with minor_age 17).
    data = _raw()
    data["entry"][0]["minor_age"]["value"] = 17
    seventeen = PolicyEngine.from_dict(data)
    doc2 = _doc(birth=date(2004, 2, 29), today=date(2021, 2, 28))
    assert seventeen.check_binding(binding(today=date(2021, 2, 28), member_doc=doc2, stage="precheck")).minor
    assert not seventeen.check_binding(binding(today=date(2021, 3, 1), member_doc=doc2, stage="precheck")).minor


def test_precheck_reports_requirements_without_blocking_on_them(engine: PolicyEngine) -> None:
    d = engine.check_binding(binding(stage="precheck", materials=frozenset(), commitment="missing", member_face_passed=None))
    assert d.ok
    assert d.required_materials == ("household_register|id_card_front+id_card_back",)
    assert d.face_check_required


def test_non_mainland_documents_need_review(engine: PolicyEngine) -> None:
    d = engine.check_binding(binding(member_doc=_doc(id_type="passport"), materials=frozenset({"passport"})))
    assert d.ok and d.review_required
    assert d.required_materials == ("passport",)
    pre = engine.check_binding(binding(member_doc=_doc(id_type="passport"), stage="precheck"))
    assert pre.review_required


def test_missing_materials_helper() -> None:
    assert missing_materials(("a|b", "c"), {"b"}) == ("c",)
    assert missing_materials(("a|b",), {"a"}) == ()


# --- 家庭共济 -----------------------------------------------------------------------


def test_happy_authorization(engine: PolicyEngine) -> None:
    d = engine.check_authorization(authorization())
    assert d.ok and not d.cross_province and not d.quota_required
    assert "max_family_size" in d.policy_sources


OTHER_MEMBER = _doc(birth=date(1990, 5, 5))


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        (dict(authorizer_verified=False), "AUTHORIZER_NOT_VERIFIED"),
        (dict(authorizer_insurance_type="resident"), "AUTHORIZER_NOT_EMPLOYEE"),
        (dict(authorizer_insurance_type=None), "AUTHORIZER_NOT_EMPLOYEE"),
        (dict(authorizer_status="suspended"), "AUTHORIZER_NOT_EMPLOYEE"),
        (dict(authorizer_has_personal_account=False), "NO_PERSONAL_ACCOUNT"),
        (dict(member_doc=None), "INVALID_ID_NUMBER"),
        (dict(member_doc=parse_id("resident_id", AUTHORIZER_ID.lower(), today=TODAY)), "SELF_NOT_ALLOWED"),
        (dict(relationship="grandparent", today=date(2024, 9, 30)), "RELATIONSHIP_NOT_ALLOWED"),
        (dict(registry_match="mismatch"), "INFO_MISMATCH"),
        (dict(member_status="suspended"), "MEMBER_NOT_INSURED"),
        (dict(member_region=CHENGDU), "CROSS_PROVINCE_NOT_ALLOWED"),
        (dict(member_region="420500", today=date(2024, 10, 31)), "OUTSIDE_POOLING_AREA"),
        (dict(member_authorizer_ids=frozenset({"a1"})), "ALREADY_AUTHORIZED"),
        (dict(authorized_count=6), "FAMILY_SIZE_LIMIT"),
        (dict(member_region=CHENGDU, today=date(2026, 1, 9)), "CROSS_PROVINCE_QUOTA_REQUIRED"),
        (dict(notice="missing"), "NOTICE_REQUIRED"),
        (dict(notice="outdated"), "NOTICE_OUTDATED"),
    ],
)
def test_each_authorization_blocker(engine: PolicyEngine, changes: dict[str, Any], code: str) -> None:
    d = engine.check_authorization(authorization(**changes))
    assert d.codes == (code,)
    assert code in REASONS


def test_grandparent_dates(engine: PolicyEngine) -> None:
    beijing = dict(authorizer_region=BEIJING, member_region=BEIJING, relationship="grandparent")
    assert engine.check_authorization(authorization(today=date(2024, 6, 30), **beijing)).codes == (
        "RELATIONSHIP_NOT_ALLOWED",
    )
    assert engine.check_authorization(authorization(today=date(2024, 7, 1), **beijing)).ok
    assert engine.check_authorization(authorization(today=date(2024, 10, 1), relationship="grandparent")).ok
    gansu = dict(authorizer_region=LANZHOU, member_region=LANZHOU, relationship="grandchild")
    d = engine.check_authorization(authorization(today=date(2026, 6, 1), **gansu))
    assert d.codes == ("RELATIONSHIP_NOT_ALLOWED",)
    assert "兄弟姐妹" not in d.blocking[0].message  # lists Gansu's set, not the national one


def test_family_size_boundary(engine: PolicyEngine) -> None:
    assert engine.check_authorization(authorization(authorized_count=5)).ok  # 1 + 5 + new = 7
    assert engine.check_authorization(authorization(authorized_count=6)).codes == ("FAMILY_SIZE_LIMIT",)


def test_zhejiang_one_authorizer(engine: PolicyEngine) -> None:
    zj = dict(authorizer_region=HANGZHOU, member_region=HANGZHOU)
    assert engine.check_authorization(authorization(**zj)).ok
    d = engine.check_authorization(authorization(member_authorizer_ids=frozenset({"other"}), **zj))
    assert d.codes == ("AUTHORIZER_LIMIT",)
    assert "1位" in d.blocking[0].message
    # Elsewhere a person may have several authorizers.
    assert engine.check_authorization(authorization(member_authorizer_ids=frozenset({"o1", "o2"}))).ok
    # The member's region decides the cap, even for a cross-province authorizer.
    cross = dict(authorizer_region=WUHAN, member_region=HANGZHOU, today=date(2026, 2, 1), quota_fen=10000)
    assert engine.check_authorization(authorization(member_authorizer_ids=frozenset({"o"}), **cross)).codes == (
        "AUTHORIZER_LIMIT",
    )


@pytest.mark.parametrize(
    ("on", "ok"), [(date(2026, 1, 8), False), (date(2026, 1, 9), True)]
)
def test_cross_province_by_date(engine: PolicyEngine, on: date, ok: bool) -> None:
    d = engine.check_authorization(authorization(today=on, member_region=CHENGDU, quota_fen=50000))
    assert d.cross_province
    assert d.ok is ok
    if not ok:
        assert d.codes == ("CROSS_PROVINCE_NOT_ALLOWED",)
        assert "2026年1月9日" in d.blocking[0].fix
    else:
        assert d.quota_required


def test_cross_province_quota(engine: PolicyEngine) -> None:
    ctx = authorization(today=date(2026, 3, 1), member_region=CHENGDU)
    assert engine.check_authorization(replace(ctx, quota_fen=0)).codes == ("CROSS_PROVINCE_QUOTA_REQUIRED",)
    assert engine.check_authorization(replace(ctx, quota_fen=1)).ok
    pre = engine.check_authorization(replace(ctx, stage="precheck", notice="missing"))
    assert pre.ok and pre.quota_required


def test_within_province_opening(engine: PolicyEngine) -> None:
    yichang = dict(member_region="420500")
    assert engine.check_authorization(authorization(today=date(2024, 10, 31), **yichang)).codes == (
        "OUTSIDE_POOLING_AREA",
    )
    assert engine.check_authorization(authorization(today=date(2024, 11, 1), **yichang)).ok
    # Beijing districts are one pooling area.
    bj = dict(authorizer_region="110105", member_region="110108", today=date(2023, 1, 1))
    assert engine.check_authorization(authorization(**bj)).ok


def test_wuhan_unbind_lock(engine: PolicyEngine) -> None:
    bound = date(2025, 3, 31)
    locked = engine.check_mutual_aid_unbind(authorizer_region="420102", bound_on=bound, today=date(2025, 6, 29))
    assert not locked.ok and locked.unlock_date == date(2025, 6, 30)
    assert locked.blocker is not None and locked.blocker.code == "UNBIND_LOCKED"
    assert "2025年6月30日" in locked.blocker.fix
    assert engine.check_mutual_aid_unbind(authorizer_region=WUHAN, bound_on=bound, today=date(2025, 6, 30)).ok
    assert engine.check_mutual_aid_unbind(authorizer_region="420500", bound_on=bound, today=bound).ok


def test_add_months() -> None:
    assert add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)
    assert add_months(date(2023, 11, 30), 3) == date(2024, 2, 29)
    assert add_months(date(2025, 12, 15), 1) == date(2026, 1, 15)
    assert add_months(date(2025, 1, 1), 0) == date(2025, 1, 1)


def test_every_catalogued_code_is_reachable_or_external() -> None:
    # Codes the engine never produces are recorded by other parts of the system.
    external = {"SYSTEM_BUSY", "MATERIALS_REJECTED", "UNBIND_LOCKED", "CORRECTION_REQUESTED"}
    engine_codes = {
        "BINDER_NOT_VERIFIED", "INVALID_ID_NUMBER", "RELATIONSHIP_NOT_ALLOWED", "INFO_MISMATCH",
        "MEMBER_NOT_INSURED", "MEMBER_NOT_ACTIVATED", "ALREADY_BOUND", "MEMBER_LIMIT_REACHED",
        "MONTHLY_BINDER_LIMIT", "MINOR_DOCUMENTS_MISSING", "MATERIALS_MISSING", "FACE_CHECK_FAILED",
        "COMMITMENT_REQUIRED", "COMMITMENT_OUTDATED", "AUTHORIZER_NOT_VERIFIED",
        "AUTHORIZER_NOT_EMPLOYEE", "NO_PERSONAL_ACCOUNT", "SELF_NOT_ALLOWED", "ALREADY_AUTHORIZED",
        "FAMILY_SIZE_LIMIT", "AUTHORIZER_LIMIT", "OUTSIDE_POOLING_AREA", "CROSS_PROVINCE_NOT_ALLOWED",
        "CROSS_PROVINCE_QUOTA_REQUIRED", "NOTICE_REQUIRED", "NOTICE_OUTDATED",
    }
    assert set(REASONS) == external | engine_codes


def test_adult_materials_are_one_of_hukou_or_both_id_card_sides(engine: PolicyEngine) -> None:
    """API.md v1.1: one of household_register or id_card_front + id_card_back."""
    def codes(*kinds: str) -> tuple[str, ...]:
        return engine.check_binding(
            binding(stage="submit", materials=frozenset(kinds), member_face_passed=True,
                    commitment="current")
        ).codes

    assert codes("household_register") == ()
    assert codes("id_card_front", "id_card_back") == ()
    assert codes("id_card_front") == ("MATERIALS_MISSING",)
    missing = engine.check_binding(binding(stage="submit", materials=frozenset(),
                                           member_face_passed=True, commitment="current"))
    assert "户口本" in missing.blocking[0].message and "身份证" in missing.blocking[0].message


def test_proxy_activation(engine: PolicyEngine) -> None:
    """代激活: an adult whose voucher is not activated is bound and activated; only a
    region that turns it off refuses with MEMBER_NOT_ACTIVATED."""
    d = engine.check_binding(binding(member_voucher_activated=False))
    assert d.ok and d.activates_voucher
    assert not engine.check_binding(binding()).activates_voucher
    data = _raw()
    data["entry"][0]["proxy_activation"]["value"] = False
    off = PolicyEngine.from_dict(data).check_binding(binding(member_voucher_activated=False))
    assert off.codes == ("MEMBER_NOT_ACTIVATED",) and not off.activates_voucher


def test_the_documents_way(engine: PolicyEngine) -> None:
    """Without the face: 户口本 pages or a 关系公证书, and a reviewer decides."""
    ctx = binding(member_face_passed=None, verification="documents",
                  materials=frozenset({"id_card_front", "id_card_back"}))
    d = engine.check_binding(ctx)
    assert d.codes == ("MATERIALS_MISSING",) and not d.face_check_required
    ok = engine.check_binding(replace(ctx, materials=frozenset({"household_register"})))
    assert ok.ok and ok.review_required
