"""A query streamed out to CSV: memory flat whatever the result size.

For the bulk jobs that read rather than load — the reconciliation export of an
institution's day (issue 13), the scan of every table a deletion must check (issue 12):
rows come from a server-side cursor (PostgreSQL) or ``fetchmany`` (SQLite) in chunks,
each chunk is written and dropped. ``transform`` turns a database row into the CSV row
(decrypt, mask, format money) — the place to keep personal data out of a file that
must not hold it in clear.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from server.bulk.report import Progress
from server.bulk.session import BulkSession

Transform = Callable[[tuple[Any, ...]], Sequence[Any] | None]  # None: leave the row out


async def export_csv(
    session: BulkSession,
    path: str | Path,
    *,
    header: Sequence[str],
    sql: str,
    args: Sequence[Any] = (),
    transform: Transform | None = None,
    chunk: int = 2000,
    progress: Progress | None = None,
) -> int:
    """Write ``header`` and the rows of ``sql`` to ``path``; the number of rows written.

    One transaction on PostgreSQL (a cursor lives in one): the rows are one consistent
    snapshot, as a reconciliation needs.
    """
    written = 0
    # a local file through its buffer: writes are memory copies, a flush every 8 KiB
    f = await asyncio.to_thread(open, path, "w", newline="", encoding="utf-8")
    with f:
        out = csv.writer(f)
        out.writerow(header)
        async with session.transaction():
            async for rows in session.stream(sql, *args, size=chunk):
                if transform is not None:
                    rows = [r for r in map(transform, rows) if r is not None]  # type: ignore[misc]  # Transform's row type
                out.writerows(rows)
                written += len(rows)
                if progress is not None:
                    progress.update(written, None)
    if progress is not None:
        progress.done(written, known_total=False)
    return written
