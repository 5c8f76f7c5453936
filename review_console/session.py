"""The console's HTTP plumbing: sessions from cookies, CSRF on every POST, roles,
security headers, HTML error pages, and rendering.

* The session cookie (``qq_console``) is HttpOnly, Secure, SameSite=Strict, path /review.
* Every POST carries a ``csrf`` form field: the session's token once logged in; on the
  login form, a random value that must equal the ``qq_console_login`` cookie (double
  submit: a cross-site page can neither read nor set it). Checked here, before any
  handler runs.
* Every page answers ``Cache-Control: no-store`` and a Content-Security-Policy that
  allows only our own scripts, styles and images (no inline script).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server import keys
from server.consttime import same
from server.domain.errors import DomainError
from server.domain.staff import Principal, StaffSession
from server.http_errors import headers_of, status_of

SESSION_COOKIE = "qq_console"
LOGIN_COOKIE = "qq_console_login"
COOKIE_PATH = "/review"
PUBLIC = ("/review/login", "/review/static/")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def client_ip(request: web.Request) -> str | None:
    return request.remote


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str) -> None:
    secure = request.config_dict[keys.settings_key].console.secure_cookies
    response.set_cookie(
        name, value, path=COOKIE_PATH, httponly=True, secure=secure, samesite="Strict"
    )


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=COOKIE_PATH)


def session_of(request: web.Request) -> StaffSession:
    session = request.get(keys.staff_session_key)
    if not isinstance(session, StaffSession):
        raise web.HTTPSeeOther("/review/login")
    return session


def principal(request: web.Request) -> Principal:
    return session_of(request).principal


def requires(roles: frozenset[str]) -> Callable[[Handler], Handler]:
    """A page for some roles only: others get a 403 page."""

    def decorate(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            principal(request).require(roles)
            return await fn(request)

        return wrapper

    return decorate


async def form(request: web.Request) -> dict[str, str]:
    """The posted form's text fields (aiohttp caches the parse: the CSRF check read it)."""
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    session = request.get(keys.staff_session_key)
    base: dict[str, Any] = {"session": session, "me": getattr(session, "principal", None),
                            "csrf": getattr(session, "csrf", "")}
    base.update(context)
    return aiohttp_jinja2.render_template(template, request, base, status=status)


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Session, CSRF, headers and HTML errors for every console page."""
    try:
        response = await _guarded(request, handler)
    except DomainError as err:
        response = _error_page(request, status_of(err), err.message, headers_of(err))
    except web.HTTPException as exc:
        if exc.status < 400:
            _secure(exc)
            raise
        response = _error_page(request, exc.status, _HTTP_TEXT.get(exc.status, "请求失败"), {})
    _secure(response)
    return response


async def _guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith(PUBLIC[1]):
        return await handler(request)
    service = request.config_dict[keys.staff_key]
    session = await service.resolve(request.cookies.get(SESSION_COOKIE), ip=client_ip(request))
    if session is not None:
        request[keys.staff_session_key] = session
    if request.method not in ("GET", "HEAD"):
        await _check_csrf(request, session)
    if session is None and path != PUBLIC[0]:
        if path.endswith(".json"):
            raise DomainError("UNAUTHORIZED", "请先登录")
        response = web.HTTPSeeOther("/review/login")
        if request.cookies.get(SESSION_COOKIE):
            clear_cookie(response, SESSION_COOKIE)  # an ended session: forget the cookie
        raise response
    return await handler(request)


async def _check_csrf(request: web.Request, session: StaffSession | None) -> None:
    data = await request.post()
    sent = data.get("csrf")
    if request.path == PUBLIC[0]:
        expected = request.cookies.get(LOGIN_COOKIE, "")
    else:
        expected = session.csrf if session is not None else ""
    if not isinstance(sent, str) or not expected or not same(sent, expected):
        raise DomainError("CSRF_FAILED", "页面已过期或请求来源不明,请刷新页面后重试")


def new_login_token() -> str:
    return secrets.token_urlsafe(32)


def _secure(response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # a material keeps its own sandbox policy (server.responses.document_response)
    response.headers.setdefault("Content-Security-Policy", CSP)


_HTTP_TEXT = {
    401: "请先登录",
    403: "无权访问",
    404: "页面不存在",
    405: "不支持该请求方法",
    413: "提交的内容过大",
}


def _error_page(request: web.Request, status: int, message: str, headers: dict[str, str]) -> web.Response:
    if request.path.endswith((".json", ".csv")):
        from server.responses import json_response

        resp = json_response({"error": {"message": message}}, status=status)
    else:
        resp = render(request, "error.html", {"status": status, "message": message}, status=status)
    resp.headers.update(headers)
    return resp
