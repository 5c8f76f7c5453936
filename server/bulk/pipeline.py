"""The batch loop every bulk load shares: read → prepare → write, overlapped, batches commit.

    source (CsvSource) ──► prepare (CPU: validate, hash, encrypt) ──► write (one transaction)
                           batch k+1, in a worker thread          batch k, on the event loop

While the database works on batch *k* (COPY, the set-based merge, the ledger, the
commit) the next batch is read and prepared in a thread, so the wall time is about the
larger of the two, not their sum (docs/bulk.md has the numbers; a process pool for the
preparing was measured and did not pay on 2 cores).

Modes:

* ``batches`` (default) — each batch is its own transaction: a crash loses at most the
  batch in flight, and a re-run redoes it (the jobs are idempotent: by a blind index).
* ``single`` (``--strict``) — one transaction for the whole file; the first rejected row
  stops the writing, the rest of the file is still checked (so the report is complete),
  and everything is rolled back: all or nothing.
* ``dry_run`` — everything but the writes; one transaction, rolled back.

Hooks (``Hooks``) let a test crash the run at a chosen point: ``before_commit(k)``
raising rolls batch *k* back, ``after_commit(k)`` raising leaves it committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from server.bulk.report import Progress, Reject, RejectWriter
from server.bulk.session import BulkSession
from server.bulk.source import CsvSource, Row


class Prepared(Protocol):
    rows: int
    rejects: list[Reject]


P = TypeVar("P", bound=Prepared)


@dataclass
class BatchResult:
    """What writing one batch did: named counts (summed over the run) and late rejects
    (found only against the database, e.g. a duplicate of an earlier batch)."""

    counts: dict[str, int] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)


class Job(Protocol[P]):
    def prepare(self, rows: list[Row]) -> P:
        """CPU only, no I/O, no event loop: runs in a worker thread."""

    async def write(self, session: BulkSession, batch: P, *, apply: bool) -> BatchResult:
        """Stage and merge one batch (``apply`` False: stage and check only)."""


@dataclass
class Hooks:
    before_commit: Callable[[int], Awaitable[None] | None] | None = None
    after_commit: Callable[[int], Awaitable[None] | None] | None = None


@dataclass
class RunTotals:
    rows: int = 0
    rejected: int = 0
    batches: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    stopped_at: Reject | None = None  # strict mode: the first rejected row


class StrictStop(Exception):
    """Internal: rolls back a strict run whose file had a rejected row."""


async def _call(hook: Callable[[int], Awaitable[None] | None] | None, n: int) -> None:
    if hook is not None:
        result = hook(n)
        if result is not None:
            await result


GC_EVERY = 64  # batches between two collections of the young generations during a run


@contextlib.contextmanager
def _batch_gc() -> Iterator[None]:
    """The cyclic garbage collector, off for a run of batches.

    A batch is tens of thousands of rows, records and cells: plain lists, tuples and
    strings without cycles, freed by reference counting. The collector, at its default
    threshold (700 new containers), ran every few dozen rows and traversed the batch in
    the making again and again (measured: ~12 % of the import's CPU; at a threshold of
    50,000, still 1.8 µs a row). For the run it is off and what existed before is frozen;
    the loop collects the young generations every ``GC_EVERY`` batches (the few cycles
    asyncio makes stay bounded); everything is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.unfreeze()


def _next_batch(batches: Iterator[list[Row]], job: Job[P]) -> tuple[list[Row], P] | None:
    rows = next(batches, None)
    return None if rows is None else (rows, job.prepare(rows))


async def run(
    source: CsvSource,
    job: Job[P],
    session: BulkSession,
    *,
    batch_size: int,
    mode: str = "batches",
    rejects: RejectWriter,
    progress: Progress | None = None,
    hooks: Hooks | None = None,
    overlap: bool = True,
) -> RunTotals:
    """Drive ``job`` over ``source`` (see the module docstring for ``mode``)."""
    if mode not in ("batches", "single", "dry_run"):
        raise ValueError(f"unknown mode {mode!r}")
    hooks = hooks or Hooks()
    totals = RunTotals()
    started = time.perf_counter()
    batches = source.batches(batch_size)
    apply = mode != "dry_run"

    async def write(batch: P, number: int) -> None:
        nonlocal apply
        if batch.rejects and mode == "single":
            apply = False
            totals.stopped_at = totals.stopped_at or min(batch.rejects, key=lambda r: r.line)
        result = await job.write(session, batch, apply=apply)
        if result.rejects and mode == "single":
            apply = False
            first = min(result.rejects, key=lambda r: r.line)
            if totals.stopped_at is None or first.line < totals.stopped_at.line:
                totals.stopped_at = first
        rejects.add(batch.rejects + result.rejects)
        totals.rows += batch.rows
        totals.rejected += len(batch.rejects) + len(result.rejects)
        totals.batches += 1
        if apply or mode != "single":
            totals.counts.update(result.counts)
        await _call(hooks.before_commit, number)

    async def ahead() -> tuple[list[Row], P] | None:
        if overlap:
            return await asyncio.to_thread(_next_batch, batches, job)
        return _next_batch(batches, job)

    async def loop() -> None:
        nxt = asyncio.ensure_future(ahead())
        for number in range(1, 10**12):  # bounded by the file
            current = await nxt
            if current is None:
                return
            _, batch = current
            # the thread reads and prepares batch k+1 while batch k is written
            nxt = asyncio.ensure_future(ahead())
            try:
                if mode == "batches":
                    async with session.transaction():
                        await write(batch, number)
                    await _call(hooks.after_commit, number)
                else:
                    await write(batch, number)
            except BaseException:
                with contextlib.suppress(Exception):
                    await nxt  # let the thread finish its batch before the file closes
                raise
            if progress is not None:
                progress.update(totals.rows, source.bytes_read / max(source.size, 1))
            if number % GC_EVERY == 0:
                gc.collect(1)

    if mode == "batches":
        with _batch_gc():
            await loop()
    else:
        try:
            async with session.transaction():
                with _batch_gc():
                    await loop()
                if mode == "dry_run" or totals.stopped_at is not None:
                    raise StrictStop  # roll everything back
                await _call(hooks.after_commit, totals.batches)
        except StrictStop:
            pass
    totals.seconds = time.perf_counter() - started
    if progress is not None:
        progress.done(totals.rows)
    return totals


__all__ = ["BatchResult", "Hooks", "Job", "Prepared", "RunTotals", "run"]
