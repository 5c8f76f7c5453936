"""Time for calendar rules (Asia/Shanghai) and the clock every service is given.

SPEC.md: natural months, policy dates and years are Asia/Shanghai calendar days; API.md
times are ISO 8601 with the +08:00 offset. Services take a ``Clock`` (a callable
returning an aware UTC ``datetime``) so tests can move time; production passes
:func:`utc_now`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The production clock."""
    return datetime.now(UTC)


def cn_iso(dt: datetime) -> str:
    """API.md times: ISO 8601 with the +08:00 offset."""
    return dt.astimezone(SHANGHAI).isoformat(timespec="seconds")


def cn_iso_or_none(dt: datetime | None) -> str | None:
    return None if dt is None else cn_iso(dt)


def cn_today(now: datetime | None = None) -> date:
    """The calendar date in Asia/Shanghai (policy dates, natural months, years)."""
    return (now or datetime.now(SHANGHAI)).astimezone(SHANGHAI).date()


def parse_uuid(value: Any) -> uuid.UUID | None:
    """A UUID from a path parameter or a stored value; None when it is not one
    (callers answer 404: an id that cannot exist is indistinguishable from one that
    does not)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


__all__ = ["SHANGHAI", "Clock", "cn_iso", "cn_iso_or_none", "cn_today", "parse_uuid", "utc_now"]
