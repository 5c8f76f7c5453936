"""Process logging: block-buffered stderr, cached asctime, personal data never in a line."""

from __future__ import annotations

import asyncio
import io
import logging

from server.domain.pii import Scrubbed, ScrubbingFilter
from server.logs import FORMAT, BufferedStderrHandler, Formatter


def _record(msg: str, level: int = logging.INFO, created: float | None = None,
            args: tuple[object, ...] = ()) -> logging.LogRecord:
    record = logging.LogRecord("t", level, __file__, 1, msg, args, None)
    if created is not None:
        record.created = created
        record.msecs = int((created - int(created)) * 1000)
    return record


def _handler(stream: io.StringIO, **kw: object) -> BufferedStderrHandler:
    handler = BufferedStderrHandler(stream, **kw)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(ScrubbingFilter())
    return handler


def test_formatter_matches_the_standard_one_across_seconds() -> None:
    ours, standard = Formatter(FORMAT), logging.Formatter(FORMAT)
    for created in (1_790_000_000.001, 1_790_000_000.999, 1_790_000_001.5, 1_790_000_000.25,
                    1_790_086_400.0):
        record = _record("hello", created=created)
        assert ours.format(record) == standard.format(record)
    record = _record("x", created=1_790_000_000.5)
    assert Formatter(FORMAT, datefmt="%H:%M").format(record) == \
        logging.Formatter(FORMAT, datefmt="%H:%M").format(record)


class _Stream(io.StringIO):
    """A stream that counts its writes and says when one happened (no sleeping on a guess)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        self.writes += 1
        self.written.set()
        return super().write(text)

    async def next_write(self) -> None:
        await asyncio.wait_for(self.written.wait(), timeout=5)
        self.written.clear()


async def test_lines_are_written_in_blocks_inside_the_event_loop() -> None:
    stream = _Stream()
    handler = _handler(stream, delay=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    handler.handle(_record("one"))
    handler.handle(_record("two"))
    assert stream.getvalue() == ""  # buffered: no write per line
    await stream.next_write()
    assert loop.time() - started >= 0.05 * 0.9  # the timer's delay (loop clock granularity)
    assert stream.getvalue() == "INFO one\nINFO two\n"
    assert stream.writes == 1  # both lines in one block
    handler.handle(_record("three"))
    assert stream.writes == 1
    await stream.next_write()
    assert stream.getvalue().endswith("INFO three\n") and stream.writes == 2


async def test_a_warning_flushes_at_once_keeping_order() -> None:
    stream = io.StringIO()
    handler = _handler(stream, delay=60)
    handler.handle(_record("before"))
    handler.handle(_record("trouble", logging.WARNING))
    assert stream.getvalue() == "INFO before\nWARNING trouble\n"


async def test_a_full_buffer_is_written_without_waiting() -> None:
    stream = io.StringIO()
    handler = _handler(stream, delay=60, max_buffered=100)
    for i in range(10):
        handler.handle(_record(f"line {i:02d} " + "x" * 10))
    assert stream.getvalue().count("\n") >= 5
    handler.flush()
    assert stream.getvalue().count("\n") == 10


def test_outside_an_event_loop_a_line_is_written_at_once() -> None:
    stream = io.StringIO()
    handler = _handler(stream, delay=60)
    handler.handle(_record("cli"))
    assert stream.getvalue() == "INFO cli\n"


def test_personal_data_is_masked_unless_the_text_is_marked_scrubbed() -> None:
    stream = io.StringIO()
    handler = _handler(stream)
    handler.handle(_record("phone %s", args=("13812345678",)))
    handler.handle(_record(Scrubbed('{"rid":"abc","status":200}')))
    # a Scrubbed template with arguments is still checked: the arguments are free text
    handler.handle(_record(Scrubbed("id %s"), args=("420102199003071232",)))
    assert stream.getvalue().splitlines() == [
        "INFO phone 138****5678",
        'INFO {"rid":"abc","status":200}',
        "INFO id 4201**********1232",
    ]
