"""The WeChat server APIs the fake answers, as aiohttp handlers over
:class:`~fakes.wechat.state.FakeWeChatState`: mini-program login, stable access tokens,
template / subscribe / customer-service messages, follower info, the custom menu, and
人脸核身 (:mod:`fakes.wechat.face`).

Login (API.md "Demo mode"): code ``demo-<user>-<anything>`` (``<user>`` letters and
digits) works once (reuse → 40163) and maps to openid ``demo-<user>``, unionid
``union-<user>``; any other code → 40029. Template messages go to ``oa-*`` openids,
subscribe messages to ``demo-*`` openids. Quirks kept: ``text/plain`` JSON from
jscode2session, ``errmsg`` with a ``rid`` suffix, errcode 0 bodies with HTTP 200,
stable_token's force-refresh limits.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from fakes.wechat.face import face_getinfo, face_getuseridkey
from fakes.wechat.protocol import (
    P_CODE2SESSION,
    P_CUSTOM,
    P_FACE_GETINFO,
    P_FACE_USERIDKEY,
    P_MENU_CREATE,
    P_STABLE_TOKEN,
    P_SUBSCRIBE,
    P_TEMPLATE,
    P_USER_INFO,
    Reject,
    check_data,
    error_response,
    json_response,
    read_json,
)
from fakes.wechat.receipts import RECEIPTS_KEY
from fakes.wechat.state import (
    CUSTOM_WINDOW_SECONDS,
    FAKE_STATE_KEY,
    MP_OPENID_RE,
    FakeWeChatState,
)

__all__ = ["API_ROUTES", "Handler", "add_api_routes"]

Handler = Callable[[web.Request, FakeWeChatState], Awaitable[web.Response]]

_CODE_RE = re.compile(r"^demo-([A-Za-z0-9]+)-(.+)$")


def _wrap(
    path: str, handler: Handler, *, post_only: bool = False, text_plain: bool = False
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap an API handler with counters, outage, stall, queued faults and random -1."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        state = request.app[FAKE_STATE_KEY]
        state.calls[path] += 1
        if state.down:
            state.errors[path] += 1
            return web.Response(status=503, text="503 Service Unavailable")
        if state.stall_seconds > 0:
            await asyncio.sleep(state.stall_seconds)
        fault = state.pop_fault(path)
        if fault is not None:
            state.errors[path] += 1
            kind, value = fault
            if kind == "http":
                return web.Response(status=value, text=f"{value} injected")
            return error_response(value, text_plain=text_plain)
        if state.transient_rate > 0 and state.rng.random() < state.transient_rate:
            state.errors[path] += 1
            return error_response(-1, text_plain=text_plain)
        if post_only and request.method != "POST":
            state.errors[path] += 1
            return error_response(43002, text_plain=text_plain)
        try:
            return await handler(request, state)
        except Reject as rej:
            state.errors[path] += 1
            return error_response(rej.errcode, rej.detail, text_plain=text_plain)

    return wrapped


# ---- WeChat API handlers ----------------------------------------------------------------


async def _jscode2session(request: web.Request, state: FakeWeChatState) -> web.Response:
    """GET /sns/jscode2session — code2Session; WeChat answers it as text/plain."""
    q = request.query
    appid, secret = q.get("appid"), q.get("secret")
    if not appid:
        raise Reject(41002)
    if state.app_by_appid.get(appid) != "mp":
        raise Reject(40013)
    if not secret:
        raise Reject(41004)
    if secret != state.credentials["mp"][1]:
        raise Reject(40125)
    if q.get("grant_type") != "authorization_code":
        raise Reject(40002)
    code = q.get("js_code")
    if not code:
        raise Reject(41008)
    match = _CODE_RE.match(code)
    if match is None:
        raise Reject(40029)
    user = match.group(1)
    if user in state.risky_users:
        raise Reject(40226)
    if code in state.used_codes:
        raise Reject(40163)
    state.used_codes.add(code)
    openid = f"demo-{user}"
    session_key = base64.b64encode(os.urandom(16)).decode()
    state.session_keys[openid] = session_key
    return json_response(
        {"session_key": session_key, "openid": openid, "unionid": f"union-{user}"},
        text_plain=True,
    )


async def _stable_token(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/stable_token — getStableAccessToken (JSON body only)."""
    try:
        body = await read_json(request)
    except Reject:
        # WeChat reads nothing from a non-JSON body and complains about the appid.
        raise Reject(41002) from None
    if body.get("grant_type") != "client_credential":
        raise Reject(40002)
    appid, secret = body.get("appid"), body.get("secret")
    if not appid:
        raise Reject(41002)
    app = state.app_by_appid.get(str(appid))
    if app is None:
        raise Reject(40013)
    if not secret:
        raise Reject(41004)
    if secret != state.credentials[app][1]:
        raise Reject(40125)
    force = body.get("force_refresh", False) is True
    token, expires_in = state.issue_stable_token(app, force)
    return json_response({"access_token": token, "expires_in": expires_in})


async def _template_send(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/message/template/send — official-account template message."""
    state.check_token(request.query.get("access_token"), ("oa",))
    body = await read_json(request)
    openid = str(body.get("touser") or "")
    if state.oa_unionid(openid) is None:
        raise Reject(40003)
    template_id = body.get("template_id")
    if not template_id or (
        state.template_ids is not None and template_id not in state.template_ids
    ):
        raise Reject(40037)
    values = check_data(body.get("data"))
    if openid in state.blocked_openids:
        raise Reject(43004)
    msgid = state.next_msgid
    state.next_msgid += 1
    state.record(
        {
            "kind": "template",
            "openid": openid,
            "template_id": template_id,
            "data": values,
            "url": body.get("url"),
            "miniprogram": body.get("miniprogram"),
            "msgid": msgid,
        }
    )
    # WeChat reports the outcome later, to the official account's server (receipts on)
    request.app[RECEIPTS_KEY].schedule(state, openid=openid, msgid=msgid)
    return json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})


async def _subscribe_send(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/message/subscribe/send — mini-program subscribe message."""
    state.check_token(request.query.get("access_token"), ("mp",))
    body = await read_json(request)
    openid = str(body.get("touser") or "")
    if not MP_OPENID_RE.match(openid):
        raise Reject(40003)
    template_id = body.get("template_id")
    if not template_id or (
        state.subscribe_template_ids is not None
        and template_id not in state.subscribe_template_ids
    ):
        raise Reject(40037)
    values = check_data(body.get("data"))
    mp_state = body.get("miniprogram_state")
    if mp_state is not None and mp_state not in ("developer", "trial", "formal"):
        raise Reject(47003, "miniprogram_state invalid")
    if openid in state.blocked_openids:
        raise Reject(43101)
    if state.strict_subscribe:
        key = (openid, str(template_id))
        left = state.subscribe_grants.get(key, 0)
        if left <= 0:
            raise Reject(43101)
        state.subscribe_grants[key] = left - 1
    msgid = state.next_msgid
    state.next_msgid += 1
    state.record(
        {
            "kind": "subscribe",
            "openid": openid,
            "template_id": template_id,
            "data": values,
            "page": body.get("page"),
            "miniprogram_state": mp_state,
            "msgid": msgid,
        }
    )
    return json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})


async def _custom_send(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/message/custom/send — customer-service message (OA or mini-program)."""
    app = state.check_token(request.query.get("access_token"), ("oa", "mp"))
    body = await read_json(request)
    openid = str(body.get("touser") or "")
    if app == "oa":
        known = state.oa_unionid(openid) is not None
    else:
        known = bool(MP_OPENID_RE.match(openid))
    if not known:
        raise Reject(40003)
    msgtype = body.get("msgtype")
    content: str | None = None
    if msgtype == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("content"), str):
            raise Reject(47001)
        content = text["content"]
        if not content:
            raise Reject(44004)
    elif not isinstance(msgtype, str) or not isinstance(body.get(msgtype), dict):
        raise Reject(47001)
    if openid in state.blocked_openids:
        raise Reject(45015)
    if state.strict_custom_window:
        window = state.interactions.get(openid)
        if window is None or state.clock() - window[0] > CUSTOM_WINDOW_SECONDS:
            raise Reject(45015)
        if window[1] <= 0:
            raise Reject(45047)
        window[1] -= 1
    state.record(
        {"kind": "custom", "app": app, "openid": openid, "msgtype": msgtype, "content": content}
    )
    return json_response({"errcode": 0, "errmsg": "ok"})


async def _user_info(request: web.Request, state: FakeWeChatState) -> web.Response:
    """GET /cgi-bin/user/info — official-account follower info."""
    state.check_token(request.query.get("access_token"), ("oa",))
    openid = request.query.get("openid", "")
    unionid = state.oa_unionid(openid)
    if unionid is None:
        raise Reject(40003)
    if openid in state.blocked_openids:
        return json_response({"subscribe": 0, "openid": openid, "unionid": unionid, "tagid_list": []})
    return json_response(
        {
            "subscribe": 1,
            "openid": openid,
            "language": request.query.get("lang", "zh_CN"),
            "subscribe_time": 1_700_000_000,
            "unionid": unionid,
            "remark": "",
            "groupid": 0,
            "tagid_list": [],
            "subscribe_scene": "ADD_SCENE_SEARCH",
            "qr_scene": 0,
            "qr_scene_str": "",
        }
    )


async def _menu_create(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/menu/create — 1..3 buttons, each with a type or 1..5 sub-buttons."""
    state.check_token(request.query.get("access_token"), ("oa",))
    body = await read_json(request)
    buttons = body.get("button")
    if not isinstance(buttons, list):
        raise Reject(47001)
    if not 1 <= len(buttons) <= 3:
        raise Reject(40016)
    for button in buttons:
        if not isinstance(button, dict) or not button.get("name"):
            raise Reject(40017)
        subs = button.get("sub_button")
        if subs:
            if not isinstance(subs, list) or len(subs) > 5:
                raise Reject(40023)
            if not all(isinstance(s, dict) and s.get("name") and s.get("type") for s in subs):
                raise Reject(40017)
        elif not button.get("type"):
            raise Reject(40017)
    state.menu = body
    return json_response({"errcode": 0, "errmsg": "ok"})


#: path, handler, POST only, answers as text/plain (WeChat's own quirk for code2Session)
API_ROUTES: list[tuple[str, Handler, bool, bool]] = [
    (P_CODE2SESSION, _jscode2session, False, True),
    (P_STABLE_TOKEN, _stable_token, True, False),
    (P_TEMPLATE, _template_send, True, False),
    (P_SUBSCRIBE, _subscribe_send, True, False),
    (P_CUSTOM, _custom_send, True, False),
    (P_USER_INFO, _user_info, False, False),
    (P_MENU_CREATE, _menu_create, True, False),
    (P_FACE_USERIDKEY, face_getuseridkey, True, False),
    (P_FACE_GETINFO, face_getinfo, True, False),
]


def add_api_routes(app: web.Application) -> None:
    """Register every WeChat API path, each wrapped with counters and faults."""
    for path, handler, post_only, text_plain in API_ROUTES:
        app.router.add_route(
            "*", path, _wrap(path, handler, post_only=post_only, text_plain=text_plain)
        )
