"""WeChat's wire conventions as the fake speaks them: paths, errcodes and their English
errmsg texts, JSON bodies (``errmsg`` with a ``rid`` suffix, ``text/plain`` where WeChat
uses it) and the subscribe-message keyword limits."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from aiohttp import web

__all__ = [
    "ERRMSG",
    "P_CODE2SESSION",
    "P_CUSTOM",
    "P_FACE_GETINFO",
    "P_FACE_USERIDKEY",
    "P_MENU_CREATE",
    "P_STABLE_TOKEN",
    "P_SUBSCRIBE",
    "P_TEMPLATE",
    "P_USER_INFO",
    "Reject",
    "check_data",
    "error_response",
    "json_response",
    "norm_path",
    "read_json",
]

#: WeChat's own errmsg texts (English, as the real API sends them).
ERRMSG: dict[int, str] = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40023: "invalid sub button size",
    40029: "invalid code",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "code blocked",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    42001: "access_token expired",
    43002: "require POST method",
    43004: "require subscribe",
    43101: "user refuse to accept the msg",
    44002: "empty post data",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit  mustslower  retry next minute",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
    47003: "argument invalid!",
    48001: "api unauthorized",
    # 人脸核身 (cityservice/face/identify/*): texts as developers quote WeChat's answers
    # on developers.weixin.qq.com/community (84001 from getinfo with an unknown
    # verify_result, 84002 once the result is over 5 minutes old, 84006 from
    # getuseridkey without name / id_card_number).
    84001: "invalid identify id",
    84002: "user info expired",
    84006: "name or id_card_number empty",
}

P_CODE2SESSION = "/sns/jscode2session"
P_STABLE_TOKEN = "/cgi-bin/stable_token"
P_TEMPLATE = "/cgi-bin/message/template/send"
P_SUBSCRIBE = "/cgi-bin/message/subscribe/send"
P_CUSTOM = "/cgi-bin/message/custom/send"
P_USER_INFO = "/cgi-bin/user/info"
P_MENU_CREATE = "/cgi-bin/menu/create"
P_FACE_USERIDKEY = "/cityservice/face/identify/getuseridkey"
P_FACE_GETINFO = "/cityservice/face/identify/getinfo"

_KEY_RE = re.compile(r"^([a-z_]+?)(\d+)$")

# Subscribe-message keyword limits (订阅消息参数值内容限制):
# keyword type → (max length, optional pattern).
_KEYWORD_RULES: dict[str, tuple[int, re.Pattern[str] | None]] = {
    "thing": (20, None),
    "number": (32, re.compile(r"^-?\d+(\.\d+)?$")),
    "letter": (32, re.compile(r"^[A-Za-z]+$")),
    "symbol": (5, None),
    "character_string": (32, re.compile(r"^[\x21-\x7e]+$")),
    "phone_number": (17, re.compile(r"^[\d+\-() ]+$")),
    "car_number": (8, None),
    "phrase": (5, None),
    "amount": (16, re.compile(r"^[¥￥$]?-?\d{1,10}(\.\d{1,2})?元?$")),
    "time": (32, None),
    "date": (32, None),
    "name": (20, None),
}


class Reject(Exception):
    """Answer the current call with this errcode (and optional errmsg detail)."""

    def __init__(self, errcode: int, detail: str = "") -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.detail = detail


def norm_path(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _rid() -> str:
    return f"{os.urandom(4).hex()}-{os.urandom(4).hex()}-{os.urandom(4).hex()}"


def json_response(payload: dict[str, Any], *, text_plain: bool = False) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(
        body=body,
        content_type="text/plain" if text_plain else "application/json",
        charset="utf-8",
    )


def error_response(errcode: int, detail: str = "", *, text_plain: bool = False) -> web.Response:
    msg = ERRMSG.get(errcode, "unknown error")
    if detail:
        msg = f"{msg} {detail}"
    return json_response(
        {"errcode": errcode, "errmsg": f"{msg} rid: {_rid()}"}, text_plain=text_plain
    )


async def read_json(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (44002 when empty, 47001 when not an object)."""
    raw = await request.read()
    if not raw:
        raise Reject(44002)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Reject(47001) from None
    if not isinstance(data, dict):
        raise Reject(47001)
    return data


def check_data(data: Any) -> dict[str, str]:
    """Validate ``{"key": {"value": ...}}`` and return the plain values (47003 if bad)."""
    if not isinstance(data, dict):
        raise Reject(47003, "data invalid")
    values: dict[str, str] = {}
    for key, item in data.items():
        if not isinstance(item, dict) or "value" not in item:
            raise Reject(47003, f"data.{key} invalid")
        value = item["value"]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Reject(47003, f"data.{key}.value invalid")
        text = str(value)
        match = _KEY_RE.match(key)
        if match and match.group(1) in _KEYWORD_RULES:
            max_len, pattern = _KEYWORD_RULES[match.group(1)]
            if match.group(1) == "name" and not text.isascii():
                max_len = 10
            if not text or len(text) > max_len or (pattern and not pattern.match(text)):
                raise Reject(47003, f"data.{key}.value invalid")
        values[key] = text
    return values
