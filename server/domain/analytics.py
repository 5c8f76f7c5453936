"""Failure analytics and the push queue for the console's admins (issue #14).

Read-only figures over a window of days (Asia/Shanghai calendar), scoped to the
admin's regions where the rows have one:

* binding failures: each application event that ended a submit or a review with a
  failure code (``failed``, and ``needs_action`` once fixable failures wait there), by
  code per day and per region, and each code's share of the window;
* time from submit to decision, automatic and by a reviewer, in buckets;
* push delivery: notices created in the window by state, the failed ones by errcode.

Queries read at most the window's rows once and count in Python: the console asks
for 30 days, a few thousand events in a busy city. The push queue page lists pending
and failed notices, and an admin may send a failed one again (audited).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, time, timedelta
from typing import Any

from tortoise.functions import Count

from server.domain import audit
from server.domain.clock import SHANGHAI, Clock, cn_today, parse_uuid, utc_now
from server.domain.errors import DomainError
from server.domain.models import Application, ApplicationEvent, Notice
from server.domain.policy import NATIONAL
from server.domain.staff import Principal, when

FAILURE_LABELS: dict[str, str] = {
    "INFO_MISMATCH": "信息不一致",
    "MEMBER_NOT_INSURED": "未参保",
    "MEMBER_NOT_ACTIVATED": "电子凭证未激活",
    "BINDER_NOT_VERIFIED": "绑定人未实名",
    "SYSTEM_BUSY": "系统繁忙",
    "MEMBER_LIMIT_REACHED": "家庭成员已满",
    "MONTHLY_BINDER_LIMIT": "本月绑定人数已满",
    "RELATIONSHIP_NOT_ALLOWED": "关系不在允许范围",
    "MINOR_DOCUMENTS_MISSING": "未成年人缺证明",
    "MATERIALS_MISSING": "缺少材料",
    "MATERIALS_REJECTED": "材料审核未通过",
    "FACE_CHECK_FAILED": "人脸核验未通过",
    "ALREADY_BOUND": "已绑定",
    "INVALID_ID_NUMBER": "证件号码有误",
    "COMMITMENT_REQUIRED": "未签承诺书",
    "COMMITMENT_OUTDATED": "承诺书已更新",
}
FAILED_STATES = ("failed", "needs_action")
NOTICE_STATE_LABELS: dict[str, str] = {
    "pending": "待发送",
    "sent": "已发送",
    "delivered": "已送达",
    "failed": "发送失败",
    "undeliverable": "无法送达",
}
# WeChat's errcodes seen when sending template / subscribe messages
ERRCODE_LABELS: dict[int, str] = {
    -1: "微信系统繁忙",
    40001: "access_token 无效",
    40003: "openid 无效",
    40037: "模板 ID 无效",
    43004: "用户未关注公众号",
    43101: "用户拒收或未订阅",
    45009: "接口调用超过限额",
    47003: "模板参数不正确",
}
DECISION_BUCKETS: tuple[tuple[str, float], ...] = (
    ("1 分钟内", 60),
    ("1 小时内", 3600),
    ("1 天内", 86_400),
    ("3 天内", 3 * 86_400),
    ("7 天内", 7 * 86_400),
    ("超过 7 天", float("inf")),
)
_APP_REGION = ("application__binder__person__region_code", "application__member__region_code")
_REGION = ("binder__person__region_code", "member__region_code")


def _since(days: int, now: datetime) -> tuple[datetime, list[str]]:
    today = cn_today(now)
    first = today - timedelta(days=days - 1)
    return (
        datetime.combine(first, time(0), SHANGHAI),
        [(first + timedelta(days=i)).isoformat() for i in range(days)],
    )


def _scoped(q: Any, who: Principal, paths: tuple[str, ...]) -> Any:
    scope = who.region_q(*paths)
    return q if scope is None else q.filter(scope)


async def failures(who: Principal, *, days: int = 30, clock: Clock = utc_now) -> dict[str, Any]:
    since, dates = _since(days, clock())
    rows = await _scoped(
        ApplicationEvent.filter(at__gte=since, to_state__in=FAILED_STATES, code__isnull=False),
        who,
        _APP_REGION,
    ).values("code", "at", *_APP_REGION)
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    by_region: dict[str, Counter[str]] = defaultdict(Counter)
    share: Counter[str] = Counter()
    for r in rows:
        code = r["code"]
        day = r["at"].astimezone(SHANGHAI).date().isoformat()
        region = r[_APP_REGION[0]] or r[_APP_REGION[1]] or NATIONAL
        by_day[code][day] += 1
        by_region[code][region] += 1
        share[code] += 1
    codes = [c for c, _ in share.most_common()]
    regions = sorted({reg for c in by_region.values() for reg in c})
    return {
        "days": dates,
        "regions": regions,
        "codes": [{"code": c, "label": FAILURE_LABELS.get(c, c)} for c in codes],
        "by_day": {c: [by_day[c].get(d, 0) for d in dates] for c in codes},
        "by_region": {c: [by_region[c].get(reg, 0) for reg in regions] for c in codes},
        "share": {c: share[c] for c in codes},
        "total": sum(share.values()),
    }


async def decision_times(
    who: Principal, *, days: int = 30, clock: Clock = utc_now
) -> dict[str, Any]:
    """How long from submit to decision: at once (the policy decided) or by a reviewer."""
    since, _ = _since(days, clock())
    apps = await _scoped(
        Application.filter(decided_at__gte=since, submitted_at__isnull=False), who, _REGION
    ).values("id", "submitted_at", "decided_at")
    reviewed = set(
        await ApplicationEvent.filter(
            application_id__in=[a["id"] for a in apps] or [None], to_state="pending_review"
        ).values_list("application_id", flat=True)
    )
    counts = {"auto": [0] * len(DECISION_BUCKETS), "review": [0] * len(DECISION_BUCKETS)}
    durations: dict[str, list[float]] = {"auto": [], "review": []}
    for a in apps:
        seconds = max(0.0, (a["decided_at"] - a["submitted_at"]).total_seconds())
        kind = "review" if a["id"] in reviewed else "auto"
        durations[kind].append(seconds)
        for i, (_, limit) in enumerate(DECISION_BUCKETS):
            if seconds <= limit:
                counts[kind][i] += 1
                break
    return {
        "buckets": [label for label, _ in DECISION_BUCKETS],
        "auto": counts["auto"],
        "review": counts["review"],
        "median_hours": {k: _hours(_quantile(v, 0.5)) for k, v in durations.items()},
        "p90_hours": {k: _hours(_quantile(v, 0.9)) for k, v in durations.items()},
    }


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


async def push_delivery(*, days: int = 30, clock: Clock = utc_now) -> dict[str, Any]:
    since, _ = _since(days, clock())
    states = await Notice.filter(created_at__gte=since).annotate(n=Count("id")).group_by("state").values("state", "n")
    errs = (
        await Notice.filter(created_at__gte=since, state__in=["failed", "undeliverable"])
        .annotate(n=Count("id"))
        .group_by("errcode")
        .values("errcode", "n")
    )
    by_state = {r["state"]: r["n"] for r in states}
    errs = sorted(errs, key=lambda r: -r["n"])
    return {
        "states": [
            {"state": s, "label": label, "count": by_state.get(s, 0)}
            for s, label in NOTICE_STATE_LABELS.items()
        ],
        "errcodes": [
            {"errcode": r["errcode"], "label": _errcode_label(r["errcode"]), "count": r["n"]}
            for r in errs
        ],
    }


def _errcode_label(errcode: int | None) -> str:
    if errcode is None:
        return "无错误码(无可用渠道)"
    return f"{errcode} {ERRCODE_LABELS.get(errcode, '')}".strip()


async def overview(who: Principal, *, days: int = 30, clock: Clock = utc_now) -> dict[str, Any]:
    """The analytics page's JSON: every chart's data in one answer."""
    return {
        "days": days,
        "generated_at": when(clock()),
        "failures": await failures(who, days=days, clock=clock),
        "decision_times": await decision_times(who, days=days, clock=clock),
        "push": await push_delivery(days=days, clock=clock),
    }


CSV_TABLES = ("failures_by_day", "failures_by_region", "failure_share", "decision_times", "push")


def csv_rows(data: dict[str, Any], table: str) -> list[list[Any]]:
    """One chart's data as CSV rows (header first)."""
    f = data["failures"]
    if table == "failures_by_day":
        return [["date", "code", "label", "count"]] + [
            [d, c["code"], c["label"], f["by_day"][c["code"]][i]]
            for c in f["codes"]
            for i, d in enumerate(f["days"])
        ]
    if table == "failures_by_region":
        return [["region", "code", "label", "count"]] + [
            [r, c["code"], c["label"], f["by_region"][c["code"]][i]]
            for c in f["codes"]
            for i, r in enumerate(f["regions"])
        ]
    if table == "failure_share":
        total = f["total"] or 1
        return [["code", "label", "count", "share"]] + [
            [c["code"], c["label"], f["share"][c["code"]], round(f["share"][c["code"]] / total, 4)]
            for c in f["codes"]
        ]
    if table == "decision_times":
        t = data["decision_times"]
        return [["bucket", "auto", "review"]] + [
            [b, t["auto"][i], t["review"][i]] for i, b in enumerate(t["buckets"])
        ]
    if table == "push":
        p = data["push"]
        return (
            [["kind", "key", "label", "count"]]
            + [["state", s["state"], s["label"], s["count"]] for s in p["states"]]
            + [["errcode", e["errcode"], e["label"], e["count"]] for e in p["errcodes"]]
        )
    raise DomainError("NOT_FOUND", "没有这张图表")


# -- the push queue -------------------------------------------------------------------


async def notice_queue(*, clock: Clock = utc_now, limit: int = 50) -> dict[str, Any]:
    """Counts by state and kind, the oldest pending, the latest pending and failed."""
    counts = await Notice.annotate(n=Count("id")).group_by("state").values("state", "n")
    kinds = await Notice.annotate(n=Count("id")).group_by("kind", "state").values("kind", "state", "n")
    oldest = await Notice.filter(state="pending").order_by("created_at").first()
    pending = await Notice.filter(state="pending").order_by("created_at").limit(limit)
    failed = await Notice.filter(state__in=["failed", "undeliverable"]).order_by("-updated_at").limit(limit)
    per_kind: dict[str, dict[str, int]] = defaultdict(dict)
    for r in kinds:
        per_kind[r["kind"]][r["state"]] = r["n"]
    age = None if oldest is None else max(0.0, (clock() - oldest.created_at).total_seconds())
    return {
        "counts": {r["state"]: r["n"] for r in counts},
        "state_labels": NOTICE_STATE_LABELS,
        "per_kind": dict(per_kind),
        "oldest_pending_seconds": age,
        "pending": [_notice_view(n) for n in pending],
        "recent_failures": [_notice_view(n) for n in failed],
    }


def _notice_view(n: Notice) -> dict[str, Any]:
    return {
        "id": str(n.id),
        "kind": n.kind,
        "title": n.title,
        "state": n.state,
        "state_label": NOTICE_STATE_LABELS.get(n.state, n.state),
        "errcode": n.errcode,
        "errcode_label": _errcode_label(n.errcode) if n.state != "pending" else "",
        "reason": n.reason,
        "attempts": n.attempts,
        "created_at": when(n.created_at),
        "updated_at": when(n.updated_at),
        "retryable": n.state == "failed",
    }


async def retry_notice(who: Principal, notice_id: str, *, clock: Clock = utc_now) -> None:
    """Send a failed notice again: back to ``pending``, due now, attempts from zero (the
    worker claims it like a new one). Only ``failed`` ones: ``undeliverable`` means the
    person has no channel, and trying again changes nothing."""
    nid = parse_uuid(notice_id)
    now = clock()
    changed = 0
    if nid is not None:
        changed = await Notice.filter(id=nid, state="failed").update(
            state="pending", attempts=0, next_attempt_at=now, lease_until=None, leased_by=None,
            updated_at=now,
        )
    if changed != 1:
        raise DomainError("NOTICE_NOT_RETRYABLE", "只能重发发送失败的通知")
    recipient = await Notice.filter(id=nid).values_list("recipient_id", flat=True)
    await audit.record(
        who.actor, "notice_retry", target_kind="notice", target_id=str(nid),
        person_ref=f"user:{recipient[0]}" if recipient and recipient[0] else None,
    )
