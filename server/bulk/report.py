"""What a bulk run tells its operator: rejected rows, progress, and the summary.

* :class:`RejectWriter` — a CSV of the rows that were not loaded: line number, reason
  code, the column at fault, a message in Chinese, and the row's ID number *masked*
  (enough to find the row; the input file holds the rest — personal data is never
  copied out in clear).
* :class:`Progress` — on a terminal a bar with rows/s and ETA, redrawn at most 5 times a
  second; otherwise (a log file, cron, CI) one plain log line every ``interval`` seconds.
  The ETA comes from the bytes read, so the file is never counted first.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import _csv

log = logging.getLogger("server.bulk")

# Reason codes of the reject report (docs/bulk.md)
MALFORMED = "malformed"  # a cell missing, of the wrong form, or the record unreadable
BAD_CHECKSUM = "bad_checksum"  # a GB 11643 ID number whose check character does not match
UNKNOWN_REGION = "unknown_region"  # a region code (or an ID's area code) of no known province
DUPLICATE = "duplicate"  # the same person as an earlier line of the file (the first one wins)
REASONS = (MALFORMED, BAD_CHECKSUM, UNKNOWN_REGION, DUPLICATE)

REJECT_HEADER = ["line", "reason", "field", "message", "id_number_masked"]


@dataclass(frozen=True)
class Reject:
    line: int
    reason: str  # one of REASONS
    field: str  # the column at fault ("" for the whole record)
    message: str  # Chinese, for the operator
    ref: str = ""  # the row's ID number, masked

    def text(self) -> str:
        return f"第 {self.line} 行 {self.field + ' ' if self.field else ''}{self.message}"


class RejectWriter:
    """Streams rejects to ``path`` (None: counted only). Keeps the first ``keep`` in memory
    for messages; the count is exact whatever the size."""

    def __init__(self, path: str | Path | None, *, keep: int = 20) -> None:
        self.path = Path(path) if path is not None else None
        self.keep = keep
        self.count = 0
        self.by_reason: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.first: list[Reject] = []
        self._file: TextIO | None = None
        self._csv: _csv.Writer | None = None

    def __enter__(self) -> RejectWriter:
        if self.path is not None:
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
            self._csv = csv.writer(self._file)
            self._csv.writerow(REJECT_HEADER)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def add(self, rejects: list[Reject]) -> None:
        """Write a batch's rejects (in line order)."""
        rejects = sorted(rejects, key=lambda r: r.line)
        for r in rejects:
            self.by_reason[r.reason] = self.by_reason.get(r.reason, 0) + 1
        self.count += len(rejects)
        room = self.keep - len(self.first)
        if room > 0:
            self.first.extend(rejects[:room])
        if self._csv is not None:
            self._csv.writerows((r.line, r.reason, r.field, r.message, r.ref) for r in rejects)


def _duration(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Reports ``update(rows, fraction)`` calls: a bar on a TTY, log lines otherwise.

    ``fraction`` is the share of the input consumed (bytes read / file size).
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        interval: float = 10.0,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval = interval if not self.tty else 0.2
        self._now = time.monotonic  # a test may replace it
        self.started = self._now()
        self._last = self.started
        self.rows = 0
        self.lines_written = 0

    def line(self, rows: int, fraction: float | None) -> str:
        """``fraction`` None: the total is unknown (an export) — no bar, no ETA."""
        elapsed = max(self._now() - self.started, 1e-9)
        rate = rows / elapsed
        if fraction is None:
            text = f"{self.label}: {rows:,} rows, {rate:,.0f} rows/s, elapsed {_duration(elapsed)}"
            return "\r" + text + " " if self.tty else text
        fraction = min(max(fraction, 0.0), 1.0)
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0
        if self.tty:
            width = 30
            done = int(width * fraction)
            bar = "#" * done + "." * (width - done)
            return (
                f"\r{self.label} [{bar}] {fraction:6.1%}  {rows:,} rows  {rate:,.0f} rows/s  "
                f"ETA {_duration(eta)} "
            )
        return (
            f"{self.label}: {rows:,} rows ({fraction:.1%} of the file), {rate:,.0f} rows/s, "
            f"elapsed {_duration(elapsed)}, ETA {_duration(eta)}"
        )

    def update(self, rows: int, fraction: float | None) -> None:
        self.rows = rows
        now = self._now()
        if now - self._last < self.interval:
            return
        self._last = now
        self._emit(self.line(rows, fraction))

    def done(self, rows: int, *, known_total: bool = True) -> None:
        self.rows = rows
        if self.tty:
            self._emit(self.line(rows, 1.0 if known_total else None))
            self.stream.write("\n")
            self.stream.flush()

    def _emit(self, text: str) -> None:
        self.lines_written += 1
        if self.tty:
            self.stream.write(text)
            self.stream.flush()
        else:
            log.info("%s", text)
