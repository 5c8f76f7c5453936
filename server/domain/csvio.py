"""Streamed CSV in and out for the bureau's commands (credits, reconciliation).

Small on purpose: a stand-in for ``server/bulk`` (the bulk helper's streamed CSV, batch
writers and reject report, not on main when this was written) — fold these callers into it
when it lands. Memory stays flat whatever the file size: rows are read and written one at
a time; UTF-8 with or without a BOM; the line number of each record is what a message
names.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from server.domain.errors import DomainError

MAX_ROWS = 100_000_000  # bounded loop, far above any batch


class CsvIn:
    """``with CsvIn(path, required=(...), optional=(...)) as f: for line, row in f: …``.

    The header must name every ``required`` column (any order); ``optional`` and
    ``any_of`` (at least one of) columns may appear; anything else is refused, so a typo
    in a column name is not silently ignored.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        required: Sequence[str],
        optional: Sequence[str] = (),
        any_of: Sequence[str] = (),
        error_code: str = "CSV_INVALID",
    ) -> None:
        self.path = Path(path)
        self.required, self.optional, self.any_of = required, optional, any_of
        self.error_code = error_code
        self.columns: list[str] = []
        self._file: TextIO | None = None
        self._reader: Any = None

    def _fail(self, message: str) -> DomainError:
        return DomainError(self.error_code, f"{self.path.name}: {message}")

    def __enter__(self) -> CsvIn:
        try:
            self._file = open(self.path, encoding="utf-8-sig", newline="")  # noqa: SIM115
        except OSError as exc:
            raise self._fail(f"无法打开文件({exc.strerror})") from None
        try:
            self._check_header()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _check_header(self) -> None:
        assert self._file is not None
        self._reader = csv.reader(self._file, strict=True)
        try:
            header = [h.strip() for h in next(self._reader, [])]
        except (UnicodeDecodeError, csv.Error):
            raise self._fail("文件必须是 UTF-8 编码的 CSV") from None
        allowed = {*self.required, *self.optional, *self.any_of}
        missing = [c for c in self.required if c not in header]
        unknown = [c for c in header if c not in allowed]
        if missing or unknown or len(set(header)) != len(header):
            raise self._fail(
                f"表头应包含 {','.join(self.required)}"
                + (f",以及 {'/'.join(self.any_of)} 之一" if self.any_of else "")
                + (f"(可选 {','.join(self.optional)})" if self.optional else "")
                + f";缺少 {missing or '无'},不认识 {unknown or '无'}"
            )
        if self.any_of and not any(c in header for c in self.any_of):
            raise self._fail(f"表头须包含 {'/'.join(self.any_of)} 之一")
        self.columns = header

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self) -> Iterator[tuple[int, dict[str, str]]]:
        reader = self._reader
        assert reader is not None, "use CsvIn as a context manager"
        for _ in range(MAX_ROWS):
            try:
                cells = next(reader)
            except StopIteration:
                return
            except UnicodeDecodeError:
                raise self._fail(f"第 {reader.line_num + 1} 行附近不是 UTF-8 编码") from None
            except csv.Error as exc:
                raise self._fail(f"第 {reader.line_num} 行 CSV 格式错误: {exc}") from None
            if not cells or all(not c.strip() for c in cells):
                continue
            if len(cells) != len(self.columns):
                raise self._fail(f"第 {reader.line_num} 行有 {len(cells)} 列,表头有 {len(self.columns)} 列")
            yield reader.line_num, {c: v.strip() for c, v in zip(self.columns, cells)}
        raise self._fail(f"超过 {MAX_ROWS} 行")


class CsvOut:
    """``with CsvOut(path or "-", columns) as out: out.write(row)`` — a row at a time."""

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path = str(path)
        self.columns = list(columns)
        self.rows = 0
        self._file: TextIO | None = None
        self._writer: Any = None

    def __enter__(self) -> CsvOut:
        if self.path == "-":
            self._file = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
        else:
            self._file = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.DictWriter(self._file, self.columns, extrasaction="ignore")
        self._writer.writeheader()
        return self

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: "" if v is None else v for k, v in row.items()})
        self.rows += 1

    def __exit__(self, *exc: object) -> None:
        if self._file is None:
            return
        if self.path == "-":
            self._file.flush()
            if isinstance(self._file, io.TextIOWrapper):
                self._file.detach()  # stdin's wrapper: the process's stdin stays open
        else:
            self._file.close()
        self._file = None


__all__ = ["CsvIn", "CsvOut"]
