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

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from server.bulk import balances, pipeline
from server.bulk.pipeline import BatchResult, Hooks
from server.bulk.registry_rows import STAGE_COLUMNS, PreparedBatch, RowPreparer
from server.bulk.report import DUPLICATE, Progress, Reject, RejectWriter
from server.bulk.session import BulkSession, open_session
from server.bulk.source import CsvSource, Layout, Row
from server.domain.clock import SHANGHAI, cn_today
from server.domain.errors import DomainError
from server.domain.pii import PiiCipher, mask_id
from server.domain.registry import HEADER, OPTIONAL

LAYOUT = Layout(HEADER, OPTIONAL, error_code="REGISTRY_CSV_INVALID")
BATCH_SIZE = {"postgres": 5000, "sqlite": 2000}  # measured: bench/scenario_bulk.py
MAX_BATCH_SIZE = 100_000
LEDGER_KIND = "import"
LEDGER_NOTE = "registry import"

# the person's columns a re-import compares (never the ciphertexts: new nonce every time)
COMPARED = (
    "name_hash",
    "insurance_type",
    "region_code",
    "has_personal_account",
    "voucher_activated",
    "status",
    "guardian_hashes",
)
UPDATED = ("name_enc", "id_number_enc", *COMPARED)
INSERTED = (
    "psn_no",
    "name_enc",
    "name_hash",
    "id_type",
    "id_number_enc",
    "id_hash",
    "insurance_type",
    "region_code",
    "has_personal_account",
    "voucher_activated",
    "status",
    "guardian_hashes",
)


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


class _Sql:
    """The statements of one run (temp table names are unique per run)."""

    def __init__(self, session: BulkSession) -> None:
        tag = secrets.token_hex(4)
        self.stage = f"bulk_stage_{tag}"
        self.seen = f"bulk_seen_{tag}"
        pg = session.dialect == "postgres"
        self.pg = pg
        t = "" if pg else "temp."
        self.stage_ref = t + self.stage
        self.seen_ref = t + self.seen
        types = {"line": "bigint", "has_personal_account": "boolean", "voucher_activated": "boolean",
                 "balance_fen": "bigint"}
        cols = ", ".join(f"{c} {types.get(c, 'text')}" for c in STAGE_COLUMNS)
        self.create = [f"CREATE TEMP TABLE {self.stage} ({cols})"]
        if pg:
            # 128 bits of the blind index: collision-free at any registry's size, 16 bytes a row
            self.create.append(f"CREATE TEMP TABLE {self.seen} (fp uuid PRIMARY KEY, line bigint NOT NULL)")
            self.clear = f"TRUNCATE {self.stage}"
            self.duplicates = f"""
                WITH dup AS (
                    SELECT s.line, d.line AS first FROM {self.stage} s
                    JOIN {self.seen} d ON d.fp = left(s.id_hash, 32)::uuid
                ), mark AS (
                    INSERT INTO {self.seen} (fp, line)
                    SELECT left(id_hash, 32)::uuid, line FROM {self.stage}
                    ON CONFLICT (fp) DO NOTHING
                )
                SELECT line, first FROM dup"""
            self.drop_lines = f"DELETE FROM {self.stage} WHERE line = ANY($1::bigint[])"
        else:
            self.create.append(
                f"CREATE TEMP TABLE {self.seen} (id_hash TEXT PRIMARY KEY, line INTEGER NOT NULL) "
                "WITHOUT ROWID"
            )
            self.clear = f"DELETE FROM {self.stage_ref}"
            self.duplicates = (
                f"SELECT s.line, d.line FROM {self.stage_ref} s "
                f"JOIN {self.seen_ref} d ON d.id_hash = s.id_hash"
            )
            self.drop_duplicates = (
                f"DELETE FROM {self.stage_ref} WHERE id_hash IN (SELECT id_hash FROM {self.seen_ref})"
            )
            self.mark = (
                f"INSERT OR IGNORE INTO {self.seen_ref} (id_hash, line) "
                f"SELECT id_hash, line FROM {self.stage_ref}"
            )
        distinct = "IS DISTINCT FROM" if pg else "IS NOT"
        old = ", ".join(f"p.{c}" for c in COMPARED)
        new_s = ", ".join(f"s.{c}" for c in COMPARED)
        self.changed = f"({old}) {distinct} ({new_s})"
        # would-be counts (dry run, and SQLite's counts before its merge)
        self.preview = f"""
            SELECT count(*) - count(p.id),
                   coalesce(sum(CASE WHEN p.id IS NOT NULL AND {self.changed} THEN 1 ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN s.has_personal_account
                                 AND coalesce(a.balance_fen, 0) <> s.balance_fen THEN 1 ELSE 0 END), 0)
            FROM {self.stage_ref} s
            LEFT JOIN insured_persons p ON p.id_hash = s.id_hash
            LEFT JOIN accounts a ON a.person_id = p.id"""
        excluded = "EXCLUDED" if pg else "excluded"
        target = "p" if pg else "insured_persons"
        sets = ", ".join(f"{c} = {excluded}.{c}" for c in UPDATED)
        cmp_old = ", ".join(f"{target}.{c}" for c in COMPARED)
        cmp_new = ", ".join(f"{excluded}.{c}" for c in COMPARED)
        merge = (
            f"INSERT INTO insured_persons {'AS p ' if pg else ''}"
            f"({', '.join(INSERTED)}, created_at, updated_at) "
            f"SELECT {', '.join(INSERTED)}, $1, $1 FROM {self.stage_ref} WHERE true ORDER BY id_hash "
            f"ON CONFLICT (id_hash) DO UPDATE SET {sets}, updated_at = {excluded}.updated_at "
            f"WHERE ({cmp_old}) {distinct} ({cmp_new})"
        )
        if pg:
            self.merge = (
                f"WITH m AS ({merge} RETURNING (xmax = 0) AS created) "
                "SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM m"
            )
        else:
            self.merge = merge
        self.rows = f"{self.stage_ref} s JOIN insured_persons p ON p.id_hash = s.id_hash"


class RegistryJob:
    """The pipeline's job for the registry CSV (server/bulk/pipeline.py ``Job``)."""

    def __init__(self, sql: _Sql, preparer: RowPreparer) -> None:
        self.sql = sql
        self.preparer = preparer

    def prepare(self, rows: list[Row]) -> PreparedBatch:
        return self.preparer.prepare(rows)

    async def write(self, session: BulkSession, batch: PreparedBatch, *, apply: bool) -> BatchResult:
        sql = self.sql
        result = BatchResult()
        if not batch.records:
            return result
        await session.execute(sql.clear)
        await session.copy_in(sql.stage_ref, STAGE_COLUMNS, batch.records)
        dups = await session.fetch(sql.duplicates)
        if dups:
            if sql.pg:
                await session.execute(sql.drop_lines, [int(line) for line, _ in dups])
            else:
                await session.execute(sql.drop_duplicates)
        if not sql.pg:
            await session.execute(sql.mark)  # (PostgreSQL marked them in the same statement)
        if dups:
            result.rejects = [
                Reject(int(line), DUPLICATE, "id_number", f"与第 {int(first)} 行是同一人",
                       mask_id(batch.id_numbers.get(int(line), "")))
                for line, first in dups
            ]
        staged = len(batch.records) - len(dups)
        if not apply:
            created, updated, moved = (await session.fetch(sql.preview))[0]
            result.counts = {"created": int(created), "updated": int(updated),
                             "unchanged": staged - int(created) - int(updated), "balances": int(moved)}
            return result
        now = datetime.now(SHANGHAI)
        if sql.pg:
            created, updated = (await session.fetch(sql.merge, now))[0]
        else:
            created, updated, _ = (await session.fetch(sql.preview))[0]
            await session.execute(sql.merge, now)
        await balances.ensure_accounts(
            session, rows=sql.rows, person_id="p.id", where="s.has_personal_account", now=now
        )
        moved = await balances.set_balances(
            session, rows=sql.rows, account_of="a.person_id = p.id", where="s.has_personal_account",
            target="s.balance_fen", now=now, kind=LEDGER_KIND, note=LEDGER_NOTE,
        )
        result.counts = {"created": int(created), "updated": int(updated),
                         "unchanged": staged - int(created) - int(updated), "balances": moved}
        return result


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
            sql = _Sql(session)
            size = batch_size or BATCH_SIZE[session.dialect]
            if not 1 <= size <= MAX_BATCH_SIZE:
                raise ValueError(f"batch size must be 1..{MAX_BATCH_SIZE}")
            for statement in sql.create:
                await session.execute(statement)
            try:
                preparer = RowPreparer(pii, source.columns, today=cn_today(), encrypt=not dry_run)
                totals = await pipeline.run(
                    source, RegistryJob(sql, preparer), session, batch_size=size, mode=mode,
                    rejects=rejects, progress=progress, hooks=hooks,
                )
            finally:
                drop = [sql.stage, sql.seen] if session.dialect == "postgres" else [
                    f"temp.{sql.stage}", f"temp.{sql.seen}"]
                for name in drop:
                    await session.execute(f"DROP TABLE IF EXISTS {name}")
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
            422,
            detail={"rejected": totals.rejected, "by_reason": summary.by_reason},
        )
    return summary
