"""The registry import's statements, per backend (server/bulk/registry_import.py runs them).

Shapes, not planner luck: the staging table has no statistics and the registry grows
during a run, so every look-up into a large table is a scalar subquery or an ``ON
CONFLICT`` probe driven by the batch (one index probe a row, server/bulk/balances.py),
never a join the planner might turn into a scan of the whole table per batch.
"""

from __future__ import annotations

import secrets

from server.bulk import balances

# the person's columns a re-import compares (never the ciphertexts: a new nonce every time)
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
_TYPES = {"line": "bigint", "has_personal_account": "boolean", "voucher_activated": "boolean",
          "balance_fen": "bigint"}
# the seen-set's key, computed by the preparer (server/bulk/registry_rows.py): 128 bits of
# the blind index on PostgreSQL, 64 as the rowid on SQLite
_FP = {"postgres": "uuid", "sqlite": "bigint"}
PERSON = "(SELECT p.id FROM insured_persons p WHERE p.id_hash = s.id_hash)"


class RegistrySql:
    """Statements of one run; the temp tables' names are unique per run."""

    def __init__(self, dialect: str, columns: tuple[str, ...]) -> None:
        tag = secrets.token_hex(4)
        self.pg = dialect == "postgres"
        self.columns = columns
        t = "" if self.pg else "temp."
        self.stage = f"{t}bulk_stage_{tag}"
        self.seen = f"{t}bulk_seen_{tag}"
        types = {**_TYPES, "fp": _FP[dialect]}
        cols = ", ".join(f"{c} {types.get(c, 'text')}" for c in columns)
        bare_stage, bare_seen = self.stage.removeprefix(t), self.seen.removeprefix(t)
        self.create = [f"CREATE TEMP TABLE {bare_stage} ({cols})"]
        self.drop = [f"DROP TABLE IF EXISTS {self.stage}", f"DROP TABLE IF EXISTS {self.seen}"]
        distinct = "IS DISTINCT FROM" if self.pg else "IS NOT"
        old = ", ".join(f"p.{c}" for c in COMPARED)
        new = ", ".join(f"s.{c}" for c in COMPARED)
        # NULL: a new person; TRUE: changed; FALSE: identical
        changed = f"(SELECT ({old}) {distinct} ({new}) FROM insured_persons p WHERE p.id_hash = s.id_hash)"
        fence = "OFFSET 0" if self.pg else ""  # PostgreSQL may not flatten it (one probe a row)
        account = balances.account_of_person(PERSON)
        # would-be counts (--dry-run)
        self.preview = f"""
            SELECT coalesce(sum(CASE WHEN changed IS NULL THEN 1 ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN changed THEN 1 ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN has_personal_account
                                 AND coalesce(balance, 0) <> balance_fen THEN 1 ELSE 0 END), 0)
            FROM (SELECT {changed} AS changed, s.has_personal_account, s.balance_fen,
                         (SELECT a.balance_fen FROM accounts a WHERE a.id = {account}) AS balance
                  FROM {self.stage} s {fence}) x"""
        # the rows whose accounts the ledger moves (server/bulk/balances.py post_balances)
        self.wanted = (
            f"SELECT {PERSON} AS person_id, s.balance_fen FROM {self.stage} s WHERE s.has_personal_account"
        )
        excluded = "EXCLUDED" if self.pg else "excluded"
        target = "p" if self.pg else "insured_persons"
        sets = ", ".join(f"{c} = {excluded}.{c}" for c in UPDATED)
        cmp_old = ", ".join(f"{target}.{c}" for c in COMPARED)
        cmp_new = ", ".join(f"{excluded}.{c}" for c in COMPARED)
        upsert = (
            f"INSERT INTO insured_persons {'AS p ' if self.pg else ''}"
            f"({', '.join(INSERTED)}, created_at, updated_at) "
            f"SELECT {', '.join(INSERTED)}, $1, $1 FROM {self.stage} s WHERE {{filter}} ORDER BY id_hash "
            f"ON CONFLICT (id_hash) DO UPDATE SET {sets}, updated_at = {excluded}.updated_at "
            f"WHERE ({cmp_old}) {distinct} ({cmp_new})"
        )
        if self.pg:
            self.clear = (
                # JIT: a batch statement's estimated cost (thousands of look-ups) is above
                # jit_above_cost, and every batch would compile it again. SET LOCAL ends
                # with the transaction (no session state is left on the pooled connection).
                # work_mem: a batch's sort by the blind index (~8 MB for 20,000 rows) in
                # memory, not spilled to a temp file (the default 4 MB did)
                f"SET LOCAL jit = off; SET LOCAL work_mem = '64MB'; TRUNCATE {self.stage}"
            )
            # 128 bits of the blind index: collision-free at any registry's size. Its unique
            # index is built only when a batch needs the look-up (``index_seen``): while
            # every batch of a first load is new, none can repeat an earlier one (those
            # are all in insured_persons: the plain INSERT would have failed), and the
            # seen-set is only appended to (server/bulk/registry_import.py).
            self.create.append(f"CREATE TEMP TABLE {bare_seen} (fp uuid NOT NULL, line bigint NOT NULL)")
            self.index_seen = f"CREATE UNIQUE INDEX ON {self.seen} (fp)"
            # Every blind index not in the run's seen-set yet goes in (a probe each; the
            # batch has no duplicate within itself); fewer inserted than staged means
            # duplicates of earlier batches, looked up then.
            self.mark = f"""
                WITH fresh AS (
                    INSERT INTO {self.seen} (fp, line)
                    SELECT s.fp, s.line FROM (SELECT fp, line FROM {self.stage} OFFSET 0) s
                    WHERE (SELECT d.line FROM {self.seen} d WHERE d.fp = s.fp) IS NULL
                    RETURNING 1
                )
                SELECT count(*) FROM fresh"""
            self.duplicates = f"""
                SELECT line, first FROM (
                    SELECT s.line, (SELECT d.line FROM {self.seen} d
                                    WHERE d.fp = s.fp) AS first
                    FROM {self.stage} s OFFSET 0) x
                WHERE first <> line"""
            self.drop_lines = f"DELETE FROM {self.stage} WHERE line = ANY($1::bigint[])"
            # Counted by RETURNING (xmax = 0): created. ``merge`` lets only new or changed
            # persons reach the upsert: it locks every conflicting row, even one its WHERE
            # then leaves alone, and a lock is a write (WAL, a dirty page) — a re-run would
            # rewrite the whole registry. ``first_load`` is a plain INSERT, for a batch that
            # follows one where every row was new (a first load): no probe before it, no
            # speculative insertion (measured together: ~6 µs a row of the database's
            # CPU). A row that exists after all breaks it; the batch then takes ``merge``.
            counted = (
                "RETURNING (xmax = 0) AS created) "
                "SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM m"
            )
            self.merge = f"WITH m AS ({upsert.format(filter=f'{changed} IS NOT FALSE')} {counted}"
            # A first load's batch in one statement: persons (a plain INSERT), their
            # personal accounts and opening entries (joined back to the staged balance
            # by the blind index: no look-up into the registry), and — while the seen-set
            # is not indexed — the batch's blind indexes appended to it. Returns
            # (created, ledger entries, negative balances, appended).
            plain = upsert.format(filter="true").split(" ON CONFLICT ")[0]
            persons = (
                f"SELECT m.id AS person_id, s.balance_fen AS initial FROM m JOIN {self.stage} s "
                "ON s.id_hash = m.id_hash WHERE m.has_personal_account"
            )
            head = f"WITH m AS ({plain} RETURNING id, id_hash, has_personal_account), {balances.open_new(persons)}"
            tail = ("SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM posted), "
                    "(SELECT count(*) FROM opened WHERE balance_fen < 0)")
            self.first_load = f"{head} {tail}, 0"
            self.first_load_marking = (
                f"{head}, marked AS (INSERT INTO {self.seen} (fp, line) "
                f"SELECT fp, line FROM {self.stage} RETURNING 1) "
                f"{tail}, (SELECT count(*) FROM marked)"
            )
        else:
            self.clear = f"DELETE FROM {self.stage}"
            # 64 bits of the blind index (computed by the preparer) as the rowid: SQLite's
            # cheapest key. A collision would reject a row as a duplicate, visibly (about
            # one in 7,000 runs of 50 M rows; SQLite is for the embedded demo, not that).
            self.create.append(f"CREATE TEMP TABLE {bare_seen} (fp INTEGER PRIMARY KEY, line INTEGER NOT NULL)")
            self.mark = f"INSERT OR IGNORE INTO {self.seen} (fp, line) SELECT fp, line FROM {self.stage}"
            self.duplicates = (
                f"SELECT s.line, d.line FROM {self.stage} s JOIN {self.seen} d ON d.fp = s.fp "
                "WHERE d.line <> s.line"
            )
            self.drop_lines = (
                f"DELETE FROM {self.stage} WHERE line IN "
                f"(SELECT s.line FROM {self.stage} s JOIN {self.seen} d ON d.fp = s.fp WHERE d.line <> s.line)"
            )
            # no pre-filter: SQLite's upsert writes nothing for a row its WHERE leaves alone
            self.merge = upsert.format(filter="true")
