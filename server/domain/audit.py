"""The staff audit log: every staff action and every view of unmasked personal data.

Append-only by design: this module writes (``record``) and reads (``search``,
``csv_rows``) and offers nothing that changes or removes an entry; the migration adds
database triggers that refuse UPDATE and DELETE on ``staff_audit_entries`` as well.

A person is never named in clear text: ``person:<insured person id>``, ``user:<user
id>``, or ``idx:<blind index>`` for someone we only know by a typed ID number. The
privacy work (issue #12: "staff viewing unmasked data is logged") reuses ``record``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from server.domain.clock import SHANGHAI, cn_iso
from server.domain.models import StaffAuditEntry
from server.domain.pii import scrub

# What staff do, as the log and its filters name it (Chinese labels for the console).
ACTIONS: Mapping[str, str] = {
    "login": "登录",
    "login_failed": "登录失败",
    "login_throttled": "登录受限",
    "logout": "退出",
    "search": "按证件号码或姓名查找",
    "view_application": "查看申请",
    "unmask": "查看完整身份信息",
    "view_material": "查看材料",
    "claim": "领取申请",
    "release": "释放申请",
    "approve": "审核通过",
    "reject": "审核驳回",
    "request_correction": "要求补正",
    "counter_lookup": "窗口查询参保人",
    "counter_bind": "窗口代办绑定",
    "counter_unbind": "窗口代办解绑",
    "counter_activate": "窗口代激活电子凭证",
    "counter_authorize": "窗口代办共济授权",
    "counter_revoke": "窗口代办解除共济",
    "notice_retry": "重发通知",
    "audit_export": "导出审计日志",
    "analytics_export": "导出统计数据",
    "staff_add": "新增工作人员",
    "staff_disable": "停用工作人员",
    "staff_reset": "重置密码",
}
TARGET_KINDS: tuple[str, ...] = (
    "session", "application", "material", "person", "notice", "staff", "audit", "analytics",
    "binding", "authorization",
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff account (``staff_id``) or a legacy demo token (no id)."""

    staff_id: int | None
    name: str
    ip: str | None = None


async def record(
    actor: Actor,
    action: str,
    *,
    target_kind: str,
    target_id: str | None = None,
    person_ref: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> StaffAuditEntry:
    """Append one entry. ``detail`` carries codes and ids only; free text in it is
    scrubbed of ID and phone numbers on the way in (a reason a reviewer typed)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if target_kind not in TARGET_KINDS:
        raise ValueError(f"unknown audit target kind {target_kind!r}")
    clean = {k: scrub(v) if isinstance(v, str) else v for k, v in (detail or {}).items()}
    return await StaffAuditEntry.create(
        staff_id=actor.staff_id,
        staff_name=scrub(actor.name)[:64],
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        person_ref=person_ref,
        detail=clean,
        ip=(actor.ip or None) and actor.ip[:64],
    )


@dataclass(frozen=True)
class AuditFilter:
    staff_name: str = ""
    action: str = ""
    target_kind: str = ""
    target_id: str = ""
    person_ref: str = ""
    since: date | None = None  # Asia/Shanghai calendar days, inclusive
    until: date | None = None


def _query(f: AuditFilter) -> Any:
    q = StaffAuditEntry.all()
    if f.staff_name:
        q = q.filter(staff_name=f.staff_name)
    if f.action:
        q = q.filter(action=f.action)
    if f.target_kind:
        q = q.filter(target_kind=f.target_kind)
    if f.target_id:
        q = q.filter(target_id=f.target_id)
    if f.person_ref:
        q = q.filter(person_ref=f.person_ref)
    if f.since:
        q = q.filter(at__gte=datetime.combine(f.since, time(0), SHANGHAI))
    if f.until:
        q = q.filter(at__lt=datetime.combine(f.until + timedelta(days=1), time(0), SHANGHAI))
    return q


def view(e: StaffAuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": cn_iso(e.at),
        "staff_id": e.staff_id,
        "staff_name": e.staff_name,
        "action": e.action,
        "action_label": ACTIONS.get(e.action, e.action),
        "target_kind": e.target_kind,
        "target_id": e.target_id,
        "person_ref": e.person_ref,
        "detail": e.detail,
        "ip": e.ip,
    }


async def search(f: AuditFilter, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
    """Newest first, one page."""
    q = _query(f)
    total = await q.count()
    rows = await q.order_by("-at", "-id").offset(offset).limit(limit)
    return {"items": [view(e) for e in rows], "total": total}


CSV_HEADER = ("id", "at", "staff_id", "staff_name", "action", "target_kind", "target_id",
              "person_ref", "detail", "ip")
EXPORT_MAX_ROWS = 100_000
_PAGE = 2_000


async def csv_chunks(f: AuditFilter) -> AsyncIterator[str]:
    """The filtered log as CSV, oldest first, in pages (bounded: ``EXPORT_MAX_ROWS``)."""
    import json

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_HEADER)
    last_id = 0
    sent = 0
    while sent < EXPORT_MAX_ROWS:
        rows = await _query(f).filter(id__gt=last_id).order_by("id").limit(_PAGE)
        if not rows:
            break
        for e in rows:
            v = view(e)
            v["detail"] = json.dumps(e.detail, ensure_ascii=False, sort_keys=True)
            writer.writerow([_csv_safe(v[k]) for k in CSV_HEADER])
        last_id, sent = rows[-1].id, sent + len(rows)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue()


def _csv_safe(value: Any) -> Any:
    """Spreadsheet formula injection: a cell starting with = + - @ is quoted as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value
