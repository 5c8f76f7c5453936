"""The fake's control endpoints (``/_fake/*``): how other processes (benchmarks, the
worker tests) reset it, queue faults, turn knobs, read what was sent, and play the
user's side of 人脸核身. In-process tests poke :class:`FakeWeChatState` directly."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from fakes.wechat.state import CUSTOM_QUOTA, FAKE_STATE_KEY

__all__ = ["add_control_routes"]


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _control_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


async def _ctl_reset(request: web.Request) -> web.Response:
    request.app[FAKE_STATE_KEY].reset()
    return web.json_response({"ok": True})


async def _ctl_faults(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE_KEY]
    try:
        body = await _control_body(request)
        path = str(body["path"])
        times = int(body.get("times", 1))
        if "http_status" in body:
            state.inject_http(path, int(body["http_status"]), times)
        else:
            state.inject(path, int(body["errcode"]), times)
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"need path and errcode (or http_status), times >= 1: {exc}")
    pending = {p: sum(e[1] for e in q) for p, q in state.faults.items() if q}
    return web.json_response({"ok": True, "pending": pending})


async def _ctl_config(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE_KEY]
    try:
        body = await _control_body(request)
        allowed = {
            "down",
            "stall_seconds",
            "transient_rate",
            "seed",
            "strict_subscribe",
            "strict_custom_window",
            "receipt_url",
            "receipt_token",
            "receipt_aes_key",
            "receipt_mode",
            "receipt_delay",
            "receipt_failures",
            "face_single_use",
        }
        unknown = set(body) - allowed
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        config = state.configure(**body)
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    return web.json_response(config)


async def _ctl_sent(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE_KEY]
    items = state.sent_messages(
        kind=request.query.get("kind"), openid=request.query.get("openid")
    )
    return web.json_response({"items": items, "total": len(items)}, dumps=_dumps)


async def _ctl_stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAKE_STATE_KEY].stats(), dumps=_dumps)


async def _ctl_expire_tokens(request: web.Request) -> web.Response:
    request.app[FAKE_STATE_KEY].expire_all_tokens()
    return web.json_response({"ok": True})


async def _ctl_block(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE_KEY]
    try:
        body = await _control_body(request)
        state.block(str(body["openid"]), bool(body.get("blocked", True)))
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"need openid: {exc}")
    return web.json_response({"ok": True, "blocked": sorted(state.blocked_openids)})


async def _ctl_subscribe_grants(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE_KEY]
    try:
        body = await _control_body(request)
        state.grant_subscribe(
            str(body["openid"]), str(body["template_id"]), int(body.get("times", 1))
        )
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"need openid and template_id: {exc}")
    return web.json_response({"ok": True})


async def _ctl_interactions(request: web.Request) -> web.Response:
    state = request.app[FAKE_STATE_KEY]
    try:
        body = await _control_body(request)
        state.record_interaction(str(body["openid"]), int(body.get("quota", CUSTOM_QUOTA)))
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"need openid: {exc}")
    return web.json_response({"ok": True})


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def _ctl_face_verify(request: web.Request) -> web.Response:
    """Play ``wx.startFacialRecognitionVerify`` for a user_id_key as an openid:
    ``{user_id_key, openid, identify_ret?}`` → ``{verify_result}``."""
    state = request.app[FAKE_STATE_KEY]
    try:
        body = await _control_body(request)
        verify_result = state.face.verify(
            str(body["user_id_key"]), str(body["openid"]), int(body.get("identify_ret", 0))
        )
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"need user_id_key of an open session and openid: {exc}")
    return web.json_response({"verify_result": verify_result})


def add_control_routes(app: web.Application) -> None:
    app.router.add_post("/_fake/reset", _ctl_reset, name="fake_reset")
    app.router.add_post("/_fake/faults", _ctl_faults, name="fake_faults")
    app.router.add_post("/_fake/config", _ctl_config, name="fake_config")
    app.router.add_get("/_fake/sent", _ctl_sent, name="fake_sent")
    app.router.add_get("/_fake/stats", _ctl_stats, name="fake_stats")
    app.router.add_post("/_fake/expire_tokens", _ctl_expire_tokens, name="fake_expire_tokens")
    app.router.add_post("/_fake/block", _ctl_block, name="fake_block")
    app.router.add_post("/_fake/subscribe_grants", _ctl_subscribe_grants, name="fake_grants")
    app.router.add_post("/_fake/interactions", _ctl_interactions, name="fake_interactions")
    app.router.add_post("/_fake/face/verify", _ctl_face_verify, name="fake_face_verify")
