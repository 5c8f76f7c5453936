"""The registry import at a province's scale (issue 18; docs/bulk.md).

Per batch, in one transaction:

1. the prepared rows go into a temp staging table (PostgreSQL ``COPY``; SQLite
   ``executemany``);
2. duplicates of earlier batches are found against a temp table of the blind indexes seen
   so far in this run (on disk, not in this process: memory stays flat) and rejected;
3. one ``INSERT … SELECT … ON CONFLICT (id_hash) DO UPDATE … WHERE … IS DISTINCT FROM …``
   merges the batch into ``insured_persons``: new persons are created, changed ones
   updated, identical ones left alone (compared on the blind indexes: the ciphertexts
   differ on every encryption); PostgreSQL counts them from ``RETURNING (xmax = 0)``;
4. missing personal accounts are created and balances set through the ledger, set-based
   (server/bulk/balances.py): one entry of the difference per changed account.

Idempotent by the blind index: a re-run after a crash at any row gives the state of one
clean run (the committed batches come back unchanged, the lost one is redone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from server.bulk import balances, pipeline
from server.bulk.pipeline import BatchResult, Hooks
from server.bulk.registry_rows import STAGE_COLUMNS, PreparedBatch, RowPreparer
from server.bulk.registry_sql import RegistrySql
from server.bulk.report import DUPLICATE, Progress, Reject, RejectWriter
from server.bulk.session import BulkSession, open_session
from server.bulk.source import CsvSource, Layout, Row
from server.domain.clock import SHANGHAI, cn_today
from server.domain.errors import DomainError
from server.domain.ledger import insufficient
from server.domain.pii import PiiCipher, mask_id
from server.domain.registry import HEADER, OPTIONAL

LAYOUT = Layout(HEADER, OPTIONAL, error_code="REGISTRY_CSV_INVALID")
BATCH_SIZE = {"postgres": 20_000, "sqlite": 5000}  # measured: docs/bulk.md
# Prepare the next batch in a thread while the database works on this one (docs/bulk.md):
# on PostgreSQL the server's CPU is another process's; SQLite's is ours, and a second
# thread there only fights for the GIL (measured: the same rows/s, 6-14 % more CPU).
OVERLAP = {"postgres": True, "sqlite": False}
MAX_BATCH_SIZE = 100_000
LEDGER_KIND = "import"
LEDGER_NOTE = "registry import"


@dataclass
class ImportSummary:
    """What a run did. ``created`` / ``updated`` keep their old meaning for callers of
    ``import_csv``; ``unchanged`` rows were already identical; ``balances`` ledger
    entries were written."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    balances: int = 0
    rows: int = 0
    seconds: float = 0.0
    dry_run: bool = False
    strict: bool = False
    reject_path: Path | None = None
    by_reason: dict[str, int] = field(default_factory=dict)
    first_rejects: list[Reject] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        verb = "would be " if self.dry_run else ""
        out = [
            f"registry import{' (dry run: nothing written)' if self.dry_run else ''}: "
            f"{self.rows:,} rows in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)",
            f"  {verb}created {self.created:,}, {verb}updated {self.updated:,}, "
            f"unchanged {self.unchanged:,}, rejected {self.rejected:,}",
            f"  balances {verb}set through the ledger: {self.balances:,}",
        ]
        if self.rejected:
            reasons = ", ".join(f"{k} {v:,}" for k, v in self.by_reason.items() if v)
            where = f" → {self.reject_path}" if self.reject_path else ""
            out.append(f"  rejects by reason: {reasons}{where}")
        return out


class RegistryJob:
    """The pipeline's job for the registry CSV (server/bulk/pipeline.py ``Job``)."""

    def __init__(self, sql: RegistrySql, preparer: RowPreparer) -> None:
        self.sql = sql
        self.preparer = preparer
        self.all_new = True  # the last batch created every row (a first load; hoped at first)
        # PostgreSQL: the seen-set is looked up (indexed) only once a batch is not a first
        # load's; SQLite's is a rowid table, always indexed
        self.seen_indexed = not sql.pg

    def prepare(self, rows: list[Row]) -> PreparedBatch:
        return self.preparer.prepare(rows)

    async def write(self, session: BulkSession, batch: PreparedBatch, *, apply: bool) -> BatchResult:
        sql = self.sql
        if not batch.records:
            return BatchResult()
        await session.execute(sql.clear)
        await session.copy_in(sql.stage, sql.columns, batch.records)
        staged = len(batch.records)
        now = datetime.now(SHANGHAI)
        if apply and self.all_new and not self.seen_indexed:
            # a first load's batch, whole: no row can repeat an earlier batch's (those are
            # in insured_persons, and the plain INSERT would have failed)
            got = await self._first_load(session, sql.first_load_marking, now, staged)
            if got is not None:
                return got
        if not self.seen_indexed:
            await session.execute(sql.index_seen)
            self.seen_indexed = True
        dups = await self._duplicates(session, staged)
        result = BatchResult(rejects=[
            Reject(line, DUPLICATE, "id_number", f"与第 {first} 行是同一人",
                   mask_id(batch.id_numbers.get(line, "")))
            for line, first in dups
        ])
        staged -= len(dups)
        if not apply:
            created, updated, moved = (await session.fetch(sql.preview))[0]
        elif sql.pg:
            got = await self._first_load(session, sql.first_load, now, staged) if self.all_new else None
            if got is not None:
                got.rejects = result.rejects
                return got
            created, updated = (await session.fetch(sql.merge, now))[0]
            self.all_new = created == staged
            moved = await self._balances(session, now)
        else:  # ids only grow under the transaction's write lock: the new rows are above
            before = await session.fetchval("SELECT coalesce(max(id), 0) FROM insured_persons")
            await session.execute(sql.merge, now)
            written = await session.fetchval("SELECT changes()")
            created = await session.fetchval("SELECT count(*) FROM insured_persons WHERE id > $1", before)
            updated = written - created
            moved = await self._balances(session, now)
        result.counts = {"created": int(created), "updated": int(updated),
                         "unchanged": staged - int(created) - int(updated), "balances": int(moved)}
        return result

    async def _first_load(self, session: BulkSession, statement: str, now: datetime,
                          staged: int) -> BatchResult | None:
        """Every staged person created, with their accounts and opening entries, in one
        statement; None (nothing done, ``all_new`` off) when a person exists already."""
        got = await session.fetch_unless_conflict(statement, now, LEDGER_KIND, LEDGER_NOTE)
        if got is None:
            self.all_new = False
            return None
        created, moved, negative, _ = got[0]
        if negative:
            raise insufficient()  # the batch's transaction rolls back
        return BatchResult(counts={"created": int(created), "updated": 0, "unchanged": 0,
                                   "balances": int(moved)})

    async def _balances(self, session: BulkSession, now: datetime) -> int:
        return await balances.post_balances(
            session, wanted=self.sql.wanted, initial="s.balance_fen", target="s.balance_fen",
            now=now, kind=LEDGER_KIND, note=LEDGER_NOTE,
        )

    async def _duplicates(self, session: BulkSession, staged: int) -> list[tuple[int, int]]:
        """Mark the batch's blind indexes as seen; (line, first line) of those seen in an
        earlier batch, which leave the staging table."""
        sql = self.sql
        if sql.pg:
            fresh = await session.fetchval(sql.mark)
        else:
            await session.execute(sql.mark)
            fresh = await session.fetchval("SELECT changes()")
        if fresh >= staged:
            return []
        dups = [(int(line), int(first)) for line, first in await session.fetch(sql.duplicates)]
        if sql.pg:
            await session.execute(sql.drop_lines, [line for line, _ in dups])
        else:
            await session.execute(sql.drop_lines)
        return dups


async def import_registry(
    path: str | Path,
    *,
    pii: PiiCipher,
    strict: bool = False,
    dry_run: bool = False,
    reject_path: str | Path | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    hooks: Hooks | None = None,
) -> ImportSummary:
    """Load a registry CSV (header: server/domain/registry.py). Rejected rows go to
    ``reject_path`` (when given) and are counted; ``strict``: any rejected row rolls the
    whole file back and raises REGISTRY_CSV_INVALID; ``dry_run``: nothing is written."""
    summary = ImportSummary(dry_run=dry_run, strict=strict,
                            reject_path=Path(reject_path) if reject_path else None)
    mode = "dry_run" if dry_run else "single" if strict else "batches"
    with CsvSource(path, LAYOUT) as source, RejectWriter(reject_path) as rejects:
        async with open_session() as session:
            sql = RegistrySql(session.dialect, (*STAGE_COLUMNS, "fp"))
            size = batch_size or BATCH_SIZE[session.dialect]
            if not 1 <= size <= MAX_BATCH_SIZE:
                raise ValueError(f"batch size must be 1..{MAX_BATCH_SIZE}")
            for statement in sql.create:
                await session.execute(statement)
            try:
                preparer = RowPreparer(pii, source.columns, today=cn_today(), encrypt=not dry_run,
                                       fingerprint="uuid" if sql.pg else "int64")
                totals = await pipeline.run(
                    source, RegistryJob(sql, preparer), session, batch_size=size, mode=mode,
                    rejects=rejects, progress=progress, hooks=hooks,
                    overlap=OVERLAP[session.dialect],
                )
            finally:
                for statement in sql.drop:
                    await session.execute(statement)
    summary.rows = totals.rows
    summary.rejected = totals.rejected
    summary.seconds = totals.seconds
    summary.created = totals.counts["created"]
    summary.updated = totals.counts["updated"]
    summary.unchanged = totals.counts["unchanged"]
    summary.balances = totals.counts["balances"]
    summary.by_reason = dict(rejects.by_reason)
    summary.first_rejects = list(rejects.first)
    if strict and totals.stopped_at is not None:
        where = f",见 {summary.reject_path}" if summary.reject_path else ""
        raise DomainError(
            "REGISTRY_CSV_INVALID",
            f"{totals.stopped_at.text()}(共 {totals.rejected} 行被拒绝{where}),未导入任何数据",
            detail={"rejected": totals.rejected, "by_reason": summary.by_reason},
        )
    return summary


async def import_csv(
    path: str | Path,
    *,
    pii: PiiCipher,
    strict: bool = True,
    dry_run: bool = False,
    reject_path: str | Path | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    hooks: Hooks | None = None,
) -> ImportSummary:
    """Load a registry CSV through the bulk path (server/bulk/registry_import.py,
    docs/bulk.md): streamed, in batches that commit, set-based on the database.

    ``strict`` (the default here; the CLI's ``--strict``): a rejected row rolls the whole
    file back and raises REGISTRY_CSV_INVALID naming it. Otherwise rejected rows are
    counted (and written to ``reject_path``) and the rest is loaded.
    """
    return await import_registry(
        path, pii=pii, strict=strict, dry_run=dry_run, reject_path=reject_path,
        batch_size=batch_size, progress=progress, hooks=hooks,
    )
