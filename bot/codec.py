"""The WeChat server protocol of /wechat/official, without HTTP: verify, decrypt, parse,
and seal the reply.

Only wechatpy's pure parts are used (``check_signature``, ``WeChatCrypto``,
``parse_message``, ``create_reply``); it never makes a network call here.

Modes (developers.weixin.qq.com 消息加解密说明):

* plain — ``signature``/``timestamp``/``nonce`` in the query, XML in the body;
* compatible — the same plus ``encrypt_type=aes``, ``msg_signature`` and the body
  carrying both the plain fields and ``<Encrypt>``;
* safe — ``encrypt_type=aes`` and only ``<Encrypt>`` in the body.

The query signature is always checked, and the timestamp must be within the window
(``[bot] timestamp_window_seconds``): a replayed request from last week is refused.
With an EncodingAESKey configured only ``encrypt_type=aes`` pushes are accepted (their
``msg_signature`` covers the body); plain ones only when ``[bot] allow_plain_mode`` says
so. A plain push's signature does not cover its body: ``Inbound.binding`` lets the service
bind the signed (timestamp, nonce) to the first body it carried (issue #17 finding 4).
An encrypted body is decrypted with the current EncodingAESKey, then the previous one
(rotation); the reply is encrypted with the key that worked. Anything we cannot verify
or read is ``Refused`` (an HTTP status, no reply), never an exception escaping.

The HTTP side (``bot.webhook``) and the use case (``bot.service``) both use this module;
it knows neither.
"""

from __future__ import annotations

import binascii
import hashlib
import random
import re
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from xml.parsers import expat
from xml.parsers.expat import ExpatError

from wechatpy import create_reply, parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto, _get_signature
from wechatpy.events import EVENT_TYPES
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import MESSAGE_TYPES, BaseMessage, UnknownMessage
from wechatpy.utils import WeChatSigner

from server.consttime import same

__all__ = [
    "Codec", "DtdRefused", "Inbound", "OfficialCrypto", "Refused", "parse_xml", "reply_xml",
    "xml_root",
]

# What a garbage or wrongly keyed <Encrypt> makes wechatpy's decryption raise.
_DECRYPT_ERRORS = (
    InvalidAppIdException,
    ValueError,  # bad padding / block size (cryptography), bad UTF-8
    struct.error,
    binascii.Error,
    IndexError,
    TypeError,
)
# What a malformed body makes ElementTree / xmltodict / wechatpy's classes raise.
_PARSE_ERRORS = (ET.ParseError, ExpatError, KeyError, TypeError, ValueError, AttributeError)


class DtdRefused(ValueError):
    """The XML carries a document type declaration: refused before anything in it is read."""


def _refuse_doctype(*_: object) -> None:
    raise DtdRefused("a DTD in a WeChat push")


def xml_root(text: str) -> ET.Element:
    """``ET.fromstring`` refusing any DTD, so no entity is ever declared: no billion
    laughs (expat's own amplification limit lets ~1 s of CPU go first, measured: issue
    #15), no external entities, no external DTD. WeChat never sends one. A DTD can only
    exist if ``<!DOCTYPE`` is in the text (XML keywords are case-sensitive), so the
    common case costs a substring search; when it is there (perhaps only inside a
    follower's CDATA text) expat is asked, with a handler that stops at the declaration's
    start, before its internal subset is read."""
    if "<!DOCTYPE" in text:
        scan = expat.ParserCreate()
        scan.StartDoctypeDeclHandler = _refuse_doctype
        scan.Parse(text, True)  # DtdRefused, ExpatError, or a clean document
    return ET.fromstring(text)


def parse_xml(text: str) -> BaseMessage:
    """``wechatpy.parse_message`` with ElementTree instead of xmltodict (3x faster on
    the reply path): the same message classes, the same type / event resolution.
    A push is one flat ``<xml>`` of simple fields; anything nested (rare event types
    with sub-elements) goes through wechatpy's own parser."""
    root = xml_root(text)
    if root.tag != "xml":
        raise ValueError("not a WeChat push")
    data: dict[str, str] = {}
    for child in root:
        if len(child):
            return parse_message(text)
        data[child.tag] = child.text or ""
    message_type = data["MsgType"].lower()
    if message_type.startswith("device_"):
        return parse_message(text)
    if message_type != "event":
        return MESSAGE_TYPES.get(message_type, UnknownMessage)(data)
    event_type = data.get("Event", "").lower()
    key = data.get("EventKey", "")
    if event_type == "subscribe" and key:
        if key.startswith(("scanbarcode|", "scanimage|")):
            event_type = data["Event"] = "subscribe_scan_product"
        elif key.startswith("qrscene_"):
            event_type = data["Event"] = "subscribe_scan"
            data["EventKey"] = key[len("qrscene_") :]
    return EVENT_TYPES.get(event_type, UnknownMessage)(data)


class _PrpCrypto(PrpCrypto):  # type: ignore[misc]  # wechatpy ships no type information
    """wechatpy's message cipher with a cheaper random prefix: ``random_string`` draws 16
    characters with ``random.sample`` (~10 µs); the prefix only has to differ between
    messages (the CBC IV is the fixed key[:16]), as wechatpy's own is not secret either."""

    def get_random_string(self) -> str:
        return f"{_random_bits(64):016x}"


_random_bits = random.getrandbits


class OfficialCrypto(WeChatCrypto):  # type: ignore[misc]  # wechatpy ships no type information
    """``WeChatCrypto`` of one EncodingAESKey, built once: its cipher is reused for every
    message instead of being rebuilt per call, through the ``crypto_class`` hook wechatpy's
    own subclasses use. Same wire format, same checks (signature, AppID)."""

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        super().__init__(token, encoding_aes_key, app_id)
        self._prp = _PrpCrypto(self.key)

    def _cipher(self, _key: bytes) -> _PrpCrypto:
        return self._prp

    def encrypt_message(self, msg: str, nonce: str, timestamp: str | None = None) -> str:
        return cast(str, self._encrypt_message(msg, nonce, timestamp, self._cipher))

    def decrypt_message(self, msg: Any, signature: str, timestamp: str, nonce: str) -> str:
        # wechatpy compares msg_signature with ``!=``: checked here first in constant time
        if not isinstance(msg, Mapping):  # the XML text, as wechatpy takes it too
            import xmltodict

            msg = xmltodict.parse(msg if isinstance(msg, str) else msg.decode())["xml"]
        encrypt = str(msg.get("Encrypt") or "")
        if not same(_get_signature(self.token, timestamp, nonce, encrypt), signature):
            raise InvalidSignatureException()
        return cast(str, self._decrypt_message(msg, signature, timestamp, nonce, self._cipher))


# WeChat's envelope carries <Encrypt> as base64 in CDATA: found without an XML parse (the
# inner message is parsed strictly; msg_signature covers the value). Anything else in that
# place (no CDATA, entities) goes through ElementTree.
_ENCRYPT_RE = re.compile(r"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>")


def _encrypted_field(text: str) -> str:
    # an envelope with a DTD goes to the parser that refuses it: never found by the
    # shortcut and answered as if the DTD were not there
    found = _ENCRYPT_RE.search(text) if "<!DOCTYPE" not in text else None
    if found is not None:
        return found.group(1)
    root = xml_root(text)
    value = root.findtext("Encrypt")
    if root.tag != "xml" or not value:
        raise ValueError("no <Encrypt> in the envelope")
    return value


class Refused(Exception):
    """A request we do not answer: HTTP ``status`` and no reply."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status
        self.why = why


@dataclass(frozen=True)
class Inbound:
    """A verified, decrypted, parsed push; ``crypto`` is the key that opened it (None: plain)."""

    message: BaseMessage
    crypto: WeChatCrypto | None
    nonce: str
    timestamp: str
    # plain mode: (timestamp:nonce, digest of the body) — the signature does not cover the
    # body, so the service binds the signed nonce to the first body it carried
    binding: tuple[str, bytes] | None = None


class Codec:
    """Signature, timestamp window, AES keys (current + previous) of one official account."""

    def __init__(
        self,
        *,
        token: str,
        appid: str,
        encoding_aes_key: str,
        previous_encoding_aes_key: str = "",
        window_seconds: int = 300,
        allow_plain_mode: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.window = window_seconds
        self._clock = clock
        self.cryptos: list[WeChatCrypto] = [
            OfficialCrypto(token, key, appid)
            for key in (encoding_aes_key, previous_encoding_aes_key)
            if key
        ]
        # Plain pushes (no encrypt_type=aes): their body is covered by no signature. With an
        # EncodingAESKey configured the account is in safe (or compatible) mode, whose
        # pushes always carry encrypt_type=aes: a plain one is a forgery unless the
        # operator explicitly allows plain mode ([bot] allow_plain_mode).
        self.plain_ok = not self.cryptos or allow_plain_mode

    def verify(self, query: Mapping[str, str]) -> None:
        """Check ``signature`` over token/timestamp/nonce and the timestamp window."""
        signature = query.get("signature", "")
        timestamp = query.get("timestamp", "")
        nonce = query.get("nonce", "")
        if not (signature and timestamp and nonce):
            raise Refused(403, "missing signature parameters")
        signer = WeChatSigner()  # wechatpy's check_signature compares with ``!=``
        signer.add_data(self.token, timestamp, nonce)
        if not same(signer.signature, signature):
            raise Refused(403, "bad signature")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise Refused(403, "bad timestamp") from None
        if abs(self._clock() - sent_at) > self.window:
            raise Refused(403, "stale timestamp")

    def open(self, query: Mapping[str, str], body: bytes) -> Inbound:
        """Verify, decrypt when encrypted, and parse a POSTed push."""
        self.verify(query)
        timestamp = query["timestamp"]
        nonce = query["nonce"]
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "body is not UTF-8") from None
        crypto: WeChatCrypto | None = None
        binding: tuple[str, bytes] | None = None
        if query.get("encrypt_type", "raw").lower() == "aes":
            text, crypto = self._decrypt(text, query.get("msg_signature", ""), timestamp, nonce)
        elif not self.plain_ok:
            raise Refused(403, "plain-mode push while safe mode is configured")
        else:
            binding = (f"{timestamp}:{nonce}", hashlib.blake2b(body, digest_size=16).digest())
        try:
            message = parse_xml(text)
        except DtdRefused:
            raise Refused(400, "XML with a DTD refused") from None
        except _PARSE_ERRORS:
            raise Refused(400, "malformed XML") from None
        if message is None or not getattr(message, "source", None):
            raise Refused(400, "no message")
        return Inbound(
            message=message, crypto=crypto, nonce=nonce, timestamp=timestamp, binding=binding
        )

    def _decrypt(
        self, text: str, msg_signature: str, timestamp: str, nonce: str
    ) -> tuple[str, WeChatCrypto]:
        if not msg_signature:
            raise Refused(403, "missing msg_signature")
        if not self.cryptos:
            raise Refused(403, "safe mode is not configured")
        try:
            # wechatpy's decrypt_message takes the envelope's fields as a dict (it would
            # parse the text with xmltodict, 2x slower than ElementTree)
            envelope = {"Encrypt": _encrypted_field(text)}
        except DtdRefused:
            raise Refused(400, "XML with a DTD refused") from None
        except _PARSE_ERRORS:
            raise Refused(400, "malformed XML") from None
        for crypto in self.cryptos:
            try:
                return crypto.decrypt_message(envelope, msg_signature, timestamp, nonce), crypto
            except InvalidSignatureException:
                # The signature does not depend on the key: no other key will do better.
                raise Refused(403, "bad msg_signature") from None
            except _PARSE_ERRORS + _DECRYPT_ERRORS:
                continue
        raise Refused(400, "cannot decrypt with the current or previous key")

    def seal(self, reply_xml: str, inbound: Inbound) -> str:
        """The response body: the reply as is (plain) or encrypted with the key that worked."""
        if inbound.crypto is None:
            return reply_xml
        return cast(str, inbound.crypto.encrypt_message(reply_xml, inbound.nonce, inbound.timestamp))

    def echo(self, query: Mapping[str, str]) -> str:
        """URL verification (GET): the ``echostr`` when the signature checks out."""
        self.verify(query)
        return query.get("echostr", "")


def reply_xml(text: str, message: BaseMessage) -> str:
    """The passive text reply to ``message`` as WeChat's XML (from the account, to the
    follower); ``Codec.seal`` encrypts it in safe mode."""
    return str(create_reply(text, message, render=True))
