"""The session-wide log check (tests/security/logscan.py) finds what it is there to find."""

from __future__ import annotations

import logging

from server.domain.pii import Scrubbed
from tests.security.logscan import LogScan, _scan


def _record(msg: object, *args: object) -> logging.LogRecord:
    return logging.LogRecord("server.test", logging.INFO, __file__, 1, msg, args, None)


def test_it_finds_names_ids_and_phones_the_filter_lets_through() -> None:
    scan = LogScan()
    scan.emit(_record("bound %s for %s", "李秀英", "420102195806122242"))  # the name: no filter masks it
    scan.emit(_record(Scrubbed('{"user":"420102199003071232"}')))  # marked clean, but is not
    scan.emit(_record("call 13812345678"))  # masked by the filter: no hit
    scan.emit(_record("id 4201**********1232, phone 138****5678"))
    found = [needle for _, needle, _ in scan.hits]
    assert "李秀英" in found and "420102199003071232" in found
    assert "13812345678" not in found and "420102195806122242" not in found
    assert scan.lines == 4


def test_it_is_installed_for_the_run() -> None:
    assert _scan is not None and _scan in logging.getLogger().handlers
    before = _scan.lines
    logging.getLogger("server.access").info("a line")
    assert _scan.lines == before + 1


def test_our_request_ids_never_look_like_personal_data() -> None:
    """A hex id held an 11-digit run like a mobile number about once in 10,000 requests
    (the scrubber then masked it in error lines; this check flagged it in access lines)."""
    from server.domain.pii import scrub
    from server.middlewares import _new_rid

    rids = {_new_rid() for _ in range(20_000)}
    assert len(rids) == 20_000
    assert all(len(r) == 32 and r.isalpha() and r.isascii() and scrub(r) == r for r in rids)
