"""A faithful local fake of the WeChat server APIs, as a real aiohttp application.

Used by tests, benchmarks and the demo server (in-process on 127.0.0.1). It answers
the paths :mod:`server.gateways.wechat` calls with WeChat's JSON shapes, errcodes and
quirks (``text/plain`` JSON from jscode2session, ``errmsg`` with a ``rid`` suffix,
errcode 0 bodies with HTTP 200, stable_token's force-refresh limits).

Demo conventions (API.md "Demo mode and test doubles"):

* login code ``demo-<user>-<anything>`` (``<user>`` letters and digits) works once
  (reuse → 40163) and maps to openid ``demo-<user>``, unionid ``union-<user>``;
  any other code → 40029;
* official-account openid ``oa-<user>`` is a follower with unionid ``union-<user>``;
* template messages go to ``oa-*`` openids, subscribe messages to ``demo-*`` openids.

Everything the fake remembers lives in :class:`FakeWeChatState`; tests poke it
directly, other processes drive it over ``/_fake/*``. Every call is O(1) and nothing
sleeps unless ``stall_seconds`` is set, so benchmarks can run against it.

Delivery receipts (optional): with ``receipt_url`` set (constructor, :meth:`configure`
or ``/_fake/config``) every accepted template message is followed, ``receipt_delay``
seconds later, by one TEMPLATESENDJOBFINISH event POSTed to that URL, signed (and in
``compat`` / ``safe`` mode encrypted) with the official account's Token and
EncodingAESKey exactly as WeChat pushes it (:class:`bot.simulator.WeChatSimulator`).
Status is ``success``, or what ``receipt_failures`` says for the openid. A callback
that fails is logged and counted in ``stats()["receipts"]``, never raised.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import os
import random
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
from aiohttp import web

__all__ = [
    "ERRMSG",
    "FAKE_STATE_KEY",
    "FakeWeChatState",
    "RECEIPT_SUCCESS",
    "RECEIPT_SYSTEM_FAILED",
    "RECEIPT_USER_BLOCK",
    "create_fake_wechat_app",
    "start_fake_wechat",
]

log = logging.getLogger(__name__)

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
}

P_CODE2SESSION = "/sns/jscode2session"
P_STABLE_TOKEN = "/cgi-bin/stable_token"
P_TEMPLATE = "/cgi-bin/message/template/send"
P_SUBSCRIBE = "/cgi-bin/message/subscribe/send"
P_CUSTOM = "/cgi-bin/message/custom/send"
P_USER_INFO = "/cgi-bin/user/info"
P_MENU_CREATE = "/cgi-bin/menu/create"

# getStableAccessToken: force-refresh mode is limited to 20 calls a day, at least 30 s
# apart ("否则不会刷新": a too-early call returns the current token unchanged); in normal
# mode the platform renews 5 minutes before expiry and both tokens stay valid meanwhile.
FORCE_REFRESH_PER_DAY = 20
FORCE_REFRESH_INTERVAL = 30.0
TOKEN_RENEW_BEFORE = 300.0

# Customer-service messages: 5 within 48 h after the user writes (客服消息下发规则).
CUSTOM_WINDOW_SECONDS = 48 * 3600
CUSTOM_QUOTA = 5

_CODE_RE = re.compile(r"^demo-([A-Za-z0-9]+)-(.+)$")
_MP_OPENID_RE = re.compile(r"^demo-([A-Za-z0-9]+)$")
_OA_OPENID_RE = re.compile(r"^oa-([A-Za-z0-9]+)$")
_KEY_RE = re.compile(r"^([a-z_]+?)(\d+)$")
_BEIJING = timezone(timedelta(hours=8))

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

# TEMPLATESENDJOBFINISH statuses (模板消息 事件推送: 送达成功 / 用户拒收 / 其他原因失败).
RECEIPT_SUCCESS = "success"
RECEIPT_USER_BLOCK = "failed:user block"
RECEIPT_SYSTEM_FAILED = "failed: system failed"
RECEIPT_MODES = ("plain", "compat", "safe")
# WeChatCrypto wants a key even when nothing is encrypted (plain mode): any valid one.
_UNUSED_AES_KEY = base64.b64encode(bytes(32)).decode()[:43]

FAKE_STATE_KEY = web.AppKey("fake_wechat_state", "FakeWeChatState")


@dataclass
class _Token:
    app: str
    expires_at: float
    revoked: bool = False


class _Reject(Exception):
    """Internal: answer with this errcode (and optional errmsg detail)."""

    def __init__(self, errcode: int, detail: str = "") -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.detail = detail


class FakeWeChatState:
    """Everything the fake remembers. Tests read and poke it directly.

    Credentials are fixed at construction; :meth:`reset` clears everything else.
    ``clock`` (unix seconds) is injectable so token expiry can be tested without waiting.
    """

    def __init__(
        self,
        *,
        mp_appid: str = "wxdemo_mp",
        mp_secret: str = "demo-mp-secret",
        oa_appid: str = "wxdemo_oa",
        oa_secret: str = "demo-oa-secret",
        token_ttl: int = 7200,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        max_sent: int = 100_000,
        receipt_url: str | None = None,
        receipt_token: str = "",
        receipt_aes_key: str = "",
        receipt_mode: str = "plain",
        receipt_delay: float = 0.2,
    ) -> None:
        self.credentials: dict[str, tuple[str, str]] = {
            "mp": (mp_appid, mp_secret),
            "oa": (oa_appid, oa_secret),
        }
        self._app_by_appid = {appid: app for app, (appid, _) in self.credentials.items()}
        self.token_ttl = token_ttl
        self.seed = seed
        self.clock = clock
        self.max_sent = max_sent
        # the receipt callback (our official account's server URL and its secrets) is
        # configuration like the credentials: reset() keeps it
        self.receipt_url: str | None = None
        self.receipt_token = ""
        self.receipt_aes_key = ""
        self.receipt_mode = "plain"
        self.receipt_delay = 0.2
        self.reset()
        self.configure(
            receipt_url=receipt_url or "", receipt_token=receipt_token,
            receipt_aes_key=receipt_aes_key, receipt_mode=receipt_mode, receipt_delay=receipt_delay,
        )

    def reset(self) -> None:
        """Forget everything but the credentials and configuration knobs' defaults."""
        # login
        self.used_codes: set[str] = set()
        self.session_keys: dict[str, str] = {}
        self.risky_users: set[str] = set()  # <user> whose login is blocked (40226)
        # tokens
        self.tokens: dict[str, _Token] = {}
        self.current_token: dict[str, str] = {}
        self.force_refreshes: dict[str, tuple[str, int, float]] = {}  # app → (day, n, last)
        self.tokens_issued = 0
        # messages
        self.sent: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.max_sent)
        self.sent_counts: collections.Counter[str] = collections.Counter()
        self.next_msgid = 1_000_000
        self.blocked_openids: set[str] = set()
        self.followers: dict[str, str] = {}  # extra OA followers: openid → unionid
        self.template_ids: set[str] | None = None  # None: any template id is accepted
        self.subscribe_template_ids: set[str] | None = None
        self.strict_subscribe = False  # True: subscribe sends need a grant per message
        self.subscribe_grants: dict[tuple[str, str], int] = {}
        self.strict_custom_window = False  # True: custom sends need a recent interaction
        self.interactions: dict[str, list[float]] = {}  # openid → [at, remaining]
        self.menu: dict[str, Any] | None = None
        # delivery receipts: openid → status other than success; counters
        self.receipt_failures: dict[str, str] = {}
        self.receipts: collections.Counter[str] = collections.Counter()
        # counters and faults
        self.calls: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.faults: dict[str, collections.deque[list[Any]]] = {}
        self.down = False
        self.stall_seconds = 0.0
        self.transient_rate = 0.0
        self.rng = random.Random(self.seed)

    # ---- fault injection ------------------------------------------------------------

    def inject(self, path: str, errcode: int, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``path`` with ``errcode`` (queued, FIFO)."""
        self._queue_fault(path, ("errcode", errcode), times)

    def inject_http(self, path: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``path`` with a bare HTTP ``status``."""
        self._queue_fault(path, ("http", status), times)

    def _queue_fault(self, path: str, fault: tuple[str, int], times: int) -> None:
        if times < 1:
            raise ValueError("times must be >= 1")
        self.faults.setdefault(_norm_path(path), collections.deque()).append([fault, times])

    def _pop_fault(self, path: str) -> tuple[str, int] | None:
        queue = self.faults.get(path)
        if not queue:
            return None
        entry = queue[0]
        entry[1] -= 1
        if entry[1] <= 0:
            queue.popleft()
        fault: tuple[str, int] = entry[0]
        return fault

    def configure(
        self,
        *,
        down: bool | None = None,
        stall_seconds: float | None = None,
        transient_rate: float | None = None,
        seed: int | None = None,
        strict_subscribe: bool | None = None,
        strict_custom_window: bool | None = None,
        receipt_url: str | None = None,
        receipt_token: str | None = None,
        receipt_aes_key: str | None = None,
        receipt_mode: str | None = None,
        receipt_delay: float | None = None,
        receipt_failures: Iterable[str] | dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Set the knobs given; return the whole configuration.

        ``receipt_url=""`` turns receipts off. ``receipt_failures`` replaces the map of
        openids whose receipts fail: a list of openids (``failed:user block``) or
        ``{openid: status}``.
        """
        self._configure_receipts(
            url=receipt_url, token=receipt_token, aes_key=receipt_aes_key,
            mode=receipt_mode, delay=receipt_delay,
        )
        if receipt_failures is not None:
            if isinstance(receipt_failures, dict):
                failures = {str(k): str(v) for k, v in receipt_failures.items()}
            elif isinstance(receipt_failures, str):
                raise ValueError("receipt_failures must be a list of openids or a mapping")
            else:
                failures = {str(openid): RECEIPT_USER_BLOCK for openid in receipt_failures}
            self.receipt_failures = failures
        if down is not None:
            self.down = bool(down)
        if stall_seconds is not None:
            if stall_seconds < 0:
                raise ValueError("stall_seconds must be >= 0")
            self.stall_seconds = float(stall_seconds)
        if transient_rate is not None:
            if not 0.0 <= transient_rate <= 1.0:
                raise ValueError("transient_rate must be within [0, 1]")
            self.transient_rate = float(transient_rate)
        if seed is not None:
            self.seed = int(seed)
            self.rng = random.Random(self.seed)
        if strict_subscribe is not None:
            self.strict_subscribe = bool(strict_subscribe)
        if strict_custom_window is not None:
            self.strict_custom_window = bool(strict_custom_window)
        return self.config()

    def config(self) -> dict[str, Any]:
        """Current knob values."""
        return {
            "down": self.down,
            "stall_seconds": self.stall_seconds,
            "transient_rate": self.transient_rate,
            "seed": self.seed,
            "strict_subscribe": self.strict_subscribe,
            "strict_custom_window": self.strict_custom_window,
            "receipt_url": self.receipt_url,
            "receipt_mode": self.receipt_mode,
            "receipt_delay": self.receipt_delay,
            "receipt_failures": dict(self.receipt_failures),
        }

    # ---- delivery receipts ------------------------------------------------------------

    def _configure_receipts(
        self,
        *,
        url: str | None,
        token: str | None,
        aes_key: str | None,
        mode: str | None,
        delay: float | None,
    ) -> None:
        """Validate first, then apply: a bad value changes nothing."""
        new_mode = self.receipt_mode if mode is None else mode
        new_key = self.receipt_aes_key if aes_key is None else str(aes_key)
        if new_mode not in RECEIPT_MODES:
            raise ValueError(f"receipt_mode must be one of {RECEIPT_MODES}")
        if new_mode != "plain" and len(new_key) != 43:
            raise ValueError("receipt_mode compat / safe needs a 43-character receipt_aes_key")
        if delay is not None and delay < 0:
            raise ValueError("receipt_delay must be >= 0")
        if url is not None:
            self.receipt_url = str(url) or None
        if token is not None:
            self.receipt_token = str(token)
        self.receipt_aes_key = new_key
        self.receipt_mode = new_mode
        if delay is not None:
            self.receipt_delay = float(delay)

    def fail_receipts(self, openid: str, status: str | None = RECEIPT_USER_BLOCK) -> None:
        """Receipts for ``openid`` say ``status`` from now on (None: ``success`` again)."""
        if status is None:
            self.receipt_failures.pop(openid, None)
        else:
            self.receipt_failures[openid] = status

    def receipt_push(self, *, openid: str, msgid: int) -> tuple[str, dict[str, str], bytes]:
        """The signed TEMPLATESENDJOBFINISH push for one accepted template message:
        ``(url, query, body)``. Call only with ``receipt_url`` set."""
        from bot.simulator import WeChatSimulator, event_xml

        assert self.receipt_url is not None
        status = self.receipt_failures.get(openid, RECEIPT_SUCCESS)
        xml = event_xml(
            "TEMPLATESENDJOBFINISH",
            openid=openid,
            extra={"MsgID": str(msgid), "Status": status},
        )
        simulator = WeChatSimulator(
            token=self.receipt_token,
            appid=self.credentials["oa"][0],
            encoding_aes_key=self.receipt_aes_key or _UNUSED_AES_KEY,
        )
        push = simulator.push(xml, self.receipt_mode)  # type: ignore[arg-type]
        return self.receipt_url, push.query, push.body

    # ---- tokens -----------------------------------------------------------------------

    def expire_all_tokens(self) -> None:
        """Make every issued token expired: later calls with them get 42001."""
        past = self.clock() - 1
        for record in self.tokens.values():
            record.expires_at = min(record.expires_at, past)

    def _issue_token(self, app: str, now: float) -> str:
        token = secrets.token_urlsafe(48)
        self.tokens[token] = _Token(app=app, expires_at=now + self.token_ttl)
        self.current_token[app] = token
        self.tokens_issued += 1
        return token

    def _stable_token(self, app: str, force: bool) -> tuple[str, int]:
        now = self.clock()
        current = self.current_token.get(app)
        record = self.tokens.get(current) if current else None
        if force:
            day = datetime.fromtimestamp(now, _BEIJING).date().isoformat()
            last_day, count, last_at = self.force_refreshes.get(app, ("", 0, float("-inf")))
            if last_day != day:
                count = 0
            if count >= FORCE_REFRESH_PER_DAY:
                raise _Reject(45009)
            if record is not None and now - last_at < FORCE_REFRESH_INTERVAL:
                # Too soon after the last forced refresh: WeChat does not refresh.
                if not record.revoked and record.expires_at > now:
                    return current, int(record.expires_at - now)  # type: ignore[return-value]
            self.force_refreshes[app] = (day, count + 1, now)
            for rec in self.tokens.values():
                if rec.app == app:
                    rec.revoked = True
            token = self._issue_token(app, now)
            return token, self.token_ttl
        if (
            record is not None
            and not record.revoked
            and record.expires_at - now > TOKEN_RENEW_BEFORE
        ):
            return current, int(record.expires_at - now)  # type: ignore[return-value]
        # Renewal (or first issue): the old token stays valid until its own expiry.
        token = self._issue_token(app, now)
        return token, self.token_ttl

    def _check_token(self, token: str | None, apps: Iterable[str]) -> str:
        if not token:
            raise _Reject(41001)
        record = self.tokens.get(token)
        if record is None or record.revoked:
            raise _Reject(40001)
        if record.expires_at <= self.clock():
            raise _Reject(42001)
        if record.app not in apps:
            raise _Reject(48001)
        return record.app

    # ---- people -----------------------------------------------------------------------

    def block(self, openid: str, blocked: bool = True) -> None:
        """Block (or unblock) an openid: subscribe → 43101, template → 43004,
        custom → 45015, and user/info reports ``subscribe: 0`` for ``oa-*``."""
        if blocked:
            self.blocked_openids.add(openid)
        else:
            self.blocked_openids.discard(openid)

    def add_follower(self, openid: str, unionid: str) -> None:
        """Register an official-account follower outside the ``oa-<user>`` convention."""
        self.followers[openid] = unionid

    def grant_subscribe(self, openid: str, template_id: str, times: int = 1) -> None:
        """The user accepted ``times`` one-time subscriptions (used when strict_subscribe)."""
        key = (openid, template_id)
        self.subscribe_grants[key] = self.subscribe_grants.get(key, 0) + times

    def record_interaction(self, openid: str, quota: int = CUSTOM_QUOTA) -> None:
        """The user just wrote to the account: opens the customer-service window."""
        self.interactions[openid] = [self.clock(), float(quota)]

    def oa_unionid(self, openid: str) -> str | None:
        """Unionid of an official-account follower, or None for an unknown openid."""
        if openid in self.followers:
            return self.followers[openid]
        match = _OA_OPENID_RE.match(openid)
        return f"union-{match.group(1)}" if match else None

    # ---- records ----------------------------------------------------------------------

    def sent_messages(
        self, *, kind: str | None = None, openid: str | None = None
    ) -> list[dict[str, Any]]:
        """Sent messages, oldest first, optionally filtered."""
        return [
            m
            for m in self.sent
            if (kind is None or m["kind"] == kind) and (openid is None or m["openid"] == openid)
        ]

    def _record(self, message: dict[str, Any]) -> None:
        message["at"] = self.clock()
        self.sent.append(message)
        self.sent_counts[message["kind"]] += 1

    def stats(self) -> dict[str, Any]:
        """Call and error counters per path, sent counts per kind, token counts."""
        return {
            "calls": dict(self.calls),
            "errors": dict(self.errors),
            "sent": dict(self.sent_counts),
            "tokens_issued": self.tokens_issued,
            "force_refreshes": {app: v[1] for app, v in self.force_refreshes.items()},
            "receipts": {
                k: self.receipts[k] for k in ("scheduled", "posted", "failed", "cancelled")
            },
        }


# ---- helpers --------------------------------------------------------------------------


def _norm_path(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _rid() -> str:
    return f"{os.urandom(4).hex()}-{os.urandom(4).hex()}-{os.urandom(4).hex()}"


def _json(payload: dict[str, Any], *, text_plain: bool = False) -> web.Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return web.Response(
        body=body,
        content_type="text/plain" if text_plain else "application/json",
        charset="utf-8",
    )


def _error(errcode: int, detail: str = "", *, text_plain: bool = False) -> web.Response:
    msg = ERRMSG.get(errcode, "unknown error")
    if detail:
        msg = f"{msg} {detail}"
    return _json({"errcode": errcode, "errmsg": f"{msg} rid: {_rid()}"}, text_plain=text_plain)


async def _read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        raise _Reject(44002)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Reject(47001) from None
    if not isinstance(data, dict):
        raise _Reject(47001)
    return data


def _check_data(data: Any) -> dict[str, str]:
    """Validate ``{"key": {"value": ...}}`` and return the plain values (47003 if bad)."""
    if not isinstance(data, dict):
        raise _Reject(47003, "data invalid")
    values: dict[str, str] = {}
    for key, item in data.items():
        if not isinstance(item, dict) or "value" not in item:
            raise _Reject(47003, f"data.{key} invalid")
        value = item["value"]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise _Reject(47003, f"data.{key}.value invalid")
        text = str(value)
        match = _KEY_RE.match(key)
        if match and match.group(1) in _KEYWORD_RULES:
            max_len, pattern = _KEYWORD_RULES[match.group(1)]
            if match.group(1) == "name" and not text.isascii():
                max_len = 10
            if not text or len(text) > max_len or (pattern and not pattern.match(text)):
                raise _Reject(47003, f"data.{key}.value invalid")
        values[key] = text
    return values


Handler = Callable[[web.Request, FakeWeChatState], Awaitable[web.Response]]


class _ReceiptSender:
    """Posts delivery receipts in the background, on the fake app's own ClientSession
    (opened at the first receipt, closed with the app, pending posts cancelled)."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def schedule(self, state: FakeWeChatState, *, openid: str, msgid: int) -> None:
        if state.receipt_url is None:
            return
        push = state.receipt_push(openid=openid, msgid=msgid)
        state.receipts["scheduled"] += 1
        task = asyncio.create_task(self._post(state, state.receipt_delay, *push))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post(
        self, state: FakeWeChatState, delay: float, url: str, query: dict[str, str], body: bytes
    ) -> None:
        try:
            await asyncio.sleep(delay)
            if self.session is None:
                # WeChat gives the server 5 s to answer a push
                self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            async with self.session.post(
                url, params=query, data=body, headers={"Content-Type": "text/xml"}
            ) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
        except asyncio.CancelledError:
            state.receipts["cancelled"] += 1
            raise
        except Exception as exc:  # a receipt that cannot be delivered never breaks sending
            state.receipts["failed"] += 1
            log.warning("fake WeChat: receipt POST to %s failed: %r", url, exc)
        else:
            state.receipts["posted"] += 1

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
            self.session = None


RECEIPTS_KEY = web.AppKey("fake_wechat_receipts", _ReceiptSender)


async def _receipts_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[RECEIPTS_KEY].close()


def _api(
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
        fault = state._pop_fault(path)
        if fault is not None:
            state.errors[path] += 1
            kind, value = fault
            if kind == "http":
                return web.Response(status=value, text=f"{value} injected")
            return _error(value, text_plain=text_plain)
        if state.transient_rate > 0 and state.rng.random() < state.transient_rate:
            state.errors[path] += 1
            return _error(-1, text_plain=text_plain)
        if post_only and request.method != "POST":
            state.errors[path] += 1
            return _error(43002, text_plain=text_plain)
        try:
            return await handler(request, state)
        except _Reject as rej:
            state.errors[path] += 1
            return _error(rej.errcode, rej.detail, text_plain=text_plain)

    return wrapped


# ---- WeChat API handlers ----------------------------------------------------------------


async def _jscode2session(request: web.Request, state: FakeWeChatState) -> web.Response:
    """GET /sns/jscode2session — code2Session; WeChat answers it as text/plain."""
    q = request.query
    appid, secret = q.get("appid"), q.get("secret")
    if not appid:
        raise _Reject(41002)
    if state._app_by_appid.get(appid) != "mp":
        raise _Reject(40013)
    if not secret:
        raise _Reject(41004)
    if secret != state.credentials["mp"][1]:
        raise _Reject(40125)
    if q.get("grant_type") != "authorization_code":
        raise _Reject(40002)
    code = q.get("js_code")
    if not code:
        raise _Reject(41008)
    match = _CODE_RE.match(code)
    if match is None:
        raise _Reject(40029)
    user = match.group(1)
    if user in state.risky_users:
        raise _Reject(40226)
    if code in state.used_codes:
        raise _Reject(40163)
    state.used_codes.add(code)
    openid = f"demo-{user}"
    session_key = base64.b64encode(os.urandom(16)).decode()
    state.session_keys[openid] = session_key
    return _json(
        {"session_key": session_key, "openid": openid, "unionid": f"union-{user}"},
        text_plain=True,
    )


async def _stable_token(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/stable_token — getStableAccessToken (JSON body only)."""
    try:
        body = await _read_json(request)
    except _Reject:
        # WeChat reads nothing from a non-JSON body and complains about the appid.
        raise _Reject(41002) from None
    if body.get("grant_type") != "client_credential":
        raise _Reject(40002)
    appid, secret = body.get("appid"), body.get("secret")
    if not appid:
        raise _Reject(41002)
    app = state._app_by_appid.get(str(appid))
    if app is None:
        raise _Reject(40013)
    if not secret:
        raise _Reject(41004)
    if secret != state.credentials[app][1]:
        raise _Reject(40125)
    force = body.get("force_refresh", False) is True
    token, expires_in = state._stable_token(app, force)
    return _json({"access_token": token, "expires_in": expires_in})


async def _template_send(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/message/template/send — official-account template message."""
    state._check_token(request.query.get("access_token"), ("oa",))
    body = await _read_json(request)
    openid = str(body.get("touser") or "")
    if state.oa_unionid(openid) is None:
        raise _Reject(40003)
    template_id = body.get("template_id")
    if not template_id or (
        state.template_ids is not None and template_id not in state.template_ids
    ):
        raise _Reject(40037)
    values = _check_data(body.get("data"))
    if openid in state.blocked_openids:
        raise _Reject(43004)
    msgid = state.next_msgid
    state.next_msgid += 1
    state._record(
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
    return _json({"errcode": 0, "errmsg": "ok", "msgid": msgid})


async def _subscribe_send(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/message/subscribe/send — mini-program subscribe message."""
    state._check_token(request.query.get("access_token"), ("mp",))
    body = await _read_json(request)
    openid = str(body.get("touser") or "")
    if not _MP_OPENID_RE.match(openid):
        raise _Reject(40003)
    template_id = body.get("template_id")
    if not template_id or (
        state.subscribe_template_ids is not None
        and template_id not in state.subscribe_template_ids
    ):
        raise _Reject(40037)
    values = _check_data(body.get("data"))
    mp_state = body.get("miniprogram_state")
    if mp_state is not None and mp_state not in ("developer", "trial", "formal"):
        raise _Reject(47003, "miniprogram_state invalid")
    if openid in state.blocked_openids:
        raise _Reject(43101)
    if state.strict_subscribe:
        key = (openid, str(template_id))
        left = state.subscribe_grants.get(key, 0)
        if left <= 0:
            raise _Reject(43101)
        state.subscribe_grants[key] = left - 1
    msgid = state.next_msgid
    state.next_msgid += 1
    state._record(
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
    return _json({"errcode": 0, "errmsg": "ok", "msgid": msgid})


async def _custom_send(request: web.Request, state: FakeWeChatState) -> web.Response:
    """POST /cgi-bin/message/custom/send — customer-service message (OA or mini-program)."""
    app = state._check_token(request.query.get("access_token"), ("oa", "mp"))
    body = await _read_json(request)
    openid = str(body.get("touser") or "")
    if app == "oa":
        known = state.oa_unionid(openid) is not None
    else:
        known = bool(_MP_OPENID_RE.match(openid))
    if not known:
        raise _Reject(40003)
    msgtype = body.get("msgtype")
    content: str | None = None
    if msgtype == "text":
        text = body.get("text")
        if not isinstance(text, dict) or not isinstance(text.get("content"), str):
            raise _Reject(47001)
        content = text["content"]
        if not content:
            raise _Reject(44004)
    elif not isinstance(msgtype, str) or not isinstance(body.get(msgtype), dict):
        raise _Reject(47001)
    if openid in state.blocked_openids:
        raise _Reject(45015)
    if state.strict_custom_window:
        window = state.interactions.get(openid)
        if window is None or state.clock() - window[0] > CUSTOM_WINDOW_SECONDS:
            raise _Reject(45015)
        if window[1] <= 0:
            raise _Reject(45047)
        window[1] -= 1
    state._record(
        {"kind": "custom", "app": app, "openid": openid, "msgtype": msgtype, "content": content}
    )
    return _json({"errcode": 0, "errmsg": "ok"})


async def _user_info(request: web.Request, state: FakeWeChatState) -> web.Response:
    """GET /cgi-bin/user/info — official-account follower info."""
    state._check_token(request.query.get("access_token"), ("oa",))
    openid = request.query.get("openid", "")
    unionid = state.oa_unionid(openid)
    if unionid is None:
        raise _Reject(40003)
    if openid in state.blocked_openids:
        return _json({"subscribe": 0, "openid": openid, "unionid": unionid, "tagid_list": []})
    return _json(
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
    state._check_token(request.query.get("access_token"), ("oa",))
    body = await _read_json(request)
    buttons = body.get("button")
    if not isinstance(buttons, list):
        raise _Reject(47001)
    if not 1 <= len(buttons) <= 3:
        raise _Reject(40016)
    for button in buttons:
        if not isinstance(button, dict) or not button.get("name"):
            raise _Reject(40017)
        subs = button.get("sub_button")
        if subs:
            if not isinstance(subs, list) or len(subs) > 5:
                raise _Reject(40023)
            if not all(isinstance(s, dict) and s.get("name") and s.get("type") for s in subs):
                raise _Reject(40017)
        elif not button.get("type"):
            raise _Reject(40017)
    state.menu = body
    return _json({"errcode": 0, "errmsg": "ok"})


# ---- control endpoints (/_fake/*) -------------------------------------------------------


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


# ---- app factory ----------------------------------------------------------------------


def create_fake_wechat_app(state: FakeWeChatState | None = None) -> web.Application:
    """Build the fake WeChat application; its state is ``app[FAKE_STATE_KEY]``."""
    app = web.Application()
    app[FAKE_STATE_KEY] = state if state is not None else FakeWeChatState()
    app[RECEIPTS_KEY] = _ReceiptSender()
    app.cleanup_ctx.append(_receipts_ctx)
    api: list[tuple[str, Handler, bool, bool]] = [
        # path, handler, post_only, text/plain answers
        (P_CODE2SESSION, _jscode2session, False, True),
        (P_STABLE_TOKEN, _stable_token, True, False),
        (P_TEMPLATE, _template_send, True, False),
        (P_SUBSCRIBE, _subscribe_send, True, False),
        (P_CUSTOM, _custom_send, True, False),
        (P_USER_INFO, _user_info, False, False),
        (P_MENU_CREATE, _menu_create, True, False),
    ]
    for path, handler, post_only, text_plain in api:
        app.router.add_route(
            "*", path, _api(path, handler, post_only=post_only, text_plain=text_plain)
        )
    app.router.add_post("/_fake/reset", _ctl_reset, name="fake_reset")
    app.router.add_post("/_fake/faults", _ctl_faults, name="fake_faults")
    app.router.add_post("/_fake/config", _ctl_config, name="fake_config")
    app.router.add_get("/_fake/sent", _ctl_sent, name="fake_sent")
    app.router.add_get("/_fake/stats", _ctl_stats, name="fake_stats")
    app.router.add_post("/_fake/expire_tokens", _ctl_expire_tokens, name="fake_expire_tokens")
    app.router.add_post("/_fake/block", _ctl_block, name="fake_block")
    app.router.add_post("/_fake/subscribe_grants", _ctl_subscribe_grants, name="fake_grants")
    app.router.add_post("/_fake/interactions", _ctl_interactions, name="fake_interactions")
    return app


async def start_fake_wechat(
    host: str = "127.0.0.1", port: int = 0, state: FakeWeChatState | None = None
) -> tuple[web.AppRunner, str, FakeWeChatState]:
    """Start the fake on ``host:port`` (0: any free port).

    Returns ``(runner, base_url, state)``; the caller must ``await runner.cleanup()``.
    Handlers are cancelled when the client goes away, so a stalled call does not hold
    up shutdown after the client timed out.
    """
    state = state if state is not None else FakeWeChatState()
    app = create_fake_wechat_app(state)
    runner = web.AppRunner(
        app, handler_cancellation=True, shutdown_timeout=2.0, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return runner, f"http://{host}:{bound_port}", state
