"""Knowledge base and intent matching (bot/nlu.py, bot/knowledge/intents.toml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.nlu import Intent, KnowledgeBase, normalize

EVAL_PATH = Path(__file__).with_name("eval_questions.tsv")
# Written before the off-topic groups were tuned and never tuned on (see its header).
HOLDOUT_PATH = Path(__file__).with_name("eval_holdout.tsv")
# The issue-11 journey and voice messages: written before the knowledge base changed,
# then tuned on like EVAL_PATH (see its header).
JOURNEY_PATH = Path(__file__).with_name("eval_journey.tsv")
# Written after that tuning, scored once, never tuned on (see its header).
HOLDOUT_JOURNEY_PATH = Path(__file__).with_name("eval_holdout_journey.tsv")
ALL_SETS = (EVAL_PATH, HOLDOUT_PATH, JOURNEY_PATH, HOLDOUT_JOURNEY_PATH)
# API.md "Binding failure codes (also shown by the bot)" and those issue 11 added
# (tests/bot/test_truth.py checks every code of the reasons catalogue).
FAILURE_CODES = (
    "INFO_MISMATCH", "MEMBER_NOT_ACTIVATED", "BINDER_NOT_VERIFIED", "SYSTEM_BUSY",
    "MEMBER_LIMIT_REACHED", "MONTHLY_BINDER_LIMIT", "RELATIONSHIP_NOT_ALLOWED",
    "MINOR_DOCUMENTS_MISSING", "MATERIALS_REJECTED", "ALREADY_BOUND", "INVALID_ID_NUMBER",
    "COMMITMENT_REQUIRED", "COMMITMENT_OUTDATED", "FACE_CHECK_FAILED", "MATERIALS_MISSING",
    "MEMBER_NOT_INSURED", "IDENTITY_IN_USE", "SELF_NOT_ALLOWED",
)
# Measured 0.941 (223/237) when this was written; 48 of the rows were written and scored
# before any tuning on them (45/48). With the off-topic groups: 0.983 (233/237; on-topic
# 204/208, off-topic 29/29 get the menu). Keep the floors a little below the measured
# figures.
MIN_ACCURACY = 0.96
MIN_OFFTOPIC_REJECTED = 0.93
# The held-out set (eval_holdout.tsv): on-topic 22/25 = 0.88, off-topic 43/48 = 0.896
# get the menu (before the off-topic groups: 23/25 and 30/48).
MIN_HOLDOUT_ON_TOPIC = 0.84
MIN_HOLDOUT_OFFTOPIC_REJECTED = 0.85
# After the issue-11 rewrite (16 more intents) and tuning on the main and journey sets:
# main 233/237 (0.983; 224/237 right after the rewrite); journey 86/90 (0.956; 75/90
# before tuning), its voice rows 20/22 (0.909); held-out (never tuned on) on-topic 21/25
# = 0.84, off-topic 41/48 = 0.854 (22/25 and 43/48 before the rewrite).
MIN_JOURNEY_ACCURACY = 0.93
MIN_VOICE_ACCURACY = 0.86
# eval_holdout_journey.tsv, scored once after all tuning: 42/55 = 0.764 (on-topic 34/45 =
# 0.756, off-topic 8/10 get the menu; its voice rows 14/16 = 0.875). Weakest: 家庭共济
# refusals read as the 亲情账户 ones that share their words (已授权 / 已绑定, 人数满了).
MIN_HOLDOUT_JOURNEY_ACCURACY = 0.72
MIN_HOLDOUT_JOURNEY_ON_TOPIC = 0.70
MIN_HOLDOUT_JOURNEY_OFFTOPIC_REJECTED = 0.70
MIN_HOLDOUT_JOURNEY_VOICE = 0.80


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load()


def load_eval(path: Path = EVAL_PATH, *, section: str | None = None) -> list[tuple[str, str]]:
    """(question, expected) rows; ``section``: only the rows under the comment line
    ``# --- <section>…`` (up to the next such line)."""
    rows = []
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# --- "):
            current = line[len("# --- "):]
            continue
        if not line.strip() or line.startswith("#"):
            continue
        if section is not None and not (current or "").startswith(section):
            continue
        question, expected = line.split("\t")
        rows.append((question, expected))
    return rows


# ── the knowledge base ──

def test_every_intent_is_complete(kb: KnowledgeBase) -> None:
    for intent in kb.intents():
        assert intent.title and intent.source, intent.id
        assert 8 <= len(intent.examples) <= 25, intent.id
        assert intent.answer, intent.id


def test_answers_fit_a_chat_bubble(kb: KnowledgeBase) -> None:
    for intent in kb.intents():
        assert len(intent.answer) <= 300, (intent.id, len(intent.answer))
        assert len(kb.render(intent)) <= 330, intent.id


def test_every_failure_code_maps_to_its_fix(kb: KnowledgeBase) -> None:
    for code in FAILURE_CODES:
        intent = kb.by_error_code(code)
        assert intent is not None, code
        assert code in intent.codes
    assert kb.by_error_code("NO_SUCH_CODE") is None


def test_a_code_is_explained_once_per_feature() -> None:
    def intent(id_: str, codes: tuple[str, ...], feature: str) -> Intent:
        return Intent(id_, id_, "a", False, codes[0], "t", ("亲情账户",), codes, feature)

    with pytest.raises(ValueError):
        KnowledgeBase([intent("a", ("X",), "binding"), intent("b", ("X",), "binding")])
    with pytest.raises(ValueError):
        KnowledgeBase([intent("a", ("X",), "everything")])
    kb = KnowledgeBase([intent("a", ("X", "Y"), "binding"), intent("b", ("X",), "mutual_aid")])
    assert kb.by_error_code("Y").id == "a"  # type: ignore[union-attr]
    assert kb.by_error_code("X", "mutual_aid").id == "b"  # type: ignore[union-attr]
    assert kb.by_error_code("Y", "mutual_aid") is None


def test_render_adds_the_caution_only_where_asked(kb: KnowledgeBase) -> None:
    cautious = kb.get("how_to_use")
    assert cautious.caution
    assert kb.render(cautious).endswith(kb.caution_text)
    assert "本内容不能代替面诊" in kb.caution_text
    plain = kb.get("apply_reason")
    assert not plain.caution
    assert kb.render(plain) == plain.answer


def test_spec_rules_the_answers_must_state(kb: KnowledgeBase) -> None:
    # 亲情账户 pays from the member's own insurance (SPEC.md; seeds 002/003 over 000).
    assert "家人(被绑定人)自己的医保" in kb.get("whose_money").answer
    assert "为了方便家人代办医保业务" in kb.get("apply_reason").answer
    assert "5名" in kb.get("how_many").answer and "2位" in kb.get("how_many").answer
    assert "7人" in kb.get("how_many").answer
    assert "3人" in kb.get("daijiao").answer
    assert "不能支付统筹" in kb.get("gongji_scope").answer
    assert "孙子" in kb.get("who_can_bind").answer


def test_topics_are_a_numbered_menu(kb: KnowledgeBase) -> None:
    topics = kb.topics()
    assert 8 <= len(topics) <= 20
    assert topics[0].id == "bind_fail_general"
    assert len({t.id for t in topics}) == len(topics)


# ── normalisation ──

@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("親情賬戶綁定", "亲情账户绑定"),
        ("醫保碼", "医保码"),
        ("ＡＢＣ１２３", "abc123"),
        ("亲情账户，绑定！？", "亲情账户绑定"),
        ("亲情帐户绑订", "亲情账户绑定"),
        ("亲情账户bind不上", "亲情账户绑定失败"),
        ("我妈", "父母"),
        ("老妈的娃", "父母的子女"),
        ("Unbind", "解绑"),
        ("show", "show"),  # "how" only as a whole word
    ],
)
def test_normalize(raw: str, normal: str) -> None:
    assert normalize(raw) == normal


def test_traditional_and_full_width_questions_match_like_simplified(kb: KnowledgeBase) -> None:
    simplified = kb.match("亲情账户怎么绑定")
    traditional = kb.match("親情賬戶怎麼綁定")
    full_width = kb.match("亲情账户怎么绑定？！")
    assert simplified and traditional and full_width
    assert simplified.intent.id == traditional.intent.id == full_width.intent.id == "how_to_bind"


# ── matching ──

@pytest.mark.parametrize(
    "question", ["今天天气怎么样", "我想买股票", "", "？？？", "😀", "asdfgh", "公积金怎么提取"]
)
def test_off_topic_gets_no_answer(kb: KnowledgeBase, question: str) -> None:
    assert kb.match(question) is None


def test_match_names_a_runner_up(kb: KnowledgeBase) -> None:
    m = kb.match("我给我妈绑定亲情账户一直失败怎么办")
    assert m is not None and m.intent.id == "bind_fail_general"
    assert m.runner_up is not None and m.runner_up != m.intent.id
    assert 0 < m.score <= 1


@pytest.mark.parametrize(
    ("path", "min_rows", "min_none"),
    [(EVAL_PATH, 180, 20), (HOLDOUT_PATH, 70, 45), (JOURNEY_PATH, 85, 4),
     (HOLDOUT_JOURNEY_PATH, 50, 8)],
)
def test_eval_set_is_fresh_and_valid(
    kb: KnowledgeBase, path: Path, min_rows: int, min_none: int
) -> None:
    rows = load_eval(path)
    assert len(rows) >= min_rows
    assert sum(1 for _, e in rows if e == "none") >= min_none
    ids = {i.id for i in kb.intents()}
    # Not even equal after normalisation: the set measures paraphrase, not recall. The
    # off-topic groups' examples count too.
    examples = {normalize(e) for i in kb.intents() for e in i.examples}
    examples |= {normalize(e) for group in kb.offtopic().values() for e in group}
    for question, expected in rows:
        assert expected == "none" or expected in ids, expected
        assert normalize(question) not in examples, f"eval question copies an example: {question}"
    questions = [q for q, _ in rows]
    assert len(set(questions)) == len(questions), "duplicate eval question"


def test_the_eval_sets_do_not_overlap() -> None:
    sets = [{normalize(q) for q, _ in load_eval(p)} for p in ALL_SETS]
    for i, a in enumerate(sets):
        for b in sets[i + 1:]:
            assert not a & b, a & b


def score_eval(
    kb: KnowledgeBase, path: Path, *, section: str | None = None
) -> tuple[float, float, float]:
    """(overall, on-topic, off-topic rejected) top-1 accuracy over an eval file."""
    rows = load_eval(path, section=section)
    wrong = []
    on_right = off_right = 0
    for question, expected in rows:
        m = kb.match(question)
        got = m.intent.id if m else "none"
        if got != expected:
            wrong.append(f"{question} → {got} (expected {expected})")
        elif expected == "none":
            off_right += 1
        else:
            on_right += 1
    n_off = sum(1 for _, e in rows if e == "none")
    n_on = len(rows) - n_off
    print(
        f"\n{path.name}{' (' + section + ')' if section else ''}: top-1 {(on_right + off_right) / len(rows):.3f}"
        f" ({on_right + off_right}/{len(rows)}); on-topic {on_right}/{n_on},"
        f" off-topic rejected {off_right}/{n_off}"
    )
    for line in wrong:
        print("  miss:", line)
    return (on_right + off_right) / len(rows), on_right / max(n_on, 1), off_right / max(n_off, 1)


def test_eval_accuracy(kb: KnowledgeBase) -> None:
    accuracy, _, rejected = score_eval(kb, EVAL_PATH)
    assert accuracy >= MIN_ACCURACY
    assert rejected >= MIN_OFFTOPIC_REJECTED


def test_journey_and_voice_accuracy(kb: KnowledgeBase) -> None:
    accuracy, _, _ = score_eval(kb, JOURNEY_PATH)
    assert accuracy >= MIN_JOURNEY_ACCURACY
    voice, _, _ = score_eval(kb, JOURNEY_PATH, section="voice")
    assert len(load_eval(JOURNEY_PATH, section="voice")) >= 20
    assert voice >= MIN_VOICE_ACCURACY


def test_holdout_journey_accuracy(kb: KnowledgeBase) -> None:
    accuracy, on_topic, rejected = score_eval(kb, HOLDOUT_JOURNEY_PATH)
    assert accuracy >= MIN_HOLDOUT_JOURNEY_ACCURACY
    assert on_topic >= MIN_HOLDOUT_JOURNEY_ON_TOPIC
    assert rejected >= MIN_HOLDOUT_JOURNEY_OFFTOPIC_REJECTED
    voice, _, _ = score_eval(kb, HOLDOUT_JOURNEY_PATH, section="voice")
    assert voice >= MIN_HOLDOUT_JOURNEY_VOICE


def test_holdout_accuracy(kb: KnowledgeBase) -> None:
    _, on_topic, rejected = score_eval(kb, HOLDOUT_PATH)
    assert on_topic >= MIN_HOLDOUT_ON_TOPIC
    assert rejected >= MIN_HOLDOUT_OFFTOPIC_REJECTED


def _tiny_kb() -> KnowledgeBase:
    def intent(id_: str, *examples: str) -> Intent:
        return Intent(id_, id_, "answer", False, None, "test", examples)

    return KnowledgeBase(
        [
            intent("reimburse", "亲情账户能报销吗", "亲情账户住院能报销吗"),
            intent("unbind", "怎么解绑亲情账户", "亲情账户怎么解除绑定"),
        ],
        offtopic={"employer": ("单位欠缴医保能报销吗", "公司没交医保住院能报销吗")},
    )


def test_a_question_closest_to_an_offtopic_group_gets_no_answer() -> None:
    kb = _tiny_kb()
    assert kb.scores("单位没交医保能报销吗")[0][1] == "employer"
    assert kb.match("单位没交医保能报销吗") is None
    m = kb.match("亲情账户能报销吗")
    assert m is not None and m.intent.id == "reimburse"
    assert [i.id for i in kb.intents()] == ["reimburse", "unbind"]
    assert set(kb.offtopic()) == {"employer"}


def test_an_offtopic_group_close_behind_the_winner_vetoes_it() -> None:
    kb = _tiny_kb()
    question = "住院能报销吗"
    ranked = kb.scores(question)
    assert ranked[0][1] == "reimburse" and ranked[1][1] == "employer"
    assert ranked[0][0] - ranked[1][0] < kb.OFFTOPIC_MARGIN
    assert kb.match(question) is None


def test_an_offtopic_group_may_not_shadow_an_intent() -> None:
    with pytest.raises(ValueError):
        KnowledgeBase(
            [Intent("a", "a", "x", False, None, "t", ("亲情账户",))], offtopic={"a": ("天气",)}
        )


def test_match_is_fast(kb: KnowledgeBase) -> None:
    """Matching walks the inverted index, never every example: the work per question is the
    postings its features touch. Counted, not timed (a wall-clock bound fails on a busy
    machine, issue 10): ~1,100 on average with 57 intents, ~0.1 ms on an idle VM."""
    from bot.nlu import features

    questions = [q for p in ALL_SETS for q, _ in load_eval(p)]
    work = [
        sum(
            len(kb._postings_doc.get(f, ())) + len(kb._postings_centroid.get(f, ()))
            for f in kb._weigh(features(q))
        )
        for q in questions
    ]
    documents = len(kb._doc_intent)
    assert sum(work) / len(work) < 2_000
    # a question touches a small share of what a scan over every example's features would
    scan = sum(len(p) for p in kb._postings_doc.values())
    assert max(work) < scan / 2, (max(work), scan, documents)


def test_every_intent_is_exercised_by_the_eval_set(kb: KnowledgeBase) -> None:
    covered = {e for _, e in load_eval()} | {e for _, e in load_eval(JOURNEY_PATH)}
    missing = [i.id for i in kb.intents() if i.id not in covered]
    assert not missing, missing


def test_answers_name_no_placeholder(kb: KnowledgeBase) -> None:
    for intent in kb.intents():
        assert not re.search(r"TODO|XXX|\{\w+\}", intent.answer), intent.id
