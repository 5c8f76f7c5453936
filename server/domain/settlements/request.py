"""The 2207 / 2208 bodies at the edge: exact yuan strings ↔ integer 分, validation.

The national interfaces carry amounts as decimal yuan strings; everything behind this
module works in integer 分 (SPEC.md "Money"). A body whose totals do not add up is
refused here (422), before any row is read.
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
_YUAN_RE = re.compile(r"^(0|[1-9]\d{0,11})(\.\d{1,2})?$")


# --- amounts ------------------------------------------------------------------------


def yuan_to_fen(value: Any, name: str) -> int:
    """A decimal yuan string with at most 2 decimals → exact integer 分; anything else 422."""
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
    return DomainError("VALIDATION_FAILED", message, 422, fields={name: code})


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

    @property
    def inpatient(self) -> bool:
        return self.med_type.startswith(INPATIENT_PREFIX)


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
            422,
            fields={"hifp_pay": "AMOUNTS_INCONSISTENT"},
        )
    if fund + psn_part != medfee:
        raise DomainError(
            "AMOUNTS_INCONSISTENT",
            "医疗费总额(medfee_sumamt)应等于基金支付总额与个人负担之和",
            422,
            fields={"medfee_sumamt": "AMOUNTS_INCONSISTENT"},
        )
    ids = [k for k in ("qr_token", "certno", "psn_no") if data.get(k)]
    if len(ids) != 1:
        raise DomainError(
            "MEMBER_IDENTIFIER_REQUIRED",
            "请提供且只提供一种参保人标识:qr_token(医保码)、certno 或 psn_no",
            422,
            fields={"qr_token": "ONE_OF_REQUIRED"},
        )
    try:
        setl_time = datetime.fromisoformat(str(data.get("setl_time")))
    except ValueError:
        raise _field_error("setl_time", "INVALID_FORMAT", "结算时间格式不正确(ISO 8601)") from None
    if setl_time.tzinfo is None:  # the national format is Beijing time without offset
        setl_time = setl_time.replace(tzinfo=SHANGHAI)
    # stored as Beijing time, like the ORM's own timestamps (SQLite compares them as text)
    setl_time = setl_time.astimezone(SHANGHAI)
    canonical = json.dumps(dict(data), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return SettlementRequest(
        setl_id=str(data["setl_id"]),
        mdtrt_id=data.get("mdtrt_id"),
        med_type=str(data["med_type"]),
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
    )


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
            422,
            fields={"setl_id": "MISMATCH"},
        )
    reason = data.get("reason")
    return ReversalRequest(path_setl_id, str(reason) if reason is not None else None)


__all__ = [
    "INPATIENT_PREFIX",
    "ReversalRequest",
    "SettlementRequest",
    "fen_to_yuan",
    "parse_request",
    "parse_reversal",
    "yuan_to_fen",
]
