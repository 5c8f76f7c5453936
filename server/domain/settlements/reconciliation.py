"""3201-style 对账: an institution's day of settlements and reversals, as we recorded them.

API.md v1.1 "Institutions": ``GET /api/v1/institution/reconciliation?date=YYYY-MM-DD`` →
the calling institution's totals for that Asia/Shanghai calendar day (count and sums in
the 2207 names, reversals) and ``items`` to compare one by one; the bureau's CLI
``python -m server reconcile`` reads the same rows for any institution.

A day holds two kinds of events, the way both sides' books see them:
* ``2207`` — every settlement whose ``setl_time`` falls on the day (the institution's own
  time; reversed later or not);
* ``2208`` — every reversal we received on the day (``reversed_at``), of a settlement of
  any day, with that settlement's amounts.
``net`` is 2207 minus 2208: the money the day moved. Items come 2207s first, then 2208s,
each in the order we recorded them, paged by an opaque cursor (a large hospital's day is
tens of thousands of rows); the totals come with the first page only.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal, cast

from tortoise.functions import Count, Sum

from server.domain.clock import SHANGHAI, cn_iso, cn_iso_or_none, cn_today
from server.domain.errors import DomainError
from server.domain.models import Settlement
from server.domain.settlements.request import SETL_YEARS, fen_to_yuan

# the 2207 amounts of a reconciliation (national names → our columns, in 分)
AMOUNTS: dict[str, str] = {
    "medfee_sumamt": "medfee_sumamt_fen",
    "hifp_pay": "hifp_pay_fen",
    "fund_pay_sumamt": "fund_pay_sumamt_fen",
    "psn_part_amt": "psn_part_amt_fen",
    "acct_pay": "acct_pay_fen",
    "acct_mulaid_pay": "acct_mulaid_pay_fen",
    "psn_cash_pay": "psn_cash_pay_fen",
}
EventType = Literal["2207", "2208"]
_CURSOR_RE = re.compile(r"^(2207|2208)-([0-9]{1,18})$")
MAX_PAGE = 1000


def parse_day(value: str) -> date:
    """``YYYY-MM-DD`` (ASCII digits, a real date within the settlement years) or 422."""
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise DomainError(
            "VALIDATION_FAILED", "对账日期格式应为 YYYY-MM-DD", fields={"date": "INVALID_FORMAT"}
        ) from None
    if not SETL_YEARS[0] <= day.year <= SETL_YEARS[1]:
        raise DomainError(
            "VALIDATION_FAILED", "对账日期超出范围", fields={"date": "OUT_OF_RANGE"}
        )
    return day


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[00:00, next 00:00) of ``day`` in Asia/Shanghai (how setl_time and reversed_at are
    stored; SQLite compares them as text)."""
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


def _events(kind: EventType, institution: str | None, day: date) -> Any:
    start, end = day_bounds(day)
    column = "setl_time" if kind == "2207" else "reversed_at"
    query = Settlement.filter(**{f"{column}__gte": start, f"{column}__lt": end})
    if institution is not None:
        query = query.filter(institution_id=institution)
    return query


async def _sums(kind: EventType, institution: str, day: date) -> dict[str, int]:
    sums = {name: Sum(column) for name, column in AMOUNTS.items()}
    row = await (
        _events(kind, institution, day)
        .annotate(count=Count("id"), **sums)
        .first()
        .values("count", *AMOUNTS)
    )
    row = row or {}
    return {"count": int(row.get("count") or 0), **{n: int(row.get(n) or 0) for n in AMOUNTS}}


def _yuan(sums: dict[str, int]) -> dict[str, Any]:
    return {"count": sums["count"], **{n: fen_to_yuan(sums[n]) for n in AMOUNTS}}


async def totals(institution: str, day: date, *, today: date | None = None) -> dict[str, Any]:
    """The day's 2207 and 2208 counts and sums (yuan strings) and their difference."""
    settled = await _sums("2207", institution, day)
    reversed_ = await _sums("2208", institution, day)
    net = {k: settled[k] - reversed_[k] for k in settled}
    return {
        "date": day.isoformat(),
        "institution": institution,
        # a day that has not ended yet in Asia/Shanghai can still grow
        "closed": day < (today or cn_today()),
        "settlements": _yuan(settled),
        "reversals": _yuan(reversed_),
        "net": {"count": net["count"], **{n: fen_to_yuan(net[n]) for n in AMOUNTS}},
    }


@dataclass(frozen=True)
class Cursor:
    kind: EventType
    after_id: int

    def encode(self) -> str:
        return f"{self.kind}-{self.after_id}"

    @classmethod
    def decode(cls, value: str | None) -> Cursor:
        if not value:
            return cls("2207", 0)
        m = _CURSOR_RE.match(value)
        if m is None:
            raise DomainError(
                "VALIDATION_FAILED", "分页游标无效", fields={"cursor": "INVALID_CURSOR"}
            )
        return cls(cast(EventType, m.group(1)), int(m.group(2)))  # the pattern allows only these


def item_of(kind: EventType, s: Settlement, institution: str) -> dict[str, Any]:
    """One event in the 2207 names (amounts as yuan strings)."""
    detail = s.detail or {}
    return {
        "type": kind,
        "institution": institution,
        "setl_id": s.setl_id,
        "mdtrt_id": s.mdtrt_id,
        "psn_no": detail.get("psn_no"),
        "med_type": s.med_type,
        "setl_time": cn_iso(s.setl_time),
        "reversed_at": cn_iso_or_none(s.reversed_at),
        "state": s.state,
        **{name: fen_to_yuan(getattr(s, column)) for name, column in AMOUNTS.items()},
    }


async def page(
    institution: str | None, day: date, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the day's events after ``cursor``; the next cursor, or None at the end."""
    at = Cursor.decode(cursor)
    limit = max(1, min(limit, MAX_PAGE))
    items: list[dict[str, Any]] = []
    last: Cursor | None = None
    kinds: tuple[EventType, ...] = ("2207", "2208") if at.kind == "2207" else ("2208",)
    for kind in kinds:
        want = limit - len(items)
        after = at.after_id if kind == at.kind else 0
        # one row more than fits tells whether the page ends inside this kind
        rows = await _events(kind, institution, day).filter(id__gt=after).order_by("id").limit(want + 1)
        for s in rows[:want]:
            items.append(item_of(kind, s, s.institution_id))
            last = Cursor(kind, s.id)
        if len(rows) > want and last is not None:
            return items, last.encode()
    return items, None


async def stream(
    institution: str | None, day: date, *, batch: int = MAX_PAGE
) -> AsyncIterator[dict[str, Any]]:
    """Every event of the day, page by page (memory flat whatever the day's size)."""
    cursor: str | None = None
    for _ in range(10_000_000):  # bounded: far beyond any day
        items, cursor = await page(institution, day, cursor, batch)
        for item in items:
            yield item
        if cursor is None:
            return


__all__ = ["AMOUNTS", "Cursor", "day_bounds", "item_of", "page", "parse_day", "stream", "totals"]
