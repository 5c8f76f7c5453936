"""Process logging: one stderr handler, personal data masked, cheap per line.

Every request writes an access-log line, so the path of one INFO line matters (the bot
bench spent ~14 % of its CPU there). Two things keep it cheap:

* ``BufferedStderrHandler`` — lines are written to stderr in blocks instead of one
  ``write()`` syscall each: at most ``delay`` seconds (0.2) after the first buffered line,
  at once for a WARNING or worse (everything before it first, order kept), and when the
  buffer passes 64 KiB. Outside an event loop (CLI commands, other threads) a line is
  written at once. Exit flushes (``logging.shutdown``).
* ``Formatter.formatTime`` — the date part of ``asctime`` is formatted once a second.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TextIO

__all__ = ["BufferedStderrHandler", "Formatter", "setup_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class Formatter(logging.Formatter):
    """``logging.Formatter`` whose default ``asctime`` (local time, ``,mmm``) is cached
    per second: ``time.strftime`` is the costliest part of formatting a record."""

    _second = -1
    _stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return f"{self._stamp},{int(record.msecs):03d}"  # default_msec_format: "%s,%03d"


class BufferedStderrHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` writing in blocks (see the module docstring)."""

    def __init__(self, stream: TextIO | None = None, *, delay: float = 0.2,
                 max_buffered: int = 65_536, flush_level: int = logging.WARNING) -> None:
        super().__init__(stream if stream is not None else sys.stderr)
        self.delay = delay
        self.max_buffered = max_buffered
        self.flush_level = flush_level
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:  # noqa: BLE001 — logging's own contract: report, never raise
            self.handleError(record)
            return
        self._lines.append(line)
        self._size += len(line)
        if record.levelno >= self.flush_level or self._size >= self.max_buffered:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop in this thread: nobody would flush later
                self.flush()
                return
            self._timer = loop.call_later(self.delay, self._flush_later)

    def _flush_later(self) -> None:
        self.acquire()
        try:
            self._timer = None
            self._write()
        finally:
            self.release()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        if not self._lines:
            return
        block = "".join(self._lines)
        self._lines.clear()
        self._size = 0
        try:
            self.stream.write(block)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not break requests
            pass


def setup_logging(level: str = "INFO") -> None:
    from server.domain.pii import ScrubbingFilter

    # The format names no thread, process or source line: do not collect them for every
    # record (Python docs, logging "Optimization"; ~5 µs of each access-log line).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    handler = BufferedStderrHandler()
    handler.setFormatter(Formatter(FORMAT))
    handler.addFilter(ScrubbingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # our own access log is richer
    logging.getLogger("tortoise").setLevel(logging.WARNING)
