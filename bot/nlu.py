"""Intent matching for the official-account bot.

A question is normalised (full-width → half-width, lower case, traditional → simplified,
spoken fillers dropped — a voice message's Recognition text is matched like typing —,
typos and colloquial / English wording → one canonical term, punctuation dropped), cut
into character uni- and bi-grams (an ASCII word counts as one character), weighted by
TF-IDF, and compared with every intent by cosine similarity. An intent's score blends
its best single example with its centroid (all examples + keywords): the best example
rewards a close paraphrase, the centroid rewards wording spread over several examples.
Below a confidence threshold — or when two intents are too close to call and neither
is clearly above it — ``match`` answers None and the bot shows the topic menu.

Off-topic questions that share the domain's words ("单位一个月没交医保能报销吗" is about an
employer's unpaid contributions, not about 亲情账户) are handled by data, not rules: the
``[[offtopic]]`` groups of intents.toml (单位欠缴, 社保卡, 生育, 异地就医备案, general
policy, 养老/公积金/个税, chit-chat, health advice) are indexed like intents. A question
closest to one, or whose best intent leads the best off-topic group by less than
``OFFTOPIC_MARGIN``, gets the menu; and each group counts ``OFFTOPIC_DF`` times in the
document frequency, so words those questions use ("医保", "报销", "缴费") weigh less than
words only our intents use. Measured on the eval sets: main set 93.7 → 98.3 % overall
(off-topic rejected 25 → 29 of 29), held-out set off-topic rejected 30 → 43 of 48.

Everything is precomputed by ``KnowledgeBase.load``; ``match`` only walks an inverted
index (~0.1 ms for a chat-sized question; loading takes ~20 ms). No word segmenter:
adding jieba word features was measured on the eval set — on-topic top-1 96.6 → 97.1 %
(one question), overall 93.7 → 92.4 % after re-tuning the threshold, 0.6 s dictionary
load, twice the time per match — so character n-grams alone it is.
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from bot.knowledge import INTENTS_PATH

__all__ = ["FEATURES", "Intent", "Match", "KnowledgeBase", "Reply", "normalize", "features"]

DEFAULT_CAUTION = "提示:本内容不能代替面诊,具体以当地医保部门规定为准。"

# Traditional → simplified, for the characters that occur in this domain's questions
# (a full OpenCC table is not worth a dependency for a few hundred characters).
_T2S_PAIRS = (
    "親亲賬账帳账戶户綁绑醫医療疗險险碼码號号們们麼么爲为為为這这個个會会說说與与開开"
    "關关係系務务辦办來来時时還还沒没嗎吗對对點点員员費费報报銷销藥药買买賣卖錢钱給给"
    "媽妈爺爷孫孙兒儿歲岁證证書书簽签過过認认驗验實实結结濟济權权處处級级網网絡络統统"
    "籌筹審审門门診诊態态異异換换條条聯联繫系話话電电線线綫线寶宝嬰婴齡龄頭头臉脸識识"
    "別别錯错誤误敗败啓启啟启設设鎖锁問问題题歷历記记錄录詢询餘余額额撥拨幫帮僅仅從从"
    "邊边讓让請请後后裡里裏里纔才國国區区內内護护灣湾臺台歸归鄉乡婦妇產产種种樣样發发"
    "現现優优順顺夠够筆笔單单據据轉转訴诉謝谢絕绝滿满經经復复複复間间無无長长廢废棄弃"
    "傳传圖图張张紅红擊击頁页掃扫續续繳缴靈灵華华協协議议屬属兩两並并場场氣气爲为戲戏"
    "學学習习嗎吗啥啥麽么噹当當当囉啰隻只钟钟鐘钟麼么纍累讀读寫写填填擇择選选項项操操"
    "難难幾几歡欢聽听見见視视覺觉誰谁麥麦萬万億亿塊块貝贝貸贷資资產产負负擔担補补貼贴"
    "購购藥药師师醫医診诊斷断檢检顯显示示態态錯错鬧闹窩窝奶奶爺爷姥姥孫孙兄兄弟弟姐姐"
    "妹妹岳岳婆婆閨闺孩孩娃娃養养撫抚監监護护懂懂謝谢囑嘱處处陳陈劉刘張张楊杨趙赵吳吴"
    "黃黄鄭郑馮冯許许韓韩嗎吗罷罢罵骂厲厉嚴严廣广東东貴贵陝陕遼辽雲云蘇苏漢汉瀋沈鄰邻"
    "車车馬马魚鱼鳥鸟龍龙門门頁页風风飛飞齊齐黨党隊队層层麵面鬆松幹干髮发準准臟脏該该"
    "設设計计劃划認认証证訂订綁绑締缔約约億亿雙双團团圓圆園园運运遠远適适選选週周進进"
)
_T2S = {
    a: b for a, b in zip(_T2S_PAIRS[::2], _T2S_PAIRS[1::2], strict=True) if a != b
}

# Canonical terms. Longer variants win (one regex, longest first), so "unbind" is not
# read as "un" + "bind" and "绑定不了" is not read as "绑定" + "不了".
_SYNONYMS: dict[str, tuple[str, ...]] = {
    # feature names, typos and the words people use for them
    "亲情账户": ("亲情帐户", "亲情帐号", "亲情账号", "亲情号", "亲情卡", "亲情户", "亲请账户",
                 "亲情帐", "亲情账", "亲属账户", "家庭账户", "family account"),
    "亲情账户绑定": ("亲情绑定",),
    "共济": ("家庭共济", "个账共济", "个人账户共济", "账户共济", "医保共济", "共济账户",
             "家庭共享", "mutual aid", "共挤"),
    "医保码": ("医保电子凭证", "医保电子卡", "电子医保卡", "电子医保", "医保二维码", "电子凭证",
               "医保code", "医保qr", "医保qrcode", "qr code", "qrcode", "qr码", "二维码"),
    "账户": ("帐户", "账号", "帐号", "account"),
    "身份证号": ("身份证号码", "证件号码", "证件号", "身份证号", "id number", "id号"),
    # actions
    "绑定": ("绑订", "帮定", "邦定", "梆定", "綁定", "bind", "binding", "link", "绑"),
    "解绑": ("解除绑定", "取消绑定", "解除亲情", "unbind", "unlink", "解邦"),
    "绑定失败": ("绑不上", "绑不了", "绑定不了", "绑定不上", "绑不成功", "绑定不成功",
                 "绑不进去", "绑定没成功", "没绑成功", "没绑上", "bind不上", "bind失败",
                 "bind不了", "绑定fail", "绑定failed"),
    "失败": ("不成功", "没成功", "fail", "failed", "failure", "error", "报错", "出错"),
    "激活": ("activate", "activation", "激括"),
    "密码": ("password", "pwd", "pin"),
    "报销": ("报帐", "报账", "reimburse", "reimbursement"),
    "代缴": ("代交", "帮交", "代缴费"),
    # people
    "父母": ("老妈", "我妈", "妈妈", "母亲", "老母亲", "老爸", "我爸", "爸爸", "父亲", "爸妈",
             "父母亲", "爹妈", "二老", "老人家", "老人", "老娘", "老爹", "妈", "爸",
             "mom", "mum", "mother", "dad", "father", "parents", "parent"),
    "子女": ("孩子", "小孩", "小朋友", "儿子", "女儿", "闺女", "儿女", "娃", "kid", "kids",
             "child", "children", "son", "daughter", "baby"),
    "配偶": ("老婆", "老公", "媳妇", "爱人", "丈夫", "妻子", "老伴儿", "老伴", "wife", "husband",
             "spouse"),
    # colloquial question words
    "怎么": ("怎么样", "怎样", "咋样", "咋", "如何", "怎么弄", "怎么搞", "怎么办", "咋办",
             "how to", "how"),
    "为什么": ("为啥", "咋回事", "怎么回事", "什么原因", "why"),
    "什么": ("啥", "what"),
    "可以": ("能不能", "可不可以", "行不行", "能否", "能吗", "行吗", "可以吗", "是否可以",
             "can i", "can"),
    "谢谢": ("多谢", "感谢", "thanks", "thank you", "thx", "3q"),
    "钱": ("money", "余额钱"),
    "医院": ("hospital",),
    "药店": ("药房", "pharmacy"),
    "支付": ("付款", "付钱", "pay", "payment"),
    "人工": ("真人", "human", "agent"),
    "你好": ("您好", "哈喽", "嗨", "hello", "hi", "在吗", "在么", "在不在", "有人吗"),
    "被绑定人": ("被绑的人", "被绑人", "被绑定的人", "被绑定的家人", "对方"),
    "本人": ("我本人", "我自己", "自己"),
    "刷脸": ("人脸识别", "人脸认证", "人脸核身", "人脸核验", "面部识别", "人脸", "face"),
    "上限": ("满了", "已满", "超限", "超过上限", "已达上限", "limit"),
    "本月": ("这个月", "当月", "本自然月"),
    "老年机": ("老人机", "老年手机", "非智能手机"),
    "删除": ("删掉", "移除", "去掉", "delete", "remove"),
    "信息": ("资料", "info", "information"),
    "不一致": ("不匹配", "对不上", "不相符", "不符", "mismatch"),
    "户口本": ("户口簿", "户口页"),
    "出生证明": ("出生医学证明", "出生证"),
}

# A canonical term maps to itself, so that "绑定" is not read as "绑" + "定" — except a
# composite output, which would otherwise swallow what follows it ("亲情账户绑定|不了").
_COMPOSITE = {"亲情账户绑定"}
_SYNONYM_TO_CANON: dict[str, str] = {c: c for c in _SYNONYMS if c not in _COMPOSITE}
for _canon, _variants in _SYNONYMS.items():
    for _v in _variants:
        _SYNONYM_TO_CANON[_v] = _canon


def _pattern(term: str) -> str:
    """An ASCII word only matches whole ("how" not inside "show", "can" not in "cancel")."""
    p = re.escape(term)
    if term[0].isascii() and term[0].isalnum():
        p = r"(?<![a-z0-9])" + p
    if term[-1].isascii() and term[-1].isalnum():
        p += r"(?![a-z0-9])"
    return p


_SYNONYM_RE = re.compile(
    "|".join(_pattern(v) for v in sorted(_SYNONYM_TO_CANON, key=len, reverse=True))
)

# What speech (a voice message's Recognition text) and chatty typing wrap a question in:
# dropped before matching, so "那个,我想问一下,就是亲情账户要怎么绑定啊" reads like
# "亲情账户要怎么绑定". Only words that carry no topic.
_FILLERS = ("我想问一下", "想问一下", "请问一下", "我想问问", "问一下", "就是说", "那个",
            "就是", "嗯", "呃", "啊", "哦", "喂")
_FILLER_RE = re.compile("|".join(sorted(_FILLERS, key=len, reverse=True)))

# Kept: CJK ideographs, ASCII letters and digits. Everything else (punctuation, emoji,
# spaces) separates units.
_UNIT_RE = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]")
_DROP_RE = re.compile(r"[^a-z0-9\u4e00-\u9fff]+")


def normalize(text: str) -> str:
    """Canonical form of a question: NFKC (full-width → half-width), lower case,
    traditional → simplified, synonyms → one term, punctuation and spaces dropped
    (one space kept between ASCII words so "id number" stays two words)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(_T2S.get(ch, ch) for ch in text)
    text = _FILLER_RE.sub(" ", text)
    text = _DROP_RE.sub(" ", text)
    text = _SYNONYM_RE.sub(lambda m: _SYNONYM_TO_CANON[m.group(0)], text)
    # Spaces only matter between two ASCII words.
    return re.sub(r"(?<![a-z0-9]) | (?![a-z0-9])", "", text).strip()


def features(text: str) -> Counter[str]:
    """Unigram and bigram counts over units of the normalised text (a CJK character or an
    ASCII word is one unit)."""
    units = _UNIT_RE.findall(normalize(text))
    feats: Counter[str] = Counter(units)
    feats.update(a + b for a, b in zip(units, units[1:]))
    return feats


#: What a failure code belongs to: a 亲情账户 binding, a 家庭共济 request, or either.
FEATURES = ("binding", "mutual_aid", "common")


@dataclass(frozen=True)
class Intent:
    id: str
    title: str
    answer: str
    caution: bool
    error_code: str | None  # the first of ``codes`` (None: explains no failure)
    source: str
    examples: tuple[str, ...]
    #: every failure code this intent explains (API.md codes, server/domain/reasons.py)
    codes: tuple[str, ...] = ()
    #: whose failures: "binding", "mutual_aid" or "common" (both)
    feature: str = "binding"
    #: what the answer names: "page:pages/…", "notice:<kind>", "menu:<entry>", "state:<state>"
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """A text the bot says outside intents (``[reply.<id>]`` in intents.toml), with
    ``{fields}`` where it is a template."""

    id: str
    text: str
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    intent: Intent
    score: float
    runner_up: str | None


def _unit(vec: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in vec.values()))
    return {f: w / norm for f, w in vec.items()} if norm else {}


class KnowledgeBase:
    """Intents from ``intents.toml`` plus a precomputed TF-IDF index over their examples."""

    #: Weight of the best single example against the intent centroid in an intent's score.
    #: Tuned on tests/bot/eval_questions.tsv (0.5–0.7 are within one question).
    EXAMPLE_WEIGHT = 0.6
    #: Below this score there is no answer (the bot shows the topic menu). Off-topic
    #: questions that share domain words ("护照", "报销") score higher; the off-topic
    #: groups catch those.
    THRESHOLD = 0.14
    #: Between THRESHOLD and SURE, the winner must lead the runner-up by MARGIN.
    SURE = 0.30
    MARGIN = 0.02
    #: An off-topic group counts this many times in a feature's document frequency.
    #: Tuned on eval_questions.tsv with OFFTOPIC_MARGIN (2–3 within one question; 1
    #: leaves "医保"/"报销" strong enough to win "单位没交医保能报销吗").
    OFFTOPIC_DF = 2.0
    #: The winner must lead the best off-topic group by this much, however sure it is
    #: (0.04–0.10 score the same on eval_questions.tsv).
    OFFTOPIC_MARGIN = 0.08

    def __init__(
        self,
        intents: list[Intent],
        *,
        keywords: dict[str, tuple[str, ...]] | None = None,
        menu: list[str] | None = None,
        caution_text: str = DEFAULT_CAUTION,
        offtopic: dict[str, tuple[str, ...]] | None = None,
        replies: dict[str, Reply] | None = None,
    ) -> None:
        if not intents:
            raise ValueError("a knowledge base needs at least one intent")
        self._intents = {i.id: i for i in intents}
        if len(self._intents) != len(intents):
            raise ValueError("duplicate intent id")
        offtopic = offtopic or {}
        if set(offtopic) & set(self._intents):
            raise ValueError("an off-topic group has an intent's id")
        self._order = [i.id for i in intents] + list(offtopic)
        self._offtopic = frozenset(offtopic)
        self._offtopic_examples = dict(offtopic)
        # (feature, code) → intent; one intent per pair
        self._by_code: dict[tuple[str, str], Intent] = {}
        for i in intents:
            if i.feature not in FEATURES:
                raise ValueError(f"intent {i.id}: unknown feature {i.feature!r}")
            for code in i.codes or ((i.error_code,) if i.error_code else ()):
                if (i.feature, code) in self._by_code:
                    raise ValueError(f"{code} ({i.feature}) is explained by two intents")
                self._by_code[(i.feature, code)] = i
        self.replies = dict(replies or {})
        self._menu = [self._intents[i] for i in (menu or [])]
        self.caution_text = caution_text
        keywords = keywords or {}

        # Documents: every example (for the best-example score); an intent's centroid
        # also takes its keywords. Off-topic groups are indexed exactly like intents.
        docs: list[tuple[int, Counter[str]]] = []
        intent_feats: list[list[Counter[str]]] = []
        groups = [(i.id, i.examples) for i in intents] + list(offtopic.items())
        for idx, (gid, examples) in enumerate(groups):
            ex = [features(e) for e in examples]
            docs.extend((idx, f) for f in ex)
            intent_feats.append(ex + [features(k) for k in keywords.get(gid, ())])

        # IDF over intents, not examples: a feature is informative when few intents use it.
        # The off-topic groups count too, so a word shared with questions we do not
        # answer ("医保", "报销", "社保") weighs less than one only our topics use.
        n = len(intents) + self.OFFTOPIC_DF * len(offtopic)
        df: dict[str, float] = {}
        for idx, feats_list in enumerate(intent_feats):
            w = self.OFFTOPIC_DF if idx >= len(intents) else 1.0
            for f in {f for feats in feats_list for f in feats}:
                df[f] = df.get(f, 0.0) + w
        self._idf = {f: math.log((n + 1) / (d + 0.5)) for f, d in df.items()}
        # A feature no intent knows still counts in the question's norm (it is what makes
        # "今天天气怎么样" dissimilar to everything), at the weight of the rarest known one.
        self._unknown_idf = math.log((n + 1) / 0.5)

        self._doc_intent = [idx for idx, _ in docs]
        self._postings_doc: dict[str, list[tuple[int, float]]] = {}
        for d, (_, feats) in enumerate(docs):
            for f, w in self._weigh(feats).items():
                self._postings_doc.setdefault(f, []).append((d, w))
        self._postings_centroid: dict[str, list[tuple[int, float]]] = {}
        for idx, feats_list in enumerate(intent_feats):
            centroid: defaultdict[str, float] = defaultdict(float)
            for feats in feats_list:
                for f, w in self._weigh(feats).items():
                    centroid[f] += w
            for f, w in _unit(centroid).items():
                self._postings_centroid.setdefault(f, []).append((idx, w))

    def _weigh(self, feats: Counter[str]) -> dict[str, float]:
        """Unit-length TF-IDF vector (sub-linear TF)."""
        return _unit(
            {
                f: (1.0 + math.log(c)) * self._idf.get(f, self._unknown_idf)
                for f, c in feats.items()
            }
        )

    # ── loading ──

    @classmethod
    def load(cls, path: str | Path | None = None) -> KnowledgeBase:
        """Read the knowledge base (default: ``bot/knowledge/intents.toml``)."""
        with open(path or INTENTS_PATH, "rb") as fh:
            data = tomllib.load(fh)
        intents: list[Intent] = []
        keywords: dict[str, tuple[str, ...]] = {}
        menu: list[tuple[int, str]] = []
        offtopic = {g["id"]: tuple(g["examples"]) for g in data.get("offtopic", ())}
        for raw in data["intent"]:
            codes = tuple(raw.get("error_codes", ()))
            intent = Intent(
                id=raw["id"],
                title=raw["title"],
                answer=raw["answer"].strip(),
                caution=bool(raw.get("caution", False)),
                error_code=codes[0] if codes else None,
                source=raw["source"],
                examples=tuple(raw["examples"]),
                codes=codes,
                feature=str(raw.get("feature", "binding")),
                names=tuple(raw.get("names", ())),
            )
            intents.append(intent)
            keywords[intent.id] = tuple(raw.get("keywords", ()))
            if "menu" in raw:
                menu.append((int(raw["menu"]), intent.id))
        return cls(
            intents,
            keywords=keywords,
            menu=[i for _, i in sorted(menu)],
            caution_text=data.get("caution_text", DEFAULT_CAUTION),
            offtopic=offtopic,
            replies={
                rid: Reply(rid, str(r["text"]).strip(), tuple(r.get("names", ())))
                for rid, r in data.get("reply", {}).items()
            },
        )

    # ── queries ──

    def scores(self, text: str) -> list[tuple[float, str]]:
        """Every intent with a non-zero score, best first (for diagnostics and tests)."""
        q = self._weigh(features(text))
        if not q:
            return []
        best_doc: dict[int, float] = {}
        doc_dot: dict[int, float] = {}
        centroid_dot: dict[int, float] = {}
        for f, qw in q.items():
            for d, w in self._postings_doc.get(f, ()):
                doc_dot[d] = doc_dot.get(d, 0.0) + qw * w
            for i, w in self._postings_centroid.get(f, ()):
                centroid_dot[i] = centroid_dot.get(i, 0.0) + qw * w
        for d, s in doc_dot.items():
            i = self._doc_intent[d]
            if s > best_doc.get(i, 0.0):
                best_doc[i] = s
        a = self.EXAMPLE_WEIGHT
        combined = [
            (a * best_doc.get(i, 0.0) + (1 - a) * centroid_dot.get(i, 0.0), self._order[i])
            for i in set(best_doc) | set(centroid_dot)
        ]
        combined.sort(reverse=True)
        return combined

    def match(self, text: str) -> Match | None:
        """The intent the question is about, or None when not confident enough."""
        ranked = self.scores(text)
        if not ranked:
            return None
        best, best_id = ranked[0]
        second, runner_up = ranked[1] if len(ranked) > 1 else (0.0, None)
        if best < self.THRESHOLD or best_id in self._offtopic:
            return None
        if best < self.SURE and best - second < self.MARGIN:
            return None
        # An off-topic group close behind: the overlap is the domain's shared words.
        off = next((s for s, i in ranked[1:] if i in self._offtopic), 0.0)
        if best - off < self.OFFTOPIC_MARGIN:
            return None
        return Match(self._intents[best_id], round(best, 4), runner_up)

    def by_error_code(self, code: str, feature: str = "binding") -> Intent | None:
        """The intent explaining a failure code (API.md, server/domain/reasons.py) of a
        binding (default) or a 家庭共济 request; an intent for both ("common") otherwise."""
        return self._by_code.get((feature, code)) or self._by_code.get(("common", code))

    def get(self, intent_id: str) -> Intent:
        return self._intents[intent_id]

    def intents(self) -> list[Intent]:
        return [self._intents[i] for i in self._order if i not in self._offtopic]

    def offtopic(self) -> dict[str, tuple[str, ...]]:
        """The off-topic groups' examples by group id (questions that get the menu)."""
        return dict(self._offtopic_examples)

    def topics(self) -> list[Intent]:
        """The fallback menu, in its order (number them 1… when showing)."""
        return list(self._menu)

    def render(self, intent: Intent) -> str:
        """The chat answer: the intent's answer, plus the caution line where it has one."""
        if intent.caution:
            return f"{intent.answer}\n{self.caution_text}"
        return intent.answer
