"""Admin pages: the audit log (filter, CSV), failure analytics (charts from JSON, CSV),
the push queue (retry a failed notice), staff accounts. (The counter: ``counter``.)"""

from __future__ import annotations

import csv
import io
from datetime import date

from aiohttp import web
from argon2 import PasswordHasher

from review_console.session import form, principal, render, requires
from server import keys
from server.domain import analytics, audit
from server.domain import staff as staff_domain
from server.domain.errors import DomainError
from server.domain.staff import ADMIN_ROLES, ROLES
from server.responses import json_response

AUDIT_PAGE = 100


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        raise DomainError("VALIDATION_FAILED", "日期格式应为 YYYY-MM-DD") from None


def _audit_filter(request: web.Request) -> audit.AuditFilter:
    q = request.query
    return audit.AuditFilter(
        staff_name=q.get("staff_name", "").strip()[:64],
        action=q.get("action", "") if q.get("action", "") in audit.ACTIONS else "",
        target_kind=q.get("target_kind", "") if q.get("target_kind", "") in audit.TARGET_KINDS else "",
        target_id=q.get("target_id", "").strip()[:64],
        person_ref=q.get("person_ref", "").strip()[:80],
        since=_date(q.get("since")),
        until=_date(q.get("until")),
    )


@requires(ADMIN_ROLES)
async def audit_page(request: web.Request) -> web.Response:
    f = _audit_filter(request)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    result = await audit.search(f, limit=AUDIT_PAGE, offset=(page - 1) * AUDIT_PAGE)
    return render(
        request,
        "audit.html",
        {
            "result": result, "f": f, "page": page, "pages": max(1, -(-result["total"] // AUDIT_PAGE)),
            "actions": audit.ACTIONS, "target_kinds": audit.TARGET_KINDS,
            "query": request.query_string,
        },
    )


@requires(ADMIN_ROLES)
async def audit_csv(request: web.Request) -> web.StreamResponse:
    f = _audit_filter(request)
    await audit.record(
        principal(request).actor, "audit_export", target_kind="audit",
        detail={k: str(v) for k, v in vars(f).items() if v},
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="staff-audit.csv"',
        }
    )
    await response.prepare(request)
    await response.write("\ufeff".encode())  # a BOM: spreadsheet programs read UTF-8 Chinese
    async for chunk in audit.csv_chunks(f):
        await response.write(chunk.encode())
    await response.write_eof()
    return response


def _days(request: web.Request) -> int:
    try:
        return min(90, max(1, int(request.query.get("days", "30"))))
    except ValueError:
        return 30


@requires(ADMIN_ROLES)
async def analytics_page(request: web.Request) -> web.Response:
    return render(request, "analytics.html", {"days": _days(request), "tables": analytics.CSV_TABLES})


@requires(ADMIN_ROLES)
async def analytics_json(request: web.Request) -> web.Response:
    return json_response(await analytics.overview(principal(request), days=_days(request)))


@requires(ADMIN_ROLES)
async def analytics_csv(request: web.Request) -> web.Response:
    table = request.query.get("table", "")
    if table not in analytics.CSV_TABLES:
        raise DomainError("NOT_FOUND", "没有这张图表")
    data = await analytics.overview(principal(request), days=_days(request))
    buf = io.StringIO()
    csv.writer(buf).writerows(analytics.csv_rows(data, table))
    await audit.record(principal(request).actor, "analytics_export", target_kind="analytics", detail={"table": table})
    return web.Response(
        body=("\ufeff" + buf.getvalue()).encode(),
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{table}.csv"',
        },
    )


@requires(ADMIN_ROLES)
async def notices_page(request: web.Request) -> web.Response:
    data = await analytics.notice_queue()
    return render(request, "notices.html", {"q": data, "done": request.query.get("done") == "retried"})


@requires(ADMIN_ROLES)
async def notice_retry(request: web.Request) -> web.Response:
    await analytics.retry_notice(principal(request), request.match_info["notice_id"])
    raise web.HTTPSeeOther("/review/admin/notices?done=retried")


# -- staff accounts ---------------------------------------------------------------------


def _hasher(request: web.Request) -> PasswordHasher:
    return request.config_dict[keys.staff_key].hasher


@requires(ADMIN_ROLES)
async def staff_page(request: web.Request) -> web.Response:
    return await _staff_view(request)


async def _staff_view(
    request: web.Request, *, shown: dict[str, str] | None = None, error: str = ""
) -> web.Response:
    return render(
        request,
        "staff.html",
        {"staff": await staff_domain.list_staff(), "roles": ROLES, "shown": shown, "error": error},
    )


@requires(ADMIN_ROLES)
async def staff_action(request: web.Request) -> web.Response:
    """Add an account, reset its password (shown once, on this answer) or disable it."""
    data = await form(request)
    action = request.match_info["action"]
    me = principal(request)
    hasher = _hasher(request)
    try:
        if action == "add":
            staff, password = await staff_domain.add_staff(
                name=data.get("name", "").strip(), role=data.get("role", ""),
                regions=data.get("regions", ""), hasher=hasher,
            )
        elif action == "reset":
            staff, password = await staff_domain.reset_password(data.get("name", ""), hasher=hasher)
        elif action == "disable":
            if data.get("name") == me.name:
                raise ValueError("不能停用自己的账号")
            staff, password = await staff_domain.disable_staff(data.get("name", "")), ""
        else:
            raise web.HTTPNotFound()
    except ValueError as exc:
        return await _staff_view(request, error=str(exc))
    await audit.record(me.actor, f"staff_{action}", target_kind="staff", target_id=str(staff.id),
                       detail={"name": staff.name, "role": staff.role, "regions": staff.regions})
    shown = {"name": staff.name, "password": password} if password else None
    return await _staff_view(request, shown=shown)
