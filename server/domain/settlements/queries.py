"""The read side of settlements: a member's list and yearly totals (the binding flow's
``GET /family/members/{id}/settlements`` and ``…/summary``).

Calendar years are Asia/Shanghai years; amounts are integer 分 under the national names
(the mini-program API's unit). Nothing here writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tortoise.functions import Count, Sum

from server.domain import ledger
from server.domain.clock import SHANGHAI, cn_iso, cn_iso_or_none
from server.domain.models import Settlement


def year_bounds(year: int) -> tuple[datetime, datetime]:
    """[1 January, next 1 January) of ``year`` in Asia/Shanghai."""
    return datetime(year, 1, 1, tzinfo=SHANGHAI), datetime(year + 1, 1, 1, tzinfo=SHANGHAI)


async def list_for_member(
    member_id: int, year: int, *, limit: int = 200, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """A member's settlements in a calendar year (Asia/Shanghai), newest first.

    Items use the national names with amounts in 分, plus ``institution`` and ``state``.
    """
    start, end = year_bounds(year)
    query = Settlement.filter(member_id=member_id, setl_time__gte=start, setl_time__lt=end)
    total = await query.count()
    rows = (
        await query.order_by("-setl_time", "-id")
        .offset(offset)
        .limit(limit)
        .select_related("institution")
    )
    items = [
        {
            "setl_id": s.setl_id,
            "institution": s.institution.name,
            "med_type": s.med_type,
            "setl_time": cn_iso(s.setl_time),
            # the national names, amounts in 分 (the mini-program API's unit)
            "medfee_sumamt": s.medfee_sumamt_fen,
            "hifp_pay": s.hifp_pay_fen,
            "fund_pay_sumamt": s.fund_pay_sumamt_fen,
            "psn_part_amt": s.psn_part_amt_fen,
            "acct_pay": s.acct_pay_fen,
            "acct_mulaid_pay": s.acct_mulaid_pay_fen,
            "psn_cash_pay": s.psn_cash_pay_fen,
            "state": s.state,
            "reversed_at": cn_iso_or_none(s.reversed_at),
        }
        for s in rows
    ]
    return items, total


async def yearly_summary(member_id: int, year: int) -> dict[str, Any]:
    """Balance now and the year's totals, amounts in 分 under the national names (reversed
    settlements excluded)."""
    start, end = year_bounds(year)
    row = await (
        Settlement.filter(
            member_id=member_id, setl_time__gte=start, setl_time__lt=end, state="settled"
        )
        .annotate(
            n=Count("id"),
            medfee=Sum("medfee_sumamt_fen"),
            hifp=Sum("hifp_pay_fen"),
            psn_part=Sum("psn_part_amt_fen"),
            acct=Sum("acct_pay_fen"),
            mulaid=Sum("acct_mulaid_pay_fen"),
            cash=Sum("psn_cash_pay_fen"),
        )
        .first()
        .values("n", "medfee", "hifp", "psn_part", "acct", "mulaid", "cash")
    )
    row = row or {}
    return {
        "year": year,
        # None: the member has no personal account (e.g. 城乡居民医保)
        "balance": await ledger.balance_of(member_id),
        "count": int(row.get("n") or 0),
        "medfee_sumamt": int(row.get("medfee") or 0),
        "hifp_pay": int(row.get("hifp") or 0),
        "psn_part_amt": int(row.get("psn_part") or 0),
        "acct_pay": int(row.get("acct") or 0),
        "acct_mulaid_pay": int(row.get("mulaid") or 0),
        "psn_cash_pay": int(row.get("cash") or 0),
    }


__all__ = ["list_for_member", "year_bounds", "yearly_summary"]
