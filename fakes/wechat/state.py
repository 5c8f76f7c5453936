"""Everything the fake WeChat remembers: :class:`FakeWeChatState`.

Tests read and poke it directly; other processes drive it over ``/_fake/*``
(:mod:`fakes.wechat.control`). Credentials are fixed at construction; :meth:`reset`
clears everything else. ``clock`` (unix seconds) is injectable so token expiry can be
tested without waiting.

Demo conventions (API.md "Demo mode and test doubles"): official-account openid
``oa-<user>`` is a follower with unionid ``union-<user>``; mini-program openids are
``demo-<user>``.
"""

from __future__ import annotations

import collections
import random
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from fakes.wechat.face import FaceState
from fakes.wechat.protocol import Reject, norm_path
from fakes.wechat.receipts import RECEIPT_MODES, RECEIPT_USER_BLOCK, build_receipt_push

__all__ = [
    "CUSTOM_QUOTA",
    "CUSTOM_WINDOW_SECONDS",
    "FAKE_STATE_KEY",
    "FORCE_REFRESH_INTERVAL",
    "FORCE_REFRESH_PER_DAY",
    "FakeWeChatState",
    "MP_OPENID_RE",
    "TOKEN_RENEW_BEFORE",
]

# getStableAccessToken: force-refresh mode is limited to 20 calls a day, at least 30 s
# apart ("否则不会刷新": a too-early call returns the current token unchanged); in normal
# mode the platform renews 5 minutes before expiry and both tokens stay valid meanwhile.
FORCE_REFRESH_PER_DAY = 20
FORCE_REFRESH_INTERVAL = 30.0
TOKEN_RENEW_BEFORE = 300.0

# Customer-service messages: 5 within 48 h after the user writes (客服消息下发规则).
CUSTOM_WINDOW_SECONDS = 48 * 3600
CUSTOM_QUOTA = 5

MP_OPENID_RE = re.compile(r"^demo-([A-Za-z0-9]+)$")
_OA_OPENID_RE = re.compile(r"^oa-([A-Za-z0-9]+)$")
_BEIJING = timezone(timedelta(hours=8))



@dataclass
class _Token:
    app: str
    expires_at: float
    revoked: bool = False


class FakeWeChatState:
    """Everything the fake remembers (see the module docstring)."""

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
        self.app_by_appid = {appid: app for app, (appid, _) in self.credentials.items()}
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
        self.face = FaceState(lambda: self.clock())  # 人脸核身 (fakes.wechat.face)
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
        self.face.reset()

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
        self.faults.setdefault(norm_path(path), collections.deque()).append([fault, times])

    def pop_fault(self, path: str) -> tuple[str, int] | None:
        """The next queued fault for ``path`` (``("errcode" | "http", value)``), if any."""
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
        face_single_use: bool | None = None,
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
        if face_single_use is not None:
            self.face.single_use = bool(face_single_use)
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
            "face_single_use": self.face.single_use,
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
        return build_receipt_push(self, openid=openid, msgid=msgid)


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

    def issue_stable_token(self, app: str, force: bool) -> tuple[str, int]:
        """getStableAccessToken's rules: ``(token, expires_in)`` for ``app``."""
        now = self.clock()
        current = self.current_token.get(app)
        record = self.tokens.get(current) if current else None
        if force:
            day = datetime.fromtimestamp(now, _BEIJING).date().isoformat()
            last_day, count, last_at = self.force_refreshes.get(app, ("", 0, float("-inf")))
            if last_day != day:
                count = 0
            if count >= FORCE_REFRESH_PER_DAY:
                raise Reject(45009)
            if record is not None and now - last_at < FORCE_REFRESH_INTERVAL:
                # Too soon after the last forced refresh: WeChat does not refresh.
                if not record.revoked and record.expires_at > now:
                    return current, int(record.expires_at - now)  # type: ignore[return-value]  # record ⇒ current
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
            return current, int(record.expires_at - now)  # type: ignore[return-value]  # record ⇒ current
        # Renewal (or first issue): the old token stays valid until its own expiry.
        token = self._issue_token(app, now)
        return token, self.token_ttl

    def check_token(self, token: str | None, apps: Iterable[str]) -> str:
        """The app (``mp`` / ``oa``) a call's access token belongs to, if one of ``apps``."""
        if not token:
            raise Reject(41001)
        record = self.tokens.get(token)
        if record is None or record.revoked:
            raise Reject(40001)
        if record.expires_at <= self.clock():
            raise Reject(42001)
        if record.app not in apps:
            raise Reject(48001)
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

    def record(self, message: dict[str, Any]) -> None:
        """Remember one accepted message (``sent``, ``sent_counts``)."""
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


FAKE_STATE_KEY = web.AppKey("fake_wechat_state", FakeWeChatState)
