"""Console pages: login and logout, the review queue, an application, its decisions.

Handlers are thin: parse the form or query, call the staff service or the review desk,
render. Personal data never travels in a URL: searches by ID number and name are POSTs.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from review_console.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    clear_cookie,
    client_ip,
    form,
    new_login_token,
    principal,
    render,
    requires,
    session_of,
    set_cookie,
)
from server import keys
from server.domain.errors import DomainError
from server.domain.family.materials import open_document
from server.domain.identity import ID_TYPE_LABELS
from server.domain.policy import RELATIONSHIP_LABELS
from server.domain.review import REJECT_REASONS, QueueFilter
from server.domain.staff import REVIEW_ROLES, parse_regions
from server.http_errors import headers_of, status_of
from server.responses import stream_document

PAGE_SIZE = 50
MESSAGES = {
    "approved": "已通过该申请,绑定已生效。",
    "rejected": "已驳回该申请,绑定人会看到驳回理由。",
    "released": "已释放该申请,其他审核员可以处理。",
    "corrected": "已要求补正,绑定人会收到通知。",
}
# request_correction(application_id, reviewer, reason) is being added to the family
# service by the lead; the button stays disabled until it exists (docs/console.md).
CORRECTION_NOTE = "“要求补正”功能正在开发中(需家庭业务服务提供 request_correction),暂不可用。"


def _correction_available(request: web.Request) -> bool:
    return callable(getattr(request.config_dict[keys.family_key], "request_correction", None))


# -- login ----------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    """The form (also for someone logged in: a shared counter PC switches accounts; the
    old session ends at the new login)."""
    return _login_form(request)


def _login_form(request: web.Request, *, error: str = "", name: str = "", status: int = 200) -> web.Response:
    token = new_login_token()
    context = {"login_token": token, "error": error, "name": name, "me": None}
    response = render(request, "login.html", context, status=status)
    set_cookie(response, request, LOGIN_COOKIE, token)
    return response


async def login(request: web.Request) -> web.Response:
    """Name and password → a new session (a new id: any session cookie sent along is
    ignored and its session ended — no fixation)."""
    data = await form(request)
    service = request.config_dict[keys.staff_key]
    old = request.get(keys.staff_session_key)
    try:
        session = await service.login(data.get("name", ""), data.get("password", ""), ip=client_ip(request))
    except DomainError as err:
        if status_of(err) not in (401, 429):
            raise
        resp = _login_form(request, error=err.message, name=data.get("name", "")[:64], status=status_of(err))
        resp.headers.update(headers_of(err))
        return resp
    if old is not None:
        await service.logout(old)
    response = web.HTTPSeeOther(_home(session.principal.role))
    set_cookie(response, request, SESSION_COOKIE, session.id)
    clear_cookie(response, LOGIN_COOKIE)
    raise response


async def logout(request: web.Request) -> web.Response:
    await request.config_dict[keys.staff_key].logout(session_of(request))
    response = web.HTTPSeeOther("/review/login")
    clear_cookie(response, SESSION_COOKIE)
    raise response


def _home(role: str) -> str:
    return "/review/counter" if role == "counter" else "/review/queue"


async def home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther(_home(principal(request).role))


# -- the queue --------------------------------------------------------------------------


def _int(value: str | None, default: int, lo: int, hi: int) -> int:
    try:
        return min(hi, max(lo, int(value or default)))
    except ValueError:
        return default


def _filters(source: Any) -> QueueFilter:
    region = (source.get("region") or "").strip()
    if region:
        try:
            parse_regions(region)
        except ValueError:
            raise DomainError("VALIDATION_FAILED", "辖区代码应为 6 位数字") from None
    id_type = source.get("id_type") or ""
    relationship = source.get("relationship") or ""
    return QueueFilter(
        region=region,
        id_type=id_type if id_type in ID_TYPE_LABELS else "",
        relationship=relationship if relationship in RELATIONSHIP_LABELS else "",
        waited_days=_int(source.get("waited_days"), 0, 0, 365),
        id_number=(source.get("id_number") or "").strip()[:32],
        name=(source.get("name") or "").strip()[:50],
    )


@requires(REVIEW_ROLES)
async def queue(request: web.Request) -> web.Response:
    """GET: filters in the query (no personal data); POST: a search by ID number and /
    or name (kept out of URLs, browser history and logs)."""
    source: Any = await form(request) if request.method == "POST" else request.query
    f = _filters(source)
    page = _int(request.query.get("page"), 1, 1, 10_000)
    desk = request.config_dict[keys.review_desk_key]
    result = await desk.queue(principal(request), f, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(
        request,
        "queue.html",
        {
            "result": result,
            "f": f,
            "page": page,
            "pages": max(1, -(-result["total"] // PAGE_SIZE)),
            "id_types": ID_TYPE_LABELS,
            "relationships": RELATIONSHIP_LABELS,
            "message": MESSAGES.get(request.query.get("done", ""), ""),
            "searched": request.method == "POST",
        },
    )


# -- one application ------------------------------------------------------------------


def _detail_page(request: web.Request, detail: dict[str, Any], *, error: str = "", status: int = 200) -> web.Response:
    me = principal(request)
    claim = detail["claim"]
    return render(
        request,
        "detail.html",
        {
            "a": detail,
            "reject_reasons": REJECT_REASONS,
            "claimed_by_other": claim is not None and claim["owner"] != me.name,
            "claimed_by_me": claim is not None and claim["owner"] == me.name,
            "correction_available": _correction_available(request),
            "correction_note": CORRECTION_NOTE,
            "error": error,
        },
        status=status,
    )


@requires(REVIEW_ROLES)
async def application(request: web.Request) -> web.Response:
    desk = request.config_dict[keys.review_desk_key]
    app_id = request.match_info["application_id"]
    detail = await desk.detail(principal(request), app_id)
    await desk.audit_view(principal(request), app_id)
    return _detail_page(request, detail)


@requires(REVIEW_ROLES)
async def unmask(request: web.Request) -> web.Response:
    """Show one person in full, once: the answer is this page (never cached); the audit
    entry is written before it is rendered."""
    whom = (await form(request)).get("whom")
    if whom not in ("binder", "member"):
        raise DomainError("VALIDATION_FAILED", "请选择要查看的人员")
    desk = request.config_dict[keys.review_desk_key]
    detail = await desk.unmask(principal(request), request.match_info["application_id"], whom)  # type: ignore[arg-type]  # checked above
    return _detail_page(request, detail)


@requires(REVIEW_ROLES)
async def material(request: web.Request) -> web.StreamResponse:
    desk = request.config_dict[keys.review_desk_key]
    m = await desk.material(principal(request), request.match_info["application_id"], request.match_info["material_id"])
    content_type, chunks = await open_document(request.config_dict[keys.storage_key], m.storage_key)
    return await stream_document(request, content_type, chunks)


@requires(REVIEW_ROLES)
async def claim(request: web.Request) -> web.Response:
    desk = request.config_dict[keys.review_desk_key]
    app_id = request.match_info["application_id"]
    try:
        await desk.claim(principal(request), app_id)
    except DomainError as err:
        if status_of(err) != 409:
            raise
        return _detail_page(request, await desk.detail(principal(request), app_id), error=err.message, status=409)
    raise web.HTTPSeeOther(f"/review/applications/{app_id}")


@requires(REVIEW_ROLES)
async def release(request: web.Request) -> web.Response:
    desk = request.config_dict[keys.review_desk_key]
    await desk.release(principal(request), request.match_info["application_id"])
    raise web.HTTPSeeOther("/review/queue?done=released")


@requires(REVIEW_ROLES)
async def decide(request: web.Request) -> web.Response:
    data = await form(request)
    decision = data.get("decision")
    desk = request.config_dict[keys.review_desk_key]
    app_id = request.match_info["application_id"]
    if decision not in ("approve", "reject", "correction"):
        raise DomainError("VALIDATION_FAILED", "请选择审核结果")
    try:
        await desk.decide(
            principal(request), app_id, decision=decision,  # type: ignore[arg-type]  # checked above
            reason_code=data.get("reason_code", ""), note=data.get("note", "")[:200],
        )
    except DomainError as err:
        if status_of(err) not in (409, 422):
            raise
        detail = await desk.detail(principal(request), app_id)
        return _detail_page(request, detail, error=err.message, status=status_of(err))
    done = {"approve": "approved", "reject": "rejected", "correction": "corrected"}[decision]
    raise web.HTTPSeeOther("/review/queue?done=" + done)

