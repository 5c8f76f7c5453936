"""The bureau's 对账 file: a day's events as a CSV, compared with an institution's own.

``python -m server reconcile --date D [--institution CODE] [--against FILE.csv]
[--out FILE.csv]`` writes every 2207 / 2208 event of the day (one institution or all,
:mod:`.reconciliation` decides what a day holds) and, with ``--against``, marks each row:

* ``ok`` — in both, every column the institution's file has agrees;
* ``mismatch`` — in both, and ``difference`` names each column that disagrees
  (``acct_pay 10.00≠12.00``); amounts compare as exact 分, times as instants;
* ``only_ours`` / ``only_theirs`` — recorded on one side only;
* ``invalid`` — their row cannot be read (an amount that is not a yuan string, a
  duplicate ``type`` + ``setl_id``).

The institution's file needs ``setl_id``; ``type`` (2207 / 2208) defaults to 2207; any of
``med_type``, ``psn_no``, ``setl_time`` and the 2207 amounts it has are compared. It is
held in memory keyed by (type, setl_id) — one institution's day — while our side streams
from the database page by page.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from server.domain.csvio import CsvIn, CsvOut
from server.domain.errors import DomainError
from server.domain.settlements import reconciliation
from server.domain.settlements.reconciliation import AMOUNTS
from server.domain.settlements.request import parse_setl_time, yuan_to_fen

COLUMNS = [
    "institution",
    "type",
    "setl_id",
    "mdtrt_id",
    "psn_no",
    "med_type",
    "setl_time",
    "reversed_at",
    "state",
    *AMOUNTS,
]
CHECK_COLUMNS = ["check", "difference"]
COMPARED = ("med_type", "psn_no", "setl_time", *AMOUNTS)


@dataclass
class Report:
    """What a run wrote: rows, sums per event type (分), and the checks' counts."""

    out: str
    rows: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # by event type
    sums: dict[str, Counter[str]] = field(default_factory=dict)  # type → amount → 分
    checks: Counter[str] = field(default_factory=Counter)

    @property
    def differences(self) -> int:
        return sum(n for check, n in self.checks.items() if check != "ok")


def _same(column: str, ours: Any, theirs: str) -> bool:
    if column in AMOUNTS:
        return yuan_to_fen(ours, column) == yuan_to_fen(theirs, column)
    if column == "setl_time":
        return parse_setl_time(ours) == parse_setl_time(theirs)
    return str(ours or "") == theirs


def _read_theirs(path: str | Path) -> tuple[dict[tuple[str, str], dict[str, str]], list[dict[str, Any]]]:
    theirs: dict[tuple[str, str], dict[str, str]] = {}
    invalid: list[dict[str, Any]] = []
    optional = ("type", "institution", "mdtrt_id", "reversed_at", "state", *COMPARED)
    with CsvIn(path, required=("setl_id",), optional=optional, error_code="RECONCILE_FILE_INVALID") as f:
        for line, row in f:
            kind = row.get("type") or "2207"
            key = (kind, row["setl_id"])
            problem = None
            if kind not in ("2207", "2208"):
                problem = f"line {line}: type {kind!r} is neither 2207 nor 2208"
            elif key in theirs:
                problem = f"line {line}: {kind} {row['setl_id']} appears twice"
            else:
                for column in AMOUNTS:
                    if row.get(column):
                        try:
                            yuan_to_fen(row[column], column)
                        except DomainError:
                            problem = f"line {line}: {column} {row[column]!r} is not a yuan amount"
                            break
                if problem is None and row.get("setl_time"):
                    try:
                        parse_setl_time(row["setl_time"])
                    except DomainError:
                        problem = f"line {line}: setl_time {row['setl_time']!r} is not a time"
            if problem:
                invalid.append({**row, "type": kind, "check": "invalid", "difference": problem})
            else:
                theirs[key] = row
    return theirs, invalid


async def write(
    *,
    day: date,
    out: str | Path,
    institution: str | None = None,
    against: str | Path | None = None,
) -> Report:
    """Write the day's events to ``out`` (``-``: stdout), compared with ``against``."""
    if against is not None and institution is None:
        raise DomainError("INSTITUTION_REQUIRED", "与机构对账文件比对时须指定 --institution")
    theirs, invalid = _read_theirs(against) if against is not None else ({}, [])
    columns = COLUMNS + (CHECK_COLUMNS if against is not None else [])
    report = Report(out=str(out))
    with CsvOut(out, columns) as csv_out:
        async for item in reconciliation.stream(institution, day):
            kind = item["type"]
            report.counts[kind] += 1
            sums = report.sums.setdefault(kind, Counter())
            for name in AMOUNTS:
                sums[name] += yuan_to_fen(item[name], name)
            if against is not None:
                row = theirs.pop((kind, item["setl_id"]), None)
                if row is None:
                    item.update(check="only_ours", difference="")
                else:
                    diffs = [
                        f"{c} {item[c]}≠{row[c]}"
                        for c in COMPARED
                        if row.get(c) and not _same(c, item[c], row[c])
                    ]
                    item.update(check="mismatch" if diffs else "ok", difference="; ".join(diffs))
                report.checks[item["check"]] += 1
            csv_out.write(item)
        for row in theirs.values():
            row = {**row, "type": row.get("type") or "2207", "institution": institution or ""}
            csv_out.write({**row, "check": "only_theirs", "difference": ""})
            report.checks["only_theirs"] += 1
        for row in invalid:
            csv_out.write({**row, "institution": institution})
            report.checks["invalid"] += 1
        report.rows = csv_out.rows
    return report


__all__ = ["COLUMNS", "Report", "write"]
