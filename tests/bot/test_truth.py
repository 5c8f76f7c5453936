"""The bot tells the truth (issue 11 point 6; SPEC.md "The bot"): every screen, button,
notice, menu entry and application state an answer names exists; every failure code has
an answer and a personal diagnosis; what we cannot do goes to 12393 or the local window;
the answers agree with the policy data."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from bot.diagnosis import Attempt, explain, explain_refusal
from bot.menu import build_menu
from bot.nlu import KnowledgeBase
from server.domain import attempts, notices_outbox
from server.domain.attempts import Refusal
from server.domain.family.states import STATES
from server.domain.reasons import API_BINDING_CODES, REASONS

ROOT = Path(__file__).resolve().parents[2]
MINIPROGRAM = ROOT / "miniprogram"

# Added by issue 11 (API.md v1.1) in the lead's branch; listed here until they exist, so
# the answers may name them now and the test turns strict once they land.
EXPECTED_NEW_NOTICES = {"binding_result", "member_bound", "member_unbound"}
EXPECTED_NEW_STATES = {"needs_action", "correction_requested", "cancelled"}
# Binding failures the bot must explain besides API.md's list (issue 11 point 6).
MORE_BINDING_CODES = (
    "FACE_CHECK_FAILED", "MATERIALS_MISSING", "MEMBER_NOT_INSURED", "IDENTITY_IN_USE",
    "SELF_NOT_ALLOWED",
)
# 家庭共济 refusals outside the reasons catalogue that authorize() may record.
MORE_MUTUAL_AID_CODES = ("QUOTA_NOT_APPLICABLE",)
# 「…」 an answer may quote without declaring it: features and documents, not screens.
TERMS = {"亲情账户", "家庭共济"}
# Promises the product does not keep (issue 11 point 6): none may come back.
BROKEN_PROMISES = (
    "9:00", "17:00", "人工客服工作日",  # no human agents
    "申请记录",  # the page is 办理记录
    "「医保码」小程序",  # Tencent's mini-program instead of ours
    "母亲姓名", "母亲身份证", "母亲的身份证",  # no newborn lookup by the mother's ID
    "→「支付密码」", "设置支付密码",  # no payment-password page
    "审核结果会通过本公众号通知",  # the notice is binding_result, through the outbox
)
_QUOTED = re.compile(r"「([^」]+)」")


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


def _texts(kb: KnowledgeBase) -> list[tuple[str, str, tuple[str, ...]]]:
    """(id, text, declared names) of every answer and every reply."""
    out = [(i.id, i.answer, i.names) for i in kb.intents()]
    out += [(f"reply.{r.id}", r.text, r.names) for r in kb.replies.values()]
    return out


def _split(name: str) -> tuple[str, str, str]:
    """"page:pages/x=标题" → ("page", "pages/x", "标题")."""
    kind, _, rest = name.partition(":")
    target, _, label = rest.partition("=")
    return kind, target, label


# ── failure codes: an intent and a personal diagnosis each ──

def _binding_codes() -> list[str]:
    catalogue = [r.code for r in REASONS.values() if r.feature in ("binding", "common")]
    return sorted(set(API_BINDING_CODES) | set(MORE_BINDING_CODES) | set(catalogue))


def _mutual_aid_codes() -> list[str]:
    catalogue = [r.code for r in REASONS.values() if r.feature in ("mutual_aid", "common")]
    return sorted(set(catalogue) | set(MORE_MUTUAL_AID_CODES))


@pytest.mark.parametrize("code", _binding_codes())
def test_every_binding_failure_has_an_answer_and_a_personal_diagnosis(
    kb: KnowledgeBase, code: str
) -> None:
    intent = kb.by_error_code(code, "binding")
    assert intent is not None, f"no intent explains {code}"
    at = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
    for state in ("failed", "needs_action"):
        text = explain(Attempt(state, "张*华", at, code, None), kb)
        assert text is not None, (code, state)
        assert "11月20日" in text and "张*华" in text and intent.title in text
        assert intent.answer in text
        assert len(text.encode()) <= 2048, (code, state)  # a passive reply's text limit
    assert "已结束" in explain(Attempt("failed", "张*华", at, code, None), kb)  # type: ignore[operator]
    assert "保留" in explain(Attempt("needs_action", "张*华", at, code, None), kb)  # type: ignore[operator]


@pytest.mark.parametrize("code", _mutual_aid_codes())
def test_every_mutual_aid_refusal_has_an_answer_and_a_personal_diagnosis(
    kb: KnowledgeBase, code: str
) -> None:
    intent = kb.by_error_code(code, "mutual_aid")
    assert intent is not None, f"no intent explains the 家庭共济 refusal {code}"
    message = REASONS[code].formatted().message if code in REASONS else "共济额度仅适用于跨省共济"
    at = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
    for action, says in (("authorize", "授权家庭共济没有成功"), ("revoke", "解除家庭共济授权没有成功")):
        text = explain_refusal(Refusal(1, action, code, message, at), kb)
        assert text is not None and says in text and message in text and intent.answer in text
        assert len(text.encode()) <= 2048


def test_a_shared_code_gets_the_answer_of_its_feature(kb: KnowledgeBase) -> None:
    binding = kb.by_error_code("RELATIONSHIP_NOT_ALLOWED", "binding")
    mutual_aid = kb.by_error_code("RELATIONSHIP_NOT_ALLOWED", "mutual_aid")
    assert binding is not None and mutual_aid is not None and binding.id != mutual_aid.id
    assert "亲情账户只能绑定" in binding.answer and "近亲属" in mutual_aid.answer
    # a "common" intent answers for both
    assert kb.by_error_code("INFO_MISMATCH", "binding") is kb.by_error_code("INFO_MISMATCH", "mutual_aid")


def test_the_troubleshooting_dialogue_reaches_the_new_failures(kb: KnowledgeBase) -> None:
    from bot.dialogue import TREE

    outcomes = {target for q in TREE.values() for _, target in q.choices if target.isupper()}
    assert {"FACE_CHECK_FAILED", "MATERIALS_MISSING", "MEMBER_NOT_INSURED"} <= outcomes


# ── what the answers name exists ──

def test_declared_notices_are_notice_kinds(kb: KnowledgeBase) -> None:
    kinds = set(notices_outbox.TITLES)
    for owner, _, names in _texts(kb):
        for name in names:
            kind, target, _ = _split(name)
            if kind == "notice":
                assert target in kinds | EXPECTED_NEW_NOTICES, (owner, name)
    still_new = EXPECTED_NEW_NOTICES - kinds
    if not still_new:  # they all exist now: the list above can go
        assert EXPECTED_NEW_NOTICES <= kinds


def test_declared_menu_entries_are_in_the_menu(kb: KnowledgeBase) -> None:
    menu = build_menu(miniprogram_appid="wx", miniprogram_path="pages/index/index")
    entries = {b["name"] for b in menu["button"]}
    entries |= {s["name"] for b in menu["button"] for s in b.get("sub_button", ())}
    for owner, _, names in _texts(kb):
        for name in names:
            kind, target, _ = _split(name)
            if kind == "menu":
                assert target in entries, (owner, name)


def test_declared_states_are_application_states(kb: KnowledgeBase) -> None:
    states = set(STATES) | set(attempts.ATTEMPT_STATES) | EXPECTED_NEW_STATES
    labels = _state_labels()
    for owner, _, names in _texts(kb):
        for name in names:
            kind, target, label = _split(name)
            if kind != "state":
                continue
            assert target in states, (owner, name)
            if labels:  # the mini-program's words for the state
                assert labels.get(target) == label, (owner, name, labels.get(target))


def _app_dir() -> Path | None:
    """The mini-program's root (where app.json is), if the repository has it."""
    for candidate in (MINIPROGRAM, MINIPROGRAM / "app"):
        if (candidate / "app.json").is_file():
            return candidate
    return None


def _state_labels() -> dict[str, str]:
    """The mini-program's label of each application state (utils/format.js), if present."""
    app_dir = _app_dir()
    source = app_dir / "utils" / "format.js" if app_dir is not None else None
    if source is None or not source.is_file():
        return {}
    block = re.search(r"APPLICATION_STATES = \{(.*?)\n\}", source.read_text(encoding="utf-8"), re.S)
    return dict(re.findall(r"(\w+): \{ text: '([^']+)'", block.group(1))) if block else {}


def test_declared_pages_and_buttons_exist_in_the_mini_program(kb: KnowledgeBase) -> None:
    app_dir = _app_dir()
    if app_dir is None:
        pytest.skip(
            f"no mini-program app.json under {MINIPROGRAM} (it is being written in its own "
            "branch): declared pages and buttons are checked once it is merged"
        )
    pages = json.loads((app_dir / "app.json").read_text(encoding="utf-8"))["pages"]
    for owner, _, names in _texts(kb):
        for name in names:
            kind, target, label = _split(name)
            if kind not in ("page", "button"):
                continue
            found = [p for p in pages if p == target or p.startswith(target + "/")]
            page = target + "/index" if target + "/index" in pages else (found[0] if found else None)
            assert page is not None, f"{owner}: {name} is not a page of app.json"
            if kind == "page":
                config = app_dir / f"{page}.json"
                if config.is_file():
                    title = json.loads(config.read_text(encoding="utf-8")).get(
                        "navigationBarTitleText"
                    )
                    assert title in (None, label), (owner, name, title)
            else:
                markup = (app_dir / f"{page}.wxml").read_text(encoding="utf-8")
                assert label in markup, f"{owner}: no {label!r} on {page}"


def test_every_quoted_screen_is_declared(kb: KnowledgeBase) -> None:
    """A 「…」 in an answer is something the follower looks for on a screen: it must be a
    declared page, button, menu entry, state or notice (or a feature's name)."""
    for owner, text, names in _texts(kb):
        allowed = set(TERMS)
        for name in names:
            kind, target, label = _split(name)
            allowed.add(label or target)
            if kind == "notice" and target in notices_outbox.TITLES:
                allowed.add(notices_outbox.TITLES[target])
        for quoted in _QUOTED.findall(text):
            if "{" in quoted:  # a template field ({title})
                continue
            assert quoted in allowed, f"{owner} names 「{quoted}」 without declaring it"
        for name in names:
            kind, target, label = _split(name)
            shown = label or (notices_outbox.TITLES.get(target) if kind == "notice" else None)
            if kind in ("page", "button", "menu", "state") and shown:
                assert f"「{shown}」" in text, f"{owner} declares {name} but does not name it"


def test_no_promise_the_product_does_not_keep(kb: KnowledgeBase) -> None:
    for owner, text, _ in _texts(kb):
        for promise in BROKEN_PROMISES:
            assert promise not in text, (owner, promise)


def test_what_we_cannot_do_goes_to_12393_or_the_local_window(kb: KnowledgeBase) -> None:
    for intent_id in ("payment_password", "human_agent", "daijiao", "err_member_not_insured"):
        answer = kb.get(intent_id).answer
        assert "12393" in answer and "医保经办窗口" in answer, intent_id
    assert "没有在线人工客服" in kb.get("human_agent").answer
    assert "没有设置或修改医保支付密码的功能" in kb.get("payment_password").answer


def test_the_journey_the_answers_describe(kb: KnowledgeBase) -> None:
    """API.md v1.1 / SPEC.md, as the answers must state them."""
    how = kb.get("how_to_bind").answer
    assert "身份证正反面或户口本本人页,二选一" in how  # one of, not both
    assert "一并激活" in how and "代激活" in kb.get("how_to_activate").answer
    assert "改用户口本审核" in kb.get("face_check").answer  # the way without the face
    assert "重新提交" in kb.get("needs_action").answer and "保留" in kb.get("needs_action").answer
    assert "审核要求补充材料" in kb.get("err_materials_rejected").answer
    assert "谁绑定了我" in kb.get("member_told").answer
    assert "监护人" in kb.get("minor_child").answer
    assert "从绑定之日起" in kb.get("query_spending").answer


# ── the answers and the policy data agree ──

def test_cross_province_pilot_answer_matches_the_policy_data(kb: KnowledgeBase) -> None:
    from dataclasses import replace

    from server.domain.identity import make_resident_id, parse_id
    from server.domain.policy import AuthorizationContext, load_default

    engine = load_default()
    hebei, sichuan, hubei = "130100", "510100", "420100"
    member = parse_id(
        "resident_id", make_resident_id("510102", date(1960, 1, 1)), today=date(2025, 6, 1)
    )
    ctx = AuthorizationContext(
        today=date(2025, 6, 1), authorizer_id="1", authorizer_verified=True,
        authorizer_id_number=make_resident_id("130102", date(1990, 1, 1)),
        authorizer_region=hebei, authorizer_insurance_type="employee",
        authorizer_has_personal_account=True, authorizer_status="active", member_doc=member,
        member_region=sichuan, relationship="parent", registry_match="match",
        member_status="active", authorized_count=0, member_authorizer_ids=frozenset(),
        notice="current", quota_fen=10_000, stage="submit",
    )
    # the pilot: 河北 ↔ 四川 from the end of 2024, with a 共济额度
    pilot = engine.check_authorization(ctx)
    assert pilot.ok and pilot.cross_province and pilot.quota_required
    assert not engine.check_authorization(replace(ctx, today=date(2024, 10, 1))).ok
    # outside the pilot: nationwide only from 2026-01-09
    outside = engine.check_authorization(replace(ctx, authorizer_region=hubei))
    assert outside.codes == ("CROSS_PROVINCE_NOT_ALLOWED",)
    assert "2026年1月9日" in outside.blocking[0].fix
    assert engine.check_authorization(replace(ctx, authorizer_region=hubei, today=date(2026, 1, 9))).ok
    for intent_id in ("cross_province", "gongji_err_region"):
        answer = kb.get(intent_id).answer
        for fact in ("2024年底", "河北", "四川", "11个省份", "2026年1月9日"):
            assert fact in answer, (intent_id, fact)
