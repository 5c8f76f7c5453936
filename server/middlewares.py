"""Middlewares: request id + access log + metrics, and the one error envelope (API.md "Errors")."""

from __future__ import annotations

import json
import logging
import random
import re
import time
from binascii import hexlify
from typing import Awaitable, Callable

from aiohttp import web

from server import keys
from server.domain.errors import DomainError
from server.domain.pii import Scrubbed, scrub
from server.http_errors import GATEWAY_ERRORS, from_gateway, headers_of, status_of
from server.outages import RETRY_AFTER_SECONDS, dependency_down
from server.ratelimit import RateLimited
from server.responses import dumps, json_response

log = logging.getLogger("server.access")
errlog = logging.getLogger("server.errors")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("BAD_REQUEST", "请求格式有误"),
    401: ("UNAUTHORIZED", "请先登录"),
    403: ("FORBIDDEN", "无权访问"),
    404: ("NOT_FOUND", "请求的资源不存在"),
    405: ("METHOD_NOT_ALLOWED", "不支持该请求方法"),
    409: ("CONFLICT", "状态冲突"),
    413: ("PAYLOAD_TOO_LARGE", "请求内容过大"),
    415: ("UNSUPPORTED_MEDIA_TYPE", "不支持的内容类型"),
    429: ("RATE_LIMITED", "操作过于频繁,请稍后再试"),
    503: ("SERVICE_UNAVAILABLE", "服务暂不可用,请稍后再试"),
}


def error_response(
    status: int, code: str, message: str, *, request_id: str | None = None, **extra: object
) -> web.Response:
    body: dict[str, object] = {"code": code, "message": message, **extra}
    if request_id:
        body["request_id"] = request_id
    return json_response({"error": body}, status=status)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, metrics and one structured access-log line per request."""
    rid = request.headers.get("X-Request-Id")
    # a caller's id is kept (tracing across systems) but never carries personal data into
    # our logs and headers. Ours only has to be unique, not secret: the PRNG (reseeded in
    # forked children) spares a getrandom() syscall per request (uuid4 / os.urandom).
    rid = rid if rid and _SAFE_RID(rid) else _new_rid()
    request[keys.request_id_key] = rid
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = rid
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = _route_name(request)
        metrics = request.config_dict.get(keys.metrics_key)
        if metrics is not None:
            metrics.observe_request(request.method, route, str(status), elapsed)
        if log.isEnabledFor(logging.INFO):
            method = request.method
            line = _access_line(rid, method, route, status, elapsed, request.get(keys.user_id_key))
            # every part is free of personal data: the scrubbed id, a route template (not
            # the path), numbers — and the method, unless a client sent an odd one
            log.info(Scrubbed(line) if method in _METHODS else line)


_random_bits = random.getrandbits
# Ours is hex with its digits spelt as the letters g–p: 128 random bits in 32 characters
# that can never look like an ID or a phone number (a hex id held "…ba15001890069f…"
# about once in 10,000 requests: the scrubber would have masked it in error lines, and
# the run's log check flagged it — tests/security/logscan.py).
_NO_DIGITS = bytes.maketrans(b"0123456789", b"ghijklmnop")


def _new_rid() -> str:
    return hexlify(_random_bits(128).to_bytes(16, "big")).translate(_NO_DIGITS).decode()
# A caller's request id is kept only when it looks like one (letters, digits, . _ : -, at
# most 64) and carries nothing the scrubber would mask; anything else is replaced by ours,
# neither logged nor echoed (issue #17 finding 11).
_RID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _SAFE_RID(rid: str) -> bool:  # noqa: N802
    return _RID_RE.fullmatch(rid) is not None and scrub(rid) == rid

_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_json_str = json.encoder.encode_basestring  # C-accelerated "…" quoting


def _access_line(rid: str, method: str, route: str, status: int, elapsed: float, user: object) -> str:
    """The access-log JSON line, built directly (json.dumps of a dict costs ~4 µs a request)."""
    user_json = str(user) if type(user) is int else dumps(user)
    return (
        f'{{"rid":{_json_str(rid)},"method":{_json_str(method)},"route":{_json_str(route)},'
        f'"status":{int(status)},"ms":{round(elapsed * 1000, 2)!r},"user":{user_json}}}'
    )


def _route_name(request: web.Request) -> str:
    info = request.match_info
    route = info.route
    if route is None or route.resource is None:
        return "unmatched"
    return route.resource.canonical


@web.middleware
async def error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place where errors become responses: JSON envelope, never a stack trace."""
    rid = request.get(keys.request_id_key)
    try:
        return await handler(request)
    except DomainError as err:
        resp = json_response(err.to_body(), status=status_of(err))
        resp.headers.update(headers_of(err))
        return resp
    except GATEWAY_ERRORS as exc:  # a gateway's own error no use case translated
        errlog.warning("gateway error rid=%s %s %s: %r", rid, request.method, request.path, exc)
        refusal = from_gateway(exc)
        resp = json_response(refusal.to_body(), status=status_of(refusal))
        resp.headers.update(headers_of(refusal))
        return resp
    except RateLimited as err:
        resp = json_response(_RATE_LIMITED_BODY, status=429)
        resp.headers["Retry-After"] = str(err.retry_after)
        return resp
    except web.HTTPException as exc:
        if exc.status < 400 or not _wants_json(request):
            raise
        code, message = _HTTP_CODES.get(exc.status, ("HTTP_ERROR", "请求失败"))
        resp = error_response(exc.status, code, message, request_id=rid)
        for h in ("Allow", "Retry-After"):
            if h in exc.headers:
                resp.headers[h] = exc.headers[h]
        return resp
    except Exception as exc:  # the one catch-all: logged with its traceback, a JSON 500 …
        if dependency_down(exc):  # … unless a dependency is down: 503, retry shortly
            errlog.warning(
                "dependency unavailable rid=%s %s %s: %s",
                rid,
                request.method,
                request.path,
                type(exc).__name__,
            )
            resp = error_response(
                503, "SERVICE_UNAVAILABLE", "系统繁忙,请稍后再试", request_id=rid
            )
            resp.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return resp
        errlog.exception("unhandled error rid=%s %s %s", rid, request.method, request.path)
        return error_response(500, "INTERNAL_ERROR", "服务器内部错误,请稍后再试", request_id=rid)


# API.md "Errors": the body of a rate-limited call (server.ratelimit.hit), as it always was
_RATE_LIMITED_BODY = {"error": {"code": "RATE_LIMITED", "message": "操作过于频繁，请稍后再试"}}


def _wants_json(request: web.Request) -> bool:
    return not request.path.startswith("/wechat/")
