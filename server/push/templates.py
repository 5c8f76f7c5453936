"""A notice's semantic fields → the keywords of its kind's WeChat template (pure, no I/O).

``Notice.data`` holds semantic fields (``server.domain.notices_outbox``); each kind's
template maps WeChat keywords to them (config ``[push.kinds.<kind>]``). The keyword's type
prefix (thing, amount, time, …) decides the format and WeChat's length limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from server.domain.clock import SHANGHAI

__all__ = ["Unbuildable", "build_data", "format_keyword", "is_keyword", "render_data"]

# Keyword limits — WeChat 订阅消息参数值内容限制; OA template fields: ≤ 20
# characters, no line breaks, no first/remark since 2023-05-04
# (关于规范公众号模板消息的再次公告).
_THING_MAX = 20
_CHARSTR_MAX = 32
_PHRASE_MAX = 5
_NAME_MAX = 10
_KEY_TYPE = re.compile(r"^([a-z_]+?)\d+$")
_KEYWORD_TYPES = frozenset(
    {"thing", "number", "letter", "symbol", "character_string", "time", "date", "amount",
     "phone_number", "car_number", "name", "phrase"}
)
_PRINTABLE_ASCII = re.compile(r"[^\x21-\x7e]")


class Unbuildable(Exception):
    """A notice whose data cannot be put into its template: it ends ``failed``, never
    retried (the same data would fail the same way) and never silently dropped."""


def is_keyword(key: str) -> bool:
    """Whether ``key`` is a WeChat keyword name (type prefix + number: ``thing1``)."""
    match = _KEY_TYPE.match(key)
    return match is not None and match.group(1) in _KEYWORD_TYPES


def _truncate(text: str, limit: int) -> str:
    text = " ".join(str(text).split())  # no line breaks: WeChat drops them
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _yuan(fen: Any) -> str:
    """Integer 分 → ``"12.34元"`` (exact, Decimal) — the amount keyword's format."""
    value = (Decimal(int(fen)) / 100).quantize(Decimal("0.01"))
    return f"{value}元"


def _local_time(value: Any) -> str:
    """ISO time (UTC or with offset) → ``"2026-11-23 14:05"`` in Asia/Shanghai."""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def format_keyword(key: str, value: Any) -> str:
    """Format one value for a WeChat keyword by its type prefix (thing, amount, time, …)."""
    match = _KEY_TYPE.match(key)
    kind = match.group(1) if match else "thing"
    if kind == "amount":
        return _yuan(value)
    if kind in ("time", "date"):
        return _local_time(value)
    if kind == "character_string":
        return _truncate(_PRINTABLE_ASCII.sub("", str(value)) or "-", _CHARSTR_MAX)
    if kind == "number":
        return str(value)
    if kind == "phrase":
        return str(value)[:_PHRASE_MAX]
    if kind == "name":
        return str(value)[:_NAME_MAX]
    return _truncate(str(value), _THING_MAX)


def render_data(
    keywords: Mapping[str, str], data: Mapping[str, Any], *, med_types: Mapping[str, str]
) -> dict[str, str]:
    """Map a notice's semantic fields to template keywords.

    ``keywords`` maps a WeChat keyword to a field name (``"a|b"``: the first present;
    ``"=text"``: literal text). A keyword whose field is absent is left out.
    """
    out: dict[str, str] = {}
    for key, source in keywords.items():
        if source.startswith("="):
            out[key] = format_keyword(key, source[1:])
            continue
        value = next(
            (data[name] for name in source.split("|") if data.get(name) not in (None, "")), None
        )
        if value is None:
            continue
        if source == "med_type":
            value = med_types.get(str(value), str(value))
        out[key] = format_keyword(key, value)
    return out


def build_data(
    keywords: Mapping[str, str], data: Any, *, med_types: Mapping[str, str]
) -> dict[str, str]:
    """:func:`render_data` for a stored notice: data that is not an object, or a value its
    keyword cannot take (an amount that is not a number, a time that is not ISO 8601),
    raises :class:`Unbuildable`."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise Unbuildable(f"notice data is a {type(data).__name__}, not an object")
    try:
        return render_data(keywords, data, med_types=med_types)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise Unbuildable(str(exc)) from exc
