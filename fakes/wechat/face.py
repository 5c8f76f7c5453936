"""微信人脸核身 (the 1.0 API with ``userIdKey``) as the fake serves it.

Shapes and codes, from developers.weixin.qq.com (the community doc "如何进行开发" of
微信人脸核身, and developers' quoted answers there; the SKIT.FlurlHttpClient.Wechat models
``CityServiceFaceIdentifyGetUserIdKey*`` / ``CityServiceFaceIdentifyGetInfo*`` agree):

* ``POST /cityservice/face/identify/getuseridkey?access_token=`` ``{name, id_card_number}``
  → ``{errcode, errmsg, user_id_key, expires_in: 3600}``; a missing name or number → 84006.
* ``POST /cityservice/face/identify/getinfo?access_token=`` ``{verify_result}`` →
  ``{errcode, errmsg, identify_ret, identify_time, validate_data, openid, user_id_key,
  finish_time, id_card_number_md5, name_utf8_md5}``. errcode 0 only says the call worked;
  ``identify_ret`` 0 is a passed check, anything else a failed one (10003 身份证号不匹配,
  10004 比对人脸信息不匹配, 10041 非法user_id_key, ...). An unknown verify_result → 84001;
  one older than 5 minutes → 84002 (WeChat's answer on the community, 2020-08-12).
  The md5s are lower-case hex (a quoted real answer: md5("曾浩") = ee075aef…); the ID
  is hashed with an upper-case X.

WeChat's documents do not say whether a verify_result can be read twice within its
5 minutes. The fake redeems each one once (``single_use``, on by default: a second
getinfo → 84002, as if expired); our server must refuse a replay on its own anyway,
which tests can check with ``configure(face_single_use=False)``.

Two kinds of verify results:

* **issued** by :meth:`FaceState.verify` (or ``POST /_fake/face/verify``), which plays
  ``wx.startFacialRecognitionVerify`` for a user_id_key and an openid: getinfo answers
  the truth about that check, whatever the caller hopes.
* **demo** results (API.md "Demo mode"): any other text. One starting with ``ok`` passed,
  any other failed (identify_ret 10004). The fake cannot know who did the check, so the
  caller may say whom it expects with a ``demo_expect`` object in the getinfo body
  (``openid`` and either ``user_id_key`` of a session the fake issued, or the person's
  ``name_utf8_md5`` / ``id_card_number_md5``). Without it the answer names nobody:
  empty openid and user_id_key, md5s of the empty person (:data:`EMPTY_MD5`), so a
  caller that compares fails safe. Real WeChat never reads ``demo_expect``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from fakes.wechat.protocol import Reject, json_response, read_json

if TYPE_CHECKING:
    from fakes.wechat.state import FakeWeChatState

__all__ = [
    "EMPTY_MD5",
    "FaceState",
    "IDENTIFY_FACE_MISMATCH",
    "IDENTIFY_INVALID_KEY",
    "RESULT_TTL",
    "USER_ID_KEY_TTL",
    "face_getinfo",
    "face_getuseridkey",
    "person_md5s",
]

USER_ID_KEY_TTL = 3600  # getuseridkey's expires_in
RESULT_TTL = 300.0  # a verify_result can be redeemed for 5 minutes after the check
IDENTIFY_FACE_MISMATCH = 10004  # 比对人脸信息不匹配
IDENTIFY_INVALID_KEY = 10041  # 非法user_id_key
EMPTY_MD5 = hashlib.md5(b"").hexdigest()

K = TypeVar("K")
V = TypeVar("V")


def person_md5s(name: str, id_card_number: str) -> tuple[str, str]:
    """``(id_card_number_md5, name_utf8_md5)`` as WeChat computes them."""
    return (
        hashlib.md5(id_card_number.strip().upper().encode()).hexdigest(),
        hashlib.md5(name.strip().encode("utf-8")).hexdigest(),
    )


@dataclass
class FaceSession:
    """One getuseridkey: the person a later check is made for."""

    user_id_key: str
    id_card_number_md5: str
    name_utf8_md5: str
    expires_at: float


@dataclass
class FaceResult:
    """One finished check, as getinfo reports it."""

    identify_ret: int
    finish_time: int
    openid: str
    user_id_key: str
    id_card_number_md5: str
    name_utf8_md5: str
    redeemed: bool = False

    def answer(self) -> dict[str, Any]:
        return {
            "errcode": 0,
            "errmsg": "ok",
            "identify_ret": self.identify_ret,
            "identify_time": self.finish_time,
            "validate_data": "",
            "openid": self.openid,
            "user_id_key": self.user_id_key,
            "finish_time": self.finish_time,
            "id_card_number_md5": self.id_card_number_md5,
            "name_utf8_md5": self.name_utf8_md5,
        }


class FaceState:
    """Sessions and results of 人脸核身; part of :class:`FakeWeChatState`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget sessions and results; ``single_use`` back to its default."""
        self.single_use = True
        self.sessions: dict[str, FaceSession] = {}
        self.issued: dict[str, FaceResult] = {}  # verify_result → result
        # demo results already redeemed: (verify_result, who was expected) → result
        self.demo: dict[tuple[str, str], FaceResult] = {}

    # ---- what the server calls -------------------------------------------------------

    def open_session(self, name: str, id_card_number: str) -> FaceSession:
        now = self.clock()
        self._forget_old(now)
        id_md5, name_md5 = person_md5s(name, id_card_number)
        session = FaceSession(
            user_id_key=secrets.token_hex(16),
            id_card_number_md5=id_md5,
            name_utf8_md5=name_md5,
            expires_at=now + USER_ID_KEY_TTL,
        )
        self.sessions[session.user_id_key] = session
        return session

    def redeem(self, verify_result: str, expect: dict[str, str] | None) -> dict[str, Any]:
        """getinfo's answer for ``verify_result`` (Reject 84001 / 84002)."""
        now = self.clock()
        self._forget_old(now)
        result = self.issued.get(verify_result)
        if result is None:
            result = self._demo_result(verify_result, expect or {}, now)
        if now - result.finish_time > RESULT_TTL:
            raise Reject(84002)
        if result.redeemed and self.single_use:
            raise Reject(84002)
        result.redeemed = True
        return result.answer()

    # ---- what the user's phone does (wx.startFacialRecognitionVerify) -----------------

    def verify(self, user_id_key: str, openid: str, identify_ret: int = 0) -> str:
        """Run the check for an open session as ``openid``; returns the verify_result
        (``identify_ret`` 0: the face matched)."""
        now = self.clock()
        self._forget_old(now)
        session = self._live_session(user_id_key, now)
        if session is None:
            raise ValueError("no open face session for that user_id_key")
        verify_result = secrets.token_urlsafe(72)
        self.issued[verify_result] = FaceResult(
            identify_ret=identify_ret,
            finish_time=int(now),
            openid=openid,
            user_id_key=session.user_id_key,
            id_card_number_md5=session.id_card_number_md5,
            name_utf8_md5=session.name_utf8_md5,
        )
        return verify_result

    # ---- internals ----------------------------------------------------------------------

    def _live_session(self, user_id_key: str, now: float) -> FaceSession | None:
        session = self.sessions.get(user_id_key)
        return session if session is not None and session.expires_at > now else None

    def _demo_result(self, verify_result: str, expect: dict[str, str], now: float) -> FaceResult:
        """The demo convention: ``ok…`` passed, anything else failed, for whom the caller
        expects (see the module docstring)."""
        who = "|".join(
            expect.get(k, "")
            for k in ("openid", "user_id_key", "id_card_number_md5", "name_utf8_md5")
        )
        seen = self.demo.get((verify_result, who))
        if seen is not None and now - seen.finish_time <= RESULT_TTL:
            return seen  # the same check, asked for again
        identify_ret = 0 if verify_result.startswith("ok") else IDENTIFY_FACE_MISMATCH
        user_id_key = expect.get("user_id_key", "")
        id_md5 = expect.get("id_card_number_md5") or EMPTY_MD5
        name_md5 = expect.get("name_utf8_md5") or EMPTY_MD5
        if user_id_key:
            session = self._live_session(user_id_key, now)
            if session is None:
                identify_ret, id_md5, name_md5 = IDENTIFY_INVALID_KEY, EMPTY_MD5, EMPTY_MD5
            else:
                id_md5, name_md5 = session.id_card_number_md5, session.name_utf8_md5
        result = FaceResult(
            identify_ret=identify_ret,
            finish_time=int(now),
            openid=expect.get("openid", ""),
            user_id_key=user_id_key,
            id_card_number_md5=id_md5,
            name_utf8_md5=name_md5,
        )
        self.demo[(verify_result, who)] = result
        return result

    def _forget_old(self, now: float) -> None:
        """Drop expired sessions, issued results after an hour and demo results after
        their 5 minutes, so a long demo run stays small."""
        _prune(self.sessions, lambda s: s.expires_at > now)
        _prune(self.issued, lambda r: r.finish_time + USER_ID_KEY_TTL > now)
        _prune(self.demo, lambda r: r.finish_time + RESULT_TTL > now)


def _prune(table: dict[K, V], alive: Callable[[V], bool]) -> None:
    """Drop dead entries from the front: each table is in creation order."""
    while table:
        first = next(iter(table))
        if alive(table[first]):
            return
        del table[first]


# ---- handlers ---------------------------------------------------------------------------


async def face_getuseridkey(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cityservice/face/identify/getuseridkey — a key for a name + ID number."""
    state.check_token(request.query.get("access_token"), ("mp",))
    body = await read_json(request)
    name, number = body.get("name"), body.get("id_card_number")
    if not isinstance(name, str) or not name.strip():
        raise Reject(84006)
    if not isinstance(number, str) or not number.strip():
        raise Reject(84006)
    session = state.face.open_session(name, number)
    return json_response(
        {
            "errcode": 0,
            "errmsg": "ok",
            "user_id_key": session.user_id_key,
            "expires_in": USER_ID_KEY_TTL,
        }
    )


async def face_getinfo(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cityservice/face/identify/getinfo — redeem a verify_result."""
    state.check_token(request.query.get("access_token"), ("mp",))
    body = await read_json(request)
    verify_result = body.get("verify_result")
    if not isinstance(verify_result, str) or not verify_result:
        raise Reject(84001)
    expect = body.get("demo_expect")
    if expect is not None and (
        not isinstance(expect, dict) or not all(isinstance(v, str) for v in expect.values())
    ):
        raise Reject(47001)
    return json_response(state.face.redeem(verify_result, expect))
