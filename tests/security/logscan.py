"""Every log line of the whole test run, checked for personal data (the security matrix's
"no personal data in any log line").

A handler on the root logger, at the production level (INFO; aiohttp's access log and
Tortoise at WARNING, as ``server.logs.setup_logging`` sets them), sees every record of
every test, formats it as production would (``server.logs.FORMAT`` after the
``ScrubbingFilter``, on a copy of the record: pytest's own capture is left as it was),
and looks for:

* the demo registry's people in the clear: names, ID numbers (config/demo_registry.csv),
  and the phone numbers the tests use;
* any unmasked ID or mobile number (``server.domain.pii``'s patterns) — lines marked
  ``Scrubbed`` skip the filter, so this is not a tautology.

A hit fails the run at its end (``pytest_sessionfinish``) with the test and the line.
Cheap: one format and a few substring checks per record.
"""

from __future__ import annotations

import copy
import csv
import logging
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PHONES = ("13812345678", "13912345678", "13800138000", "15012345678", "18612345678")
EXTRA_PEOPLE = ("张小宝", "P420012345", "H12345678")  # tests.family.helpers beyond the CSV


def needles() -> list[str]:
    out: list[str] = [*PHONES, *EXTRA_PEOPLE]
    with (ROOT / "config" / "demo_registry.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out += [row["name"], row["id_number"]]
            out += [g for g in (row.get("guardian_id_numbers") or "").split(";") if g]
    return sorted({n for n in out if len(n) >= 2})


class LogScan(logging.Handler):
    def __init__(self) -> None:
        from server.domain.pii import _ID_RE, _PHONE_RE, ScrubbingFilter
        from server.logs import FORMAT, Formatter

        super().__init__(logging.INFO)
        self.setFormatter(Formatter(FORMAT))
        self._scrub = ScrubbingFilter()
        self._needles = needles()
        self._patterns = (_ID_RE, _PHONE_RE)
        self.test = "(collection)"
        self.lines = 0
        self.hits: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            rec = copy.copy(record)
            self._scrub.filter(rec)
            line = self.format(rec)
        except Exception:  # noqa: BLE001 — a record that cannot be formatted is pytest's to show
            return
        self.lines += 1
        for n in self._needles:
            if n in line:
                self.hits.append((self.test, n, line[:300]))
        for p in self._patterns:
            m = p.search(line)
            if m:
                self.hits.append((self.test, m.group(0), line[:300]))


_scan: LogScan | None = None


def install() -> None:
    global _scan
    _scan = LogScan()
    root = logging.getLogger()
    root.addHandler(_scan)
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("tortoise").setLevel(logging.WARNING)


def set_test(nodeid: str) -> None:
    if _scan is not None:
        _scan.test = nodeid


def report(session: Any) -> None:
    if _scan is None:
        return
    logging.getLogger().removeHandler(_scan)
    if not _scan.hits:
        return
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"personal data in {len(_scan.hits)} log line(s) (tests/security/logscan.py):"]
    seen = set()
    for test, needle, line in _scan.hits:
        if (test, needle) in seen:
            continue
        seen.add((test, needle))
        lines.append(f"  {test}: {needle!r} in {line}")
    text = "\n".join(lines[:60])
    if tr is not None:
        tr.write_line(text, red=True)
    else:
        print(text)
    session.exitstatus = 1
