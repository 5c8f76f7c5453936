"""A CSV file read as a stream of batches: memory flat whatever the file size.

The file is read through one buffered binary handle wrapped for text, so the reader
knows how many bytes it has consumed (progress and ETA without counting lines first).
Each row comes with its line number in the file (the line on which the record ends, as
``csv`` counts it: a quoted field spanning lines moves it on) — what a reject report
names.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.domain.errors import DomainError

# (line number, cells), or (line number, why) for a record the CSV parser could not read
MAX_ROWS = 1_000_000_000  # bounded loop: far above a province (50 M), below any accident
Row = tuple[int, list[str] | str]


@dataclass(frozen=True)
class Layout:
    """The header a file must have: ``required`` columns, then optionally ``optional``
    ones (all or a prefix of them, in this order)."""

    required: Sequence[str]
    optional: Sequence[str] = ()
    error_code: str = "BULK_CSV_INVALID"

    def check(self, names: list[str]) -> list[str]:
        allowed = [list(self.required) + list(self.optional[:n]) for n in range(len(self.optional) + 1)]
        if names not in allowed:
            extra = "[," + ",".join(self.optional) + "]" if self.optional else ""
            raise DomainError(self.error_code, "CSV 表头必须是: " + ",".join(self.required) + extra)
        return names


class CsvSource:
    """``with CsvSource(path, layout) as src: for batch in src.batches(5000): …``.

    ``columns`` is the header as read (stripped); ``bytes_read`` / ``size`` tell how far
    the reader is. UTF-8 with or without a BOM.
    """

    def __init__(self, path: str | Path, layout: Layout) -> None:
        self.path = Path(path)
        self.layout = layout
        self.size = 0
        self.columns: list[str] = []
        self._raw: io.BufferedReader | None = None
        self._reader: Any = None  # csv.reader: an iterator with ``line_num``
        self._text: io.TextIOWrapper | None = None

    def __enter__(self) -> CsvSource:
        self._raw = open(self.path, "rb")  # noqa: SIM115 — closed in __exit__
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        assert self._raw is not None
        self.size = os.fstat(self._raw.fileno()).st_size
        text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
        # strict: a stray quote is an error of that record (reported, then reading goes on)
        # instead of silently swallowing the lines after it
        reader = csv.reader(text, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            header = []
        except (UnicodeDecodeError, csv.Error):
            raise DomainError(self.layout.error_code, "CSV 文件必须是 UTF-8 编码的 CSV") from None
        self.columns = self.layout.check([h.strip() for h in header])
        self._text = text
        self._reader = reader

    def __exit__(self, *exc: object) -> None:
        if self._raw is not None:
            self._raw.close()  # (the text wrapper only wraps it)
            self._raw = None

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far (to the text layer's read-ahead: a few KiB early)."""
        raw = self._raw
        return self.size if raw is None or raw.closed else min(raw.tell(), self.size)

    def batches(self, size: int) -> Iterator[list[Row]]:
        """Rows in batches of at most ``size``; blank lines are skipped. A record the CSV
        parser refuses (a stray quote, a field over the size limit) comes as its message."""
        reader = self._reader
        assert reader is not None, "use CsvSource as a context manager"
        batch: list[Row] = []
        for _ in range(MAX_ROWS):
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                batch.append((reader.line_num, f"CSV 格式错误: {exc}"))
            except UnicodeDecodeError:
                raise DomainError(
                    self.layout.error_code,
                    f"第 {reader.line_num + 1} 行附近不是 UTF-8 编码,文件无法继续读取",
                ) from None
            else:
                if not cells:
                    continue
                batch.append((reader.line_num, cells))
            if len(batch) >= size:
                yield batch
                batch = []
        else:
            raise DomainError(self.layout.error_code, f"文件超过 {MAX_ROWS:,} 行")
        if batch:
            yield batch
