"""WeChat's side of the official-account webhook, for tests, the benchmark and the fake's
delivery receipts: build pushes as WeChat does (XML, query signature, safe-mode
encryption) and open encrypted replies."""

from __future__ import annotations

import hashlib
import itertools
import secrets
import time
from dataclasses import dataclass
from typing import Literal
from xml.sax.saxutils import escape

from wechatpy.crypto import WeChatCrypto

__all__ = ["Push", "WeChatSimulator", "text_xml", "event_xml"]

Mode = Literal["plain", "compat", "safe"]

_msg_ids = itertools.count(int(time.time() * 1000) % 10**12 * 1000)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_xml(
    content: str,
    *,
    openid: str,
    to: str = "gh_demo",
    msg_id: int | None = None,
    create_time: int | None = None,
) -> str:
    """A text message as WeChat pushes it."""
    return (
        f"<xml><ToUserName>{_cdata(to)}</ToUserName>"
        f"<FromUserName>{_cdata(openid)}</FromUserName>"
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(content)}</Content>"
        f"<MsgId>{msg_id if msg_id is not None else next(_msg_ids)}</MsgId></xml>"
    )


def event_xml(
    event: str,
    *,
    openid: str,
    to: str = "gh_demo",
    key: str | None = None,
    create_time: int | None = None,
    extra: dict[str, str] | None = None,
) -> str:
    """An event push (subscribe, unsubscribe, CLICK, VIEW, TEMPLATESENDJOBFINISH, ...)."""
    parts = [
        f"<xml><ToUserName>{_cdata(to)}</ToUserName>",
        f"<FromUserName>{_cdata(openid)}</FromUserName>",
        f"<CreateTime>{create_time or int(time.time())}</CreateTime>",
        "<MsgType><![CDATA[event]]></MsgType>",
        f"<Event>{_cdata(event)}</Event>",
    ]
    if key is not None:
        parts.append(f"<EventKey>{_cdata(key)}</EventKey>")
    for name, value in (extra or {}).items():
        parts.append(f"<{name}>{escape(value)}</{name}>")
    parts.append("</xml>")
    return "".join(parts)


def signature(token: str, timestamp: str, nonce: str, *extra: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, *extra])).encode()).hexdigest()


@dataclass(frozen=True)
class Push:
    """One HTTP request WeChat would make: query string and body."""

    query: dict[str, str]
    body: bytes
    nonce: str
    timestamp: str


class WeChatSimulator:
    """Signs (and in compat / safe mode encrypts) pushes for one official account."""

    def __init__(self, *, token: str, appid: str, encoding_aes_key: str) -> None:
        self.token = token
        self.appid = appid
        self.crypto = WeChatCrypto(token, encoding_aes_key, appid)

    def push(
        self,
        xml: str,
        mode: Mode = "plain",
        *,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> Push:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or secrets.token_hex(6)
        query = {
            "signature": signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "openid": "sim",
        }
        if mode == "plain":
            return Push(query, xml.encode(), nonce, ts)
        sealed = self.crypto.encrypt_message(xml, nonce, ts)
        encrypt = sealed.split("<Encrypt><![CDATA[", 1)[1].split("]]></Encrypt>", 1)[0]
        query["encrypt_type"] = "aes"
        query["msg_signature"] = signature(self.token, ts, nonce, encrypt)
        if mode == "safe":
            body = (
                f"<xml><ToUserName>{_cdata('gh_demo')}</ToUserName>"
                f"<Encrypt>{_cdata(encrypt)}</Encrypt></xml>"
            )
        else:  # compat: the plain fields and the ciphertext side by side
            body = xml.replace("</xml>", f"<Encrypt>{_cdata(encrypt)}</Encrypt></xml>")
        return Push(query, body.encode(), nonce, ts)

    def verification(self, echostr: str, *, timestamp: int | None = None) -> dict[str, str]:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        nonce = secrets.token_hex(6)
        return {
            "signature": signature(self.token, ts, nonce),
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }

    def open_reply(self, body: str, push: Push) -> str:
        """Decrypt an encrypted reply (checking its signature) as WeChat would."""
        import xmltodict

        data = xmltodict.parse(body)["xml"]
        assert data["TimeStamp"] == push.timestamp and data["Nonce"] == push.nonce
        return str(self.crypto.decrypt_message(body, data["MsgSignature"], push.timestamp, push.nonce))
