"""Async gateway to the WeChat server APIs (mini-program and official account).

A thin, stateless client on the app's one shared ``aiohttp.ClientSession``: it builds
the request, applies a per-call timeout, parses WeChat's answer and turns every
``errcode != 0`` into :class:`WeChatError`. Access-token caching lives elsewhere.

Paths and shapes follow developers.weixin.qq.com:

* ``GET  /sns/jscode2session``               (code2Session, mini-program login)
* ``POST /cgi-bin/stable_token``             (getStableAccessToken)
* ``POST /cgi-bin/message/template/send``    (official-account template message)
* ``POST /cgi-bin/message/subscribe/send``   (mini-program subscribe message)
* ``POST /cgi-bin/message/custom/send``      (customer-service message)
* ``GET  /cgi-bin/user/info``                (official-account follower info)
* ``POST /cgi-bin/menu/create``              (official-account menu)
* ``POST /cityservice/face/identify/getuseridkey``  (人脸核身: a key for a name + ID)
* ``POST /cityservice/face/identify/getinfo``       (人脸核身: redeem a verify_result)

WeChat often answers JSON as ``text/plain``, so bodies are parsed from bytes, never by
content type. Secrets, access tokens and session keys never reach a log line or an
exception message.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import aiohttp

from server.consttime import same

if TYPE_CHECKING:
    from server.settings import WeChatSettings

__all__ = [
    "AccessToken",
    "Code2Session",
    "FaceExpectation",
    "FaceIdentifyInfo",
    "FaceUserIdKey",
    "WeChatError",
    "WeChatGateway",
    "WeChatUnavailable",
    "TRANSIENT_ERRCODES",
    "TOKEN_ERRCODES",
    "face_person_md5s",
]

log = logging.getLogger(__name__)

#: Errcodes worth retrying later: system busy, daily quota, per-minute quota.
TRANSIENT_ERRCODES: frozenset[int] = frozenset({-1, 45009, 45011})
#: Errcodes that mean "get a new access token and try again".
TOKEN_ERRCODES: frozenset[int] = frozenset({40001, 40014, 42001})

# Chinese text shown to users (or put on a failed notice); WeChat's errmsg is English.
_MESSAGES_ZH: dict[int, str] = {
    -1: "微信系统繁忙，请稍后再试",
    40001: "微信接口凭证无效",
    40002: "微信授权类型无效",
    40003: "微信用户标识无效",
    40013: "微信 AppID 无效",
    40014: "微信接口凭证无效",
    40029: "登录凭证无效，请重新登录",
    40037: "消息模板无效",
    40125: "微信 AppSecret 无效",
    40163: "登录凭证已被使用，请重新登录",
    40226: "微信判定该账号存在风险，登录被拦截",
    41001: "缺少微信接口凭证",
    42001: "微信接口凭证已过期",
    43004: "用户未关注公众号，无法接收消息",
    43101: "用户未订阅该消息或已拒收",
    45009: "微信接口今日调用次数已达上限",
    45011: "操作过于频繁，请稍后再试",
    45015: "已超过客服消息可回复时限",
    45047: "客服消息条数已达上限",
    47001: "消息格式错误",
    47003: "消息参数不合法",
    48001: "没有调用该微信接口的权限",
    84001: "人脸核身结果无效，请重新进行人脸识别",
    84002: "人脸核身结果已过期，请重新进行人脸识别",
    84006: "缺少姓名或身份证号，无法进行人脸核身",
}


class WeChatError(Exception):
    """WeChat answered ``errcode != 0`` (or could not be reached, see subclass).

    ``errcode``/``errmsg`` are WeChat's own; ``message_zh`` is for people.
    """

    def __init__(self, errcode: int, errmsg: str, *, path: str | None = None) -> None:
        super().__init__(f"WeChat error {errcode}: {errmsg}" + (f" ({path})" if path else ""))
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path

    @property
    def transient(self) -> bool:
        """True when the same call may succeed later (busy, quotas)."""
        return self.errcode in TRANSIENT_ERRCODES

    @property
    def token_invalid(self) -> bool:
        """True when the access token was rejected: refresh it and retry once."""
        return self.errcode in TOKEN_ERRCODES

    @property
    def message_zh(self) -> str:
        """Chinese text suitable for end users."""
        return _MESSAGES_ZH.get(self.errcode, f"微信服务异常（错误码 {self.errcode}）")


class WeChatUnavailable(WeChatError):
    """WeChat could not be reached or answered garbage: network, timeout, HTTP 5xx, non-JSON."""

    def __init__(
        self,
        errmsg: str,
        *,
        errcode: int = -1,
        http_status: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(errcode, errmsg, path=path)
        self.http_status = http_status

    @property
    def transient(self) -> bool:
        """Transport failures are worth retrying, except a plain 4xx (our request is wrong)."""
        if self.http_status is None or self.http_status >= 500:
            return True
        return self.http_status in (408, 429)

    @property
    def message_zh(self) -> str:
        return _MESSAGES_ZH[-1]


@dataclass(frozen=True)
class Code2Session:
    """Result of mini-program login. ``session_key`` is secret: kept out of repr."""

    openid: str
    session_key: str = field(repr=False)
    unionid: str | None = None


@dataclass(frozen=True)
class AccessToken:
    """An access token and its remaining lifetime in seconds (token kept out of repr)."""

    token: str = field(repr=False)
    expires_in: int


def face_person_md5s(name: str, id_card_number: str) -> tuple[str, str]:
    """``(id_card_number_md5, name_utf8_md5)`` as 人脸核身's getinfo reports a person:
    lower-case hex md5 of the ID number with an upper-case X, and of the UTF-8 name."""
    return (
        hashlib.md5(id_card_number.strip().upper().encode()).hexdigest(),
        hashlib.md5(name.strip().encode("utf-8")).hexdigest(),
    )


@dataclass(frozen=True)
class FaceUserIdKey:
    """getuseridkey's answer: the key ``wx.startFacialRecognitionVerify({userIdKey})``
    runs with, valid ``expires_in`` seconds (3600)."""

    user_id_key: str = field(repr=False)
    expires_in: int


@dataclass(frozen=True)
class FaceIdentifyInfo:
    """getinfo's answer for one verify_result.

    ``identify_ret`` 0 is a passed check (errcode 0 only says the call worked). WeChat's
    docs ask the server to check ``identify_ret`` and both md5s itself: the mini-program's
    own answer can be forged. Times are unix seconds. The md5s and the key stay out of repr.
    """

    identify_ret: int
    identify_time: int
    validate_data: str
    openid: str
    user_id_key: str = field(repr=False)
    finish_time: int
    id_card_number_md5: str = field(repr=False)
    name_utf8_md5: str = field(repr=False)

    @property
    def passed(self) -> bool:
        return self.identify_ret == 0

    def is_person(self, name: str, id_card_number: str) -> bool:
        """Whether the check was of this person (both md5s equal, compared in constant time)."""
        id_md5, name_md5 = face_person_md5s(name, id_card_number)
        same_id = same(self.id_card_number_md5.lower(), id_md5)
        same_name = same(self.name_utf8_md5.lower(), name_md5)
        return same_id and same_name


@dataclass(frozen=True)
class FaceExpectation:
    """Whom the caller expects a check to be of: its own ``openid``, and the
    ``user_id_key`` of the session it opened or, without one, the person (name + ID).

    Only a demo WeChat ever sees it (``demo_hints``: the fake, on loopback), which cannot
    know who did a demo check (a ``verify_result`` "ok…", API.md "Demo mode") and answers
    as this person. Real WeChat gets WeChat's body only; the caller compares the answer
    with what it expects either way.
    """

    openid: str
    user_id_key: str | None = field(default=None, repr=False)
    name: str | None = field(default=None, repr=False)
    id_card_number: str | None = field(default=None, repr=False)

    def wire(self) -> dict[str, str]:
        """The hint as the fake reads it: md5s, never the name or number themselves."""
        hint = {"openid": self.openid}
        if self.user_id_key:
            hint["user_id_key"] = self.user_id_key
        if self.name is not None and self.id_card_number is not None:
            id_md5, name_md5 = face_person_md5s(self.name, self.id_card_number)
            hint["id_card_number_md5"], hint["name_utf8_md5"] = id_md5, name_md5
        return hint


class WeChatGateway:
    """Stateless async client for the WeChat APIs the app uses.

    ``api_base`` is ``https://api.weixin.qq.com`` in production and the fake's base URL
    in tests and the demo. Every method raises :class:`WeChatError` for ``errcode != 0``
    and :class:`WeChatUnavailable` for transport failures and timeouts.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_base: str,
        mp_appid: str,
        mp_secret: str,
        oa_appid: str,
        oa_secret: str,
        timeout: float = 5.0,
        demo_hints: bool = False,
    ) -> None:
        self._session = session
        self._demo_hints = demo_hints
        self._base = api_base.rstrip("/")
        self._creds: dict[str, tuple[str, str]] = {
            "mp": (mp_appid, mp_secret),
            "oa": (oa_appid, oa_secret),
        }
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    @classmethod
    def from_settings(
        cls, session: aiohttp.ClientSession, wechat: WeChatSettings, *, api_base: str
    ) -> WeChatGateway:
        """The gateway for the ``[wechat]`` settings, talking to ``api_base``; a WeChat on
        loopback is our fake (production refuses one), which gets the demo hints."""
        return cls(
            session,
            api_base=api_base,
            mp_appid=wechat.mp_appid,
            mp_secret=wechat.mp_secret,
            oa_appid=wechat.oa_appid,
            oa_secret=wechat.oa_secret,
            timeout=wechat.timeout_seconds,
            demo_hints=_is_loopback(api_base),
        )

    def __repr__(self) -> str:
        return f"WeChatGateway(api_base={self._base!r})"

    # ---- mini-program login -------------------------------------------------------

    async def code2session(self, code: str) -> Code2Session:
        """Exchange a ``wx.login`` code for openid / session_key / unionid (code2Session)."""
        appid, secret = self._creds["mp"]
        data = await self._call(
            "GET",
            "/sns/jscode2session",
            params={
                "appid": appid,
                "secret": secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        try:
            return Code2Session(
                openid=str(data["openid"]),
                session_key=str(data["session_key"]),
                unionid=data.get("unionid") or None,
            )
        except KeyError as exc:
            raise WeChatUnavailable(
                f"jscode2session answer lacks {exc.args[0]}", path="/sns/jscode2session"
            ) from None

    # ---- tokens -------------------------------------------------------------------

    async def stable_token(
        self, app: Literal["mp", "oa"], *, force_refresh: bool = False
    ) -> AccessToken:
        """Get the stable access token of the mini-program (``mp``) or official account (``oa``).

        ``force_refresh`` invalidates the previous token; WeChat allows it 20 times a day,
        at least 30 s apart (getStableAccessToken docs) — use it only after a 40001.
        """
        appid, secret = self._creds[app]
        data = await self._call(
            "POST",
            "/cgi-bin/stable_token",
            body={
                "grant_type": "client_credential",
                "appid": appid,
                "secret": secret,
                "force_refresh": force_refresh,
            },
        )
        try:
            return AccessToken(token=str(data["access_token"]), expires_in=int(data["expires_in"]))
        except (KeyError, TypeError, ValueError):
            raise WeChatUnavailable(
                "stable_token answer lacks access_token/expires_in", path="/cgi-bin/stable_token"
            ) from None

    # ---- messages -----------------------------------------------------------------

    async def send_template(
        self,
        access_token: str,
        *,
        openid: str,
        template_id: str,
        data: dict[str, str],
        url: str | None = None,
        miniprogram: dict[str, Any] | None = None,
    ) -> int:
        """Send an official-account template message; returns WeChat's ``msgid``."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": _wrap_data(data),
        }
        if url is not None:
            body["url"] = url
        if miniprogram is not None:
            body["miniprogram"] = miniprogram
        answer = await self._call(
            "POST", "/cgi-bin/message/template/send", token=access_token, body=body
        )
        try:
            return int(answer["msgid"])
        except (KeyError, TypeError, ValueError):
            raise WeChatUnavailable(
                "template send answer lacks msgid", path="/cgi-bin/message/template/send"
            ) from None

    async def send_subscribe(
        self,
        access_token: str,
        *,
        openid: str,
        template_id: str,
        data: dict[str, str],
        page: str | None = None,
        miniprogram_state: Literal["developer", "trial", "formal"] | None = None,
        lang: str = "zh_CN",
    ) -> None:
        """Send a mini-program subscribe message (needs the user's one-time consent)."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": _wrap_data(data),
            "lang": lang,
        }
        if page is not None:
            body["page"] = page
        if miniprogram_state is not None:
            body["miniprogram_state"] = miniprogram_state
        await self._call("POST", "/cgi-bin/message/subscribe/send", token=access_token, body=body)

    async def send_custom_text(self, access_token: str, *, openid: str, content: str) -> None:
        """Send a customer-service text message (allowed within 48 h of the user's message)."""
        await self._call(
            "POST",
            "/cgi-bin/message/custom/send",
            token=access_token,
            body={"touser": openid, "msgtype": "text", "text": {"content": content}},
        )

    # ---- official account -----------------------------------------------------------

    async def user_info(self, access_token: str, openid: str) -> dict[str, Any]:
        """Follower info of an official-account openid (``subscribe``, ``unionid``, ...)."""
        data = await self._call(
            "GET",
            "/cgi-bin/user/info",
            token=access_token,
            params={"openid": openid, "lang": "zh_CN"},
        )
        data.pop("errcode", None)
        data.pop("errmsg", None)
        return data

    async def create_menu(self, access_token: str, menu: dict[str, Any]) -> None:
        """Replace the official account's custom menu (``{"button": [...]}``)."""
        await self._call("POST", "/cgi-bin/menu/create", token=access_token, body=menu)

    # ---- 人脸核身 (mini-program) --------------------------------------------------------
    # Shapes from developers.weixin.qq.com: the community doc "如何进行开发" of 微信人脸核身
    # (getuseridkey, "再次获取核验结果api" getinfo) and real answers developers quote there
    # (84001 unknown verify_result, 84002 older than 5 minutes, 84006 no name / number);
    # the fake (fakes/wechat/face.py) serves the same. WeChat announced the end of this
    # 1.0 API for 2026-06-30 in favour of getverifyid / queryverifyinfo.

    async def face_user_id_key(
        self, access_token: str, *, name: str, id_card_number: str
    ) -> FaceUserIdKey:
        """getuseridkey: a key for checking the face of this person (mini-program token).
        The name and number go to WeChat only; they never reach a log or an exception."""
        path = "/cityservice/face/identify/getuseridkey"
        data = await self._call(
            "POST",
            path,
            token=access_token,
            body={"name": name.strip(), "id_card_number": id_card_number.strip().upper()},
        )
        try:
            return FaceUserIdKey(
                user_id_key=str(data["user_id_key"]), expires_in=int(data["expires_in"])
            )
        except (KeyError, TypeError, ValueError):
            raise WeChatUnavailable(
                "getuseridkey answer lacks user_id_key/expires_in", path=path
            ) from None

    async def face_identify_info(
        self,
        access_token: str,
        verify_result: str,
        *,
        expect: FaceExpectation | None = None,
    ) -> FaceIdentifyInfo:
        """getinfo: what the check behind ``verify_result`` found (mini-program token).

        ``expect`` reaches only a demo WeChat (see :class:`FaceExpectation`). WeChatError
        84001: no such result; 84002: expired (5 minutes) or, at the fake, already redeemed.
        """
        path = "/cityservice/face/identify/getinfo"
        body: dict[str, Any] = {"verify_result": verify_result}
        if expect is not None and self._demo_hints:
            body["demo_expect"] = expect.wire()
        data = await self._call("POST", path, token=access_token, body=body)
        try:
            return FaceIdentifyInfo(
                identify_ret=int(data["identify_ret"]),
                identify_time=int(data.get("identify_time") or 0),
                validate_data=str(data.get("validate_data") or ""),
                openid=str(data.get("openid") or ""),
                user_id_key=str(data.get("user_id_key") or ""),
                finish_time=int(data.get("finish_time") or 0),
                id_card_number_md5=str(data.get("id_card_number_md5") or ""),
                name_utf8_md5=str(data.get("name_utf8_md5") or ""),
            )
        except (KeyError, TypeError, ValueError):
            raise WeChatUnavailable("getinfo answer lacks identify_ret", path=path) from None

    # ---- transport ------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Do one request and return the parsed JSON object; raise on any failure."""
        query: dict[str, str] = {}
        if token is not None:
            query["access_token"] = token
        if params:
            query.update(params)
        payload: bytes | None = None
        headers: dict[str, str] | None = None
        if body is not None:
            # Raw UTF-8, not \\u escapes: some WeChat APIs show escapes literally.
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json; charset=utf-8"}
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=query or None,
                data=payload,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                status = resp.status
                raw = await resp.read()
        except asyncio.TimeoutError:
            # Message names only the path: the URL carries secrets / tokens.
            raise WeChatUnavailable("timeout", path=path) from None
        except aiohttp.ClientError as exc:
            raise WeChatUnavailable(f"transport error: {type(exc).__name__}", path=path) from None

        data = _parse(raw)
        if data is None:
            if status >= 400:
                raise WeChatUnavailable(f"HTTP {status}", http_status=status, path=path)
            raise WeChatUnavailable(
                f"non-JSON answer (HTTP {status})", http_status=status, path=path
            )
        if status >= 500:
            raise WeChatUnavailable(f"HTTP {status}", http_status=status, path=path)
        errcode = data.get("errcode", 0)
        if not isinstance(errcode, int):
            try:
                errcode = int(errcode)
            except (TypeError, ValueError):
                raise WeChatUnavailable(f"bad errcode {errcode!r}", path=path) from None
        if errcode != 0:
            errmsg = str(data.get("errmsg", ""))
            log.info("wechat %s answered errcode=%s errmsg=%s", path, errcode, errmsg)
            raise WeChatError(errcode, errmsg, path=path)
        if status >= 400:
            raise WeChatUnavailable(f"HTTP {status}", http_status=status, path=path)
        return data


def _wrap_data(data: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{"thing1": "x"}`` → WeChat's ``{"thing1": {"value": "x"}}``."""
    return {key: {"value": str(value)} for key, value in data.items()}


def _parse(raw: bytes) -> dict[str, Any] | None:
    """Parse a JSON object from bytes regardless of content type; None if it is not one."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _is_loopback(url: str) -> bool:
    """A WeChat on this machine is one of our fakes (WeChat itself never is)."""
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"
