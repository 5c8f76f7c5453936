"""Request signing of the institution webhook (API.md "Institutions").

Headers: ``X-Institution-Code``, ``X-Timestamp`` (unix seconds, ±window),
``X-Nonce`` (single use), ``X-Signature`` = hex HMAC-SHA256(secret,
``timestamp + "\\n" + nonce + "\\n" + raw body``).

Everything is checked BEFORE anything is recorded: a bad signature, an unknown or
inactive institution, a stale timestamp or a replayed nonce answers 401 and changes
nothing (the nonce is only remembered once the signature is good, so a forger cannot
burn a real client's nonces). Nonces live in Redis (SET NX) for longer than the window,
so a replay inside the window is always caught and one outside it fails the timestamp.

Who the caller is (active? its secret?) is the domain's answer
(``server.domain.institutions.InstitutionDirectory``, under ``keys.institution_directory_key``);
this module only reads headers, checks the signature and the nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Awaitable, Callable

from aiohttp import web

from server import keys
from server.consttime import same
from server.domain.clock import cn_iso
from server.domain.errors import DomainError
from server.domain.institutions import InstitutionDirectory
from server.http_errors import Unauthenticated

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_NONCE_RE = re.compile(r"^[A-Za-z0-9_\-]{8,64}$")
_TS_RE = re.compile(r"[0-9]{1,12}")


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The signature a caller sends (also used by the tests and the benchmark)."""
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _refuse(code: str, message: str) -> DomainError:
    return Unauthenticated(code, message, challenge="HMAC-SHA256")


@web.middleware
async def verify_signature(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate the calling institution or answer 401 (see module doc)."""
    code = request.headers.get("X-Institution-Code", "")
    ts = request.headers.get("X-Timestamp", "")
    nonce = request.headers.get("X-Nonce", "")
    signature = request.headers.get("X-Signature", "")
    if not (code and ts and nonce and signature):
        raise _refuse(
            "SIGNATURE_MISSING",
            "缺少签名请求头(X-Institution-Code、X-Timestamp、X-Nonce、X-Signature)",
        )
    settings = request.config_dict[keys.settings_key]
    window = settings.institution.signature_window_seconds
    directory = request.config_dict[keys.institution_directory_key]
    assert isinstance(directory, InstitutionDirectory)
    now = directory.wall()
    # ASCII seconds only: str.isdigit() also says yes to "²" (int() then raised: a 500)
    if not _TS_RE.fullmatch(ts) or abs(now - int(ts)) > window:
        # either clock may be the wrong one: say what ours reads, so the institution's
        # operators can tell (X-Server-Time, unix seconds, and in the message)
        raise Unauthenticated(
            "TIMESTAMP_EXPIRED",
            f"请求时间戳无效或超出允许范围(±{window} 秒),请校准系统时间"
            f"(服务器时间 {cn_iso(datetime.fromtimestamp(now, UTC))})",
            challenge="HMAC-SHA256",
            headers={"X-Server-Time": str(int(now))},
        )
    if not _NONCE_RE.match(nonce):
        raise _refuse("NONCE_INVALID", "X-Nonce 必须是 8–64 位字母、数字、下划线或连字符")
    ttl = settings.institution_api.cache_seconds
    found = await directory.lookup(code, ttl=ttl, pii=request.config_dict[keys.pii_key], now=now)
    if found is None:
        raise _refuse("INSTITUTION_UNKNOWN", "机构编码不存在或已停用")
    info, secrets = found  # the current secret, and the previous one inside a rotation's overlap
    limit = settings.server.max_body_bytes
    if (request.content_length or 0) > limit:
        raise DomainError("PAYLOAD_TOO_LARGE", f"请求内容过大(上限 {limit // 1024} KB)")
    body = await request.read()
    signature = signature.lower()
    if not any(same(sign(s, ts, nonce, body), signature) for s in secrets):
        raise _refuse("SIGNATURE_INVALID", "签名校验失败")
    redis = request.config_dict[keys.redis_key]
    fresh = await redis.set(f"inst_nonce:{code}:{nonce}", b"1", nx=True, ex=2 * window + 60)
    if not fresh:
        raise _refuse("NONCE_REPLAYED", "该 X-Nonce 已使用过,请为每个请求生成新的随机数")
    request[keys.institution_key] = info
    return await handler(request)
