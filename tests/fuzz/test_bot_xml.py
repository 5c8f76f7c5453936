"""The bot's XML entry fuzzed (issue #15, "The contract fuzzed").

``/wechat/official`` is the one place that parses XML from the Internet. Hypothesis feeds
it bytes, text, XML-shaped documents and mangled real pushes, in plain and safe
(encrypted) mode, correctly signed — the worst case: signature checks pass, only the
body is hostile. Pass rule:

* never a 5xx, never an exception out of ``Codec.open`` other than ``Refused``;
* no reply to garbage: whatever the codec refuses is answered with a 4xx and an empty
  body; a reply (200 with XML) only ever answers a push the codec accepted;
* XML bombs — billion laughs, external entities (XXE: a local file, a URL), an external
  DTD, parameter entities — and any DTD at all are refused with 400 and no reply, each
  in well under 0.2 s (expat's own amplification limit let a 700-byte billion laughs
  burn ~1 s of CPU first); a follower's text that merely mentions ``<!DOCTYPE`` is
  still answered.

Bounded and reproducible: ``derandomize=True``, no example database.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from wechatpy import parse_message

from bot.codec import Codec, Refused
from fakes.wechat.simulator import WeChatSimulator, text_xml
from server import keys
from server.settings import Settings

PATH = "/wechat/official"
SETTINGS = hsettings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ---- strategies -------------------------------------------------------------------------

FIELDS = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "Event",
          "EventKey", "Recognition", "MediaId", "Encrypt", "xml", "a"]  # fmt: skip
MSG_TYPES = ["text", "event", "voice", "image", "device_text", "", "TEXT", "unknown"]
_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


def _value() -> st.SearchStrategy[str]:
    return st.one_of(
        _text.map(lambda t: "<![CDATA[" + t.replace("]]>", "") + "]]>"),
        _text.map(lambda t: t.replace("<", "&lt;").replace("&", "&amp;")),
        st.sampled_from(MSG_TYPES),
        st.integers(-(2**70), 2**70).map(str),
        st.just("<a><b>1</b></a>"),
        st.just(""),
    )


@st.composite
def xmlish(draw: Any) -> str:
    """Documents shaped like pushes: some fields, odd values, sometimes nested or cut."""
    fields = draw(st.lists(st.tuples(st.sampled_from(FIELDS), _value()), max_size=8))
    if draw(st.booleans()):
        fields.append(("MsgType", draw(st.sampled_from(MSG_TYPES))))
    if draw(st.booleans()):
        fields.append(("FromUserName", "<![CDATA[oa-fuzz]]>"))
    root = draw(st.sampled_from(["xml", "xml", "XML", "root"]))
    doc = f"<{root}>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields) + f"</{root}>"
    cut = draw(st.integers(0, len(doc)))
    return doc if draw(st.booleans()) else doc[:cut]


@st.composite
def mangled_push(draw: Any) -> str:
    """A real text push with bytes inserted, deleted or replaced."""
    doc = text_xml(draw(_text), openid="oa-fuzz")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(doc)))
        doc = doc[:at] + draw(st.sampled_from(["", "<", ">", "&", "]]>", "<!--", "\x00", "é"])) + (
            doc[at + draw(st.integers(0, 3)) :]
        )
    return doc


BODIES = st.one_of(
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "replace")),
    _text,
    xmlish(),
    mangled_push(),
)

# ---- the codec alone: Refused or a message, nothing else ----------------------------------


def _codec(settings: Settings) -> tuple[Codec, WeChatSimulator]:
    w = settings.wechat
    codec = Codec(token=w.oa_token, appid=w.oa_appid, encoding_aes_key=w.oa_encoding_aes_key)
    sim = WeChatSimulator(token=w.oa_token, appid=w.oa_appid, encoding_aes_key=w.oa_encoding_aes_key)
    return codec, sim


@given(body=BODIES, safe=st.booleans())
@hsettings(SETTINGS, max_examples=400)
def test_codec_opens_or_refuses_never_raises(settings: Settings, body: str, safe: bool) -> None:
    codec, sim = _codec(settings)
    push = sim.push(body, "safe" if safe else "plain")
    try:
        inbound = codec.open(push.query, push.body)
    except Refused as refused:
        assert refused.status in (400, 403)
        return
    assert inbound.message.source  # accepted: a message from someone


# ---- over HTTP: no 5xx, no reply to garbage ------------------------------------------------


def _sim(settings: Settings) -> WeChatSimulator:
    return _codec(settings)[1]


@given(body=BODIES, safe=st.booleans())
@SETTINGS
async def test_webhook_never_5xx_and_never_answers_garbage(
    client: TestClient, settings: Settings, body: str, safe: bool
) -> None:
    codec = client.server.app[keys.bot_key].codec  # type: ignore[union-attr]
    push = _sim(settings).push(body, "safe" if safe else "plain")
    try:
        codec.open(push.query, push.body)
        garbage = False
    except Refused:
        garbage = True
    resp = await client.post(PATH, params=push.query, data=push.body)
    text = await resp.text()
    assert resp.status < 500, (resp.status, text)
    if garbage:
        assert 400 <= resp.status < 500 and text == "", (resp.status, text)
    else:
        assert resp.status == 200, (resp.status, text)


# ---- XML bombs ------------------------------------------------------------------------------

_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
    + "]><xml><ToUserName>gh</ToUserName><FromUserName>oa-bomb</FromUserName>"
    "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&lol9;</Content>"
    "<MsgId>1</MsgId></xml>"
)
_PUSH = (
    "<xml><ToUserName>gh</ToUserName><FromUserName>oa-bomb</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>{content}</Content><MsgId>2</MsgId></xml>"
)
BOMBS = {
    "billion laughs": _LAUGHS,
    "quadratic blowup": '<!DOCTYPE xml [<!ENTITY a "' + "x" * 20_000 + '">]>'
    + _PUSH.format(content="&a;" * 2_000),
    "external entity (local file)": '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    + _PUSH.format(content="&xxe;"),
    "external entity (URL)": '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/x">]>'
    + _PUSH.format(content="&xxe;"),
    "external DTD": '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd">' + _PUSH.format(content="hi"),
    "parameter entities": '<!DOCTYPE xml [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
    + _PUSH.format(content="hi"),
    "harmless DTD": "<!DOCTYPE xml>" + _PUSH.format(content="hi"),
}


@pytest.mark.parametrize("mode", ["plain", "safe", "envelope"])
@pytest.mark.parametrize("name", list(BOMBS))
async def test_xml_bombs_and_dtds_are_refused_cheaply(
    client: TestClient, settings: Settings, name: str, mode: str
) -> None:
    sim = _sim(settings)
    bomb = BOMBS[name]
    if mode == "envelope":  # the bomb in the safe-mode envelope around a real push
        push = sim.push(text_xml("你好", openid="oa-bomb"), "safe")
        encrypt = push.body.decode().split("<Encrypt>", 1)[1].split("</Encrypt>", 1)[0]
        body = bomb.replace("<MsgId>", f"<Encrypt>{encrypt}</Encrypt><MsgId>", 1).encode()
        query = push.query
    else:
        push = sim.push(bomb, mode)  # type: ignore[arg-type]
        body, query = push.body, push.query
    started = time.perf_counter()
    resp = await client.post(PATH, params=query, data=body)
    elapsed = time.perf_counter() - started
    assert (resp.status, await resp.text()) == (400, ""), name
    assert elapsed < 0.2, (name, elapsed)


async def test_a_follower_may_still_type_doctype(client: TestClient, settings: Settings) -> None:
    sim = _sim(settings)
    for mode in ("plain", "safe"):
        push = sim.push(text_xml("<!DOCTYPE html> 怎么解绑", openid="oa-html"), mode)  # type: ignore[arg-type]
        resp = await client.post(PATH, params=push.query, data=push.body)
        body = await resp.text()
        assert resp.status == 200 and body not in ("", "success"), (mode, resp.status, body)
        if mode == "safe":
            body = sim.open_reply(body, push)
        assert parse_message(body).content
