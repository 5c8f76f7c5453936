"""The 2207 / 2208 bodies at the edge: exact yuan strings ↔ integer 分, validation.

The national interfaces carry amounts as decimal yuan strings; everything behind this
module works in integer 分 (SPEC.md "Money"). A body whose totals do not add up is
refused here (422), before any row is read.

Amounts and codes are ASCII only: Python's ``\\d`` and ``Decimal`` accept any Unicode
digit (``"1٠.00"`` is ten yuan to them), so every pattern here spells ``[0-9]``
(adversarial review, issue #17 finding 9).

The 政策范围内 breakdown (API.md v1.1): ``fulamt_ownpay_amt`` 全自费 + ``overlmt_selfpay``
超限价 + ``preselfpay_amt`` 先行自付 + ``inscp_scp_amt`` 符合范围 = ``medfee_sumamt`` (the
national 2207 identity), and the fund pays only inside ``inscp_scp_amt``. 全自费 and
超限价 are outside the policy's scope: 共济 never pays them (SPEC.md "scope").
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from server.domain.clock import SHANGHAI
from server.domain.errors import DomainError

INPATIENT_PREFIX = "2"  # national med_type 21 普通住院, 22…, 2x: hospitalization
_YUAN_RE = re.compile(r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$")
_MED_TYPE_RE = re.compile(r"^[0-9]{2,6}$")
# settlement times outside these years are a client's bug, not a visit (and the far ends
# overflow when converted to Beijing time: issue #17 finding 8)
SETL_YEARS = (2000, 2099)
# the 政策范围内 breakdown of medfee_sumamt (national 2207 names)
BREAKDOWN = ("fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt")


# --- amounts ------------------------------------------------------------------------


def yuan_to_fen(value: Any, name: str) -> int:
    """A decimal yuan string (ASCII digits) with at most 2 decimals → exact integer 分;
    anything else 422."""
    if not isinstance(value, str) or not _YUAN_RE.match(value):
        raise _field_error(
            name, "INVALID_AMOUNT", f"{name} 必须是元为单位、最多两位小数的非负金额字符串"
        )
    try:
        fen = Decimal(value) * 100
    except InvalidOperation:  # pragma: no cover - the pattern already guarantees a number
        raise _field_error(name, "INVALID_AMOUNT", f"{name} 金额格式不正确") from None
    return int(fen)


def fen_to_yuan(fen: int) -> str:
    """Integer 分 → the national yuan string (two decimals, exact)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def _field_error(name: str, code: str, message: str) -> DomainError:
    return DomainError("VALIDATION_FAILED", message, fields={name: code})


# --- the 2207 request ---------------------------------------------------------------


@dataclass(frozen=True)
class SettlementRequest:
    """A validated 2207 request, amounts in 分."""

    setl_id: str
    med_type: str
    setl_time: datetime
    medfee_fen: int
    hifp_fen: int
    fund_pay_fen: int
    psn_part_fen: int
    body_sha256: str
    mdtrt_id: str | None = None
    qr_token: str | None = None
    certno: str | None = None
    id_type: str = "resident_id"
    psn_no: str | None = None
    # the 政策范围内 breakdown, when the institution sent it (None: all of psn_part in scope)
    fulamt_ownpay_fen: int | None = None
    overlmt_selfpay_fen: int | None = None
    preselfpay_fen: int | None = None
    inscp_scp_fen: int | None = None

    @property
    def inpatient(self) -> bool:
        return self.med_type.startswith(INPATIENT_PREFIX)

    @property
    def has_breakdown(self) -> bool:
        return self.inscp_scp_fen is not None

    def breakdown(self) -> dict[str, int]:
        """The breakdown in 分 under the national names (empty without one)."""
        if not self.has_breakdown:
            return {}
        return {
            "fulamt_ownpay_amt": self.fulamt_ownpay_fen or 0,
            "overlmt_selfpay": self.overlmt_selfpay_fen or 0,
            "preselfpay_amt": self.preselfpay_fen or 0,
            "inscp_scp_amt": self.inscp_scp_fen or 0,
        }


def parse_request(data: Mapping[str, Any], *, institution_code: str) -> SettlementRequest:
    """Convert a 2207 body (already schema-checked) exactly; inconsistent totals → 422.

    ``medfee_sumamt`` = ``fund_pay_sumamt`` + ``psn_part_amt``; ``hifp_pay`` ≤
    ``fund_pay_sumamt`` (absent: ``fund_pay_sumamt`` = ``hifp_pay``). ``body_sha256``
    (institution + canonical body) is what makes a retry "the same settlement".
    """
    medfee = yuan_to_fen(data.get("medfee_sumamt"), "medfee_sumamt")
    hifp = yuan_to_fen(data.get("hifp_pay"), "hifp_pay")
    fund = (
        yuan_to_fen(data["fund_pay_sumamt"], "fund_pay_sumamt")
        if data.get("fund_pay_sumamt") is not None
        else hifp
    )
    psn_part = yuan_to_fen(data.get("psn_part_amt"), "psn_part_amt")
    if hifp > fund:
        raise DomainError(
            "AMOUNTS_INCONSISTENT",
            "统筹基金支付(hifp_pay)不能大于基金支付总额(fund_pay_sumamt)",
            fields={"hifp_pay": "AMOUNTS_INCONSISTENT"},
        )
    if fund + psn_part != medfee:
        raise DomainError(
            "AMOUNTS_INCONSISTENT",
            "医疗费总额(medfee_sumamt)应等于基金支付总额与个人负担之和",
            fields={"medfee_sumamt": "AMOUNTS_INCONSISTENT"},
        )
    breakdown = _parse_breakdown(data, medfee=medfee, fund=fund)
    ids = [k for k in ("qr_token", "certno", "psn_no") if data.get(k)]
    if len(ids) != 1:
        raise DomainError(
            "MEMBER_IDENTIFIER_REQUIRED",
            "请提供且只提供一种参保人标识:qr_token(医保码)、certno 或 psn_no",
            fields={"qr_token": "ONE_OF_REQUIRED"},
        )
    med_type = str(data.get("med_type"))
    if not _MED_TYPE_RE.match(med_type):
        raise _field_error("med_type", "INVALID_FORMAT", "医疗类别(med_type)必须是 2–6 位数字")
    setl_time = parse_setl_time(data.get("setl_time"))
    canonical = json.dumps(dict(data), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return SettlementRequest(
        setl_id=str(data["setl_id"]),
        mdtrt_id=data.get("mdtrt_id"),
        med_type=med_type,
        setl_time=setl_time,
        medfee_fen=medfee,
        hifp_fen=hifp,
        fund_pay_fen=fund,
        psn_part_fen=psn_part,
        body_sha256=hashlib.sha256(f"{institution_code}\n{canonical}".encode()).hexdigest(),
        qr_token=data.get("qr_token"),
        certno=data.get("certno"),
        id_type=data.get("id_type") or "resident_id",
        psn_no=data.get("psn_no"),
        fulamt_ownpay_fen=breakdown.get("fulamt_ownpay_amt"),
        overlmt_selfpay_fen=breakdown.get("overlmt_selfpay"),
        preselfpay_fen=breakdown.get("preselfpay_amt"),
        inscp_scp_fen=breakdown.get("inscp_scp_amt"),
    )


def parse_setl_time(value: Any) -> datetime:
    """ISO 8601 (Beijing time when without an offset) → an aware Beijing time, or 422.

    Stored as Beijing time, like the ORM's own timestamps (SQLite compares them as text).
    Years outside ``SETL_YEARS`` are refused before the conversion, which overflows at
    the ends of the calendar (``0001-01-01T00:00:00+14:00``).
    """
    try:
        setl_time = datetime.fromisoformat(str(value))
    except ValueError:
        raise _field_error("setl_time", "INVALID_FORMAT", "结算时间格式不正确(ISO 8601)") from None
    if not SETL_YEARS[0] <= setl_time.year <= SETL_YEARS[1]:
        raise _field_error(
            "setl_time",
            "OUT_OF_RANGE",
            f"结算时间必须在 {SETL_YEARS[0]}–{SETL_YEARS[1]} 年之间",
        )
    if setl_time.tzinfo is None:  # the national format is Beijing time without offset
        setl_time = setl_time.replace(tzinfo=SHANGHAI)
    return setl_time.astimezone(SHANGHAI)


def _parse_breakdown(data: Mapping[str, Any], *, medfee: int, fund: int) -> dict[str, int]:
    """The 政策范围内 breakdown in 分 (absent fields count 0), or {} when none was sent.

    全自费 + 超限价 + 先行自付 + 符合范围 must equal ``medfee_sumamt``, and the fund pays
    only inside the 符合范围 part (``fund_pay_sumamt`` ≤ ``inscp_scp_amt``); otherwise 422
    ``AMOUNTS_INCONSISTENT`` naming the fields.
    """
    sent = [name for name in BREAKDOWN if data.get(name) is not None]
    if not sent:
        return {}
    parts = {name: yuan_to_fen(data[name], name) if name in sent else 0 for name in BREAKDOWN}
    if sum(parts.values()) != medfee:
        raise DomainError(
            "AMOUNTS_INCONSISTENT",
            "全自费、超限价、先行自付与符合范围金额之和应等于医疗费总额(medfee_sumamt)",
            fields={name: "AMOUNTS_INCONSISTENT" for name in (*BREAKDOWN, "medfee_sumamt")},
        )
    if fund > parts["inscp_scp_amt"]:
        raise DomainError(
            "AMOUNTS_INCONSISTENT",
            "基金支付总额(fund_pay_sumamt)不能大于符合范围金额(inscp_scp_amt)",
            fields={"fund_pay_sumamt": "AMOUNTS_INCONSISTENT", "inscp_scp_amt": "AMOUNTS_INCONSISTENT"},
        )
    return parts


# --- the 2208 request ---------------------------------------------------------------


@dataclass(frozen=True)
class ReversalRequest:
    """A 2208 reversal of the settlement ``setl_id``."""

    setl_id: str
    reason: str | None = None


def parse_reversal(path_setl_id: str, data: Mapping[str, Any]) -> ReversalRequest:
    """The 2208 body names the settlement of the path again; a different one is 422."""
    if data.get("setl_id") != path_setl_id:
        raise DomainError(
            "VALIDATION_FAILED",
            "请求体中的 setl_id 与路径不一致",
            fields={"setl_id": "MISMATCH"},
        )
    reason = data.get("reason")
    return ReversalRequest(path_setl_id, str(reason) if reason is not None else None)


__all__ = [
    "BREAKDOWN",
    "INPATIENT_PREFIX",
    "ReversalRequest",
    "SettlementRequest",
    "fen_to_yuan",
    "parse_request",
    "parse_reversal",
    "parse_setl_time",
    "yuan_to_fen",
]
