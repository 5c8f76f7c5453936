"""A province-sized sample for PostgreSQL, generated and loaded with COPY (no ORM).

The volumes at ``scale`` 1.0 (docs/scaling.md says why these fit a 2-CPU machine):

==================  =========  ====================================================
table               rows       shape
==================  =========  ====================================================
insured_persons     1,000,000  60 % employees with a personal account
accounts              600,000  one per employee
users                 250,000  mini-program users, each a verified insured person
bindings              200,000  binders hold 1–5 members; 10 % unbound
authorizations         50,000  家庭共济, one authorizer per member
institutions              200  skewed: the busiest has ~10 % of the settlements
settlements         2,000,000  over the 365 days before ``today``
ledger_entries      5,000,000  the accounts' opening imports + 2–3 per settlement
notices             1,000,000  98 % sent, 1 % due now, 1 % due later / failed
==================  =========  ====================================================

Keys are deterministic functions of the row number (``openid_of``, ``id_hash_of``,
``psn_no_of``), so the measuring side (bench/province.py) picks existing keys without
reading them back. Every value that is encrypted at rest in production is a placeholder
string of the same length here: the queries never decrypt.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

SHANGHAI = timezone(timedelta(hours=8))
ENC = "v1:k1:" + "A" * 90  # the length of an AES-GCM token of a short name / ID number


@dataclass(frozen=True)
class Volumes:
    persons: int
    users: int
    bindings: int
    authorizations: int
    institutions: int
    settlements: int
    ledger: int
    notices: int

    @classmethod
    def at(cls, scale: float) -> Volumes:
        def n(x: int, floor: int = 10) -> int:
            return max(floor, int(x * scale))

        return cls(persons=n(1_000_000), users=n(250_000), bindings=n(200_000),
                   authorizations=n(50_000), institutions=max(5, min(200, n(200))),
                   settlements=n(2_000_000), ledger=n(5_000_000), notices=n(1_000_000))

    def total(self) -> int:
        return sum(self.__dict__.values())


def openid_of(i: int) -> str:
    return f"prov-openid-{i:08d}"


def id_hash_of(i: int) -> str:
    return hashlib.sha256(f"person-{i}".encode()).hexdigest()


def psn_no_of(i: int) -> str:
    return f"42{i:018d}"


def institution_code(i: int) -> str:
    return f"H{i:05d}"


def has_account(person: int) -> bool:
    return (person - 1) % 5 < 3  # 60 % employees with a personal account


def account_of(person: int) -> int:
    """Account id of a person who has one (accounts are loaded in person order, ids from 1)."""
    return ((person - 1) // 5) * 3 + (person - 1) % 5 + 1


def user_person(u: int) -> int:
    """The insured person user ``u`` (1-based) is: spread over the registry."""
    return (u * 4) - 3


def _utc(d: datetime) -> datetime:
    return d.astimezone(timezone.utc)


class Generator:
    """Rows for each table as tuples in the column order of :data:`COLUMNS`."""

    def __init__(self, v: Volumes, today: date, seed: int = 7) -> None:
        self.v = v
        self.today = today
        self.rnd = random.Random(seed)
        self.now = datetime.now(timezone.utc)
        self.start = datetime(today.year, today.month, today.day, tzinfo=SHANGHAI) - timedelta(days=365)
        # institution weights: Zipf-like, the busiest ~10 % of all settlements
        weights = [1 / (k + 1) ** 0.9 for k in range(v.institutions)]
        self.inst_weights = weights

    # -- the registry and users ----------------------------------------------------
    def persons(self) -> Iterator[tuple[Any, ...]]:
        t = self.now
        for i in range(1, self.v.persons + 1):
            emp = has_account(i)
            yield (i, psn_no_of(i), ENC, id_hash_of(i)[::-1], "resident_id", ENC, id_hash_of(i),
                   "employee" if emp else "resident", "420100", emp, True, "active", t, t, "")

    def accounts(self) -> Iterator[tuple[Any, ...]]:
        aid = 0
        for p in range(1, self.v.persons + 1):
            if has_account(p):
                aid += 1
                yield (aid, 50_000 + p % 300_000, self.now, p)

    def users(self) -> Iterator[tuple[Any, ...]]:
        t = self.now
        for u in range(1, self.v.users + 1):
            p = min(user_person(u), self.v.persons)
            yield (u, openid_of(u), f"prov-union-{u:08d}", ENC, True, t, ENC, "resident_id",
                   ENC, id_hash_of(p), None, t, t, p)

    def bindings(self) -> Iterator[tuple[Any, ...]]:
        # binders are the first users; each holds 1-5 members (mean 2.5)
        rnd, n, binder = self.rnd, 0, 0
        while n < self.v.bindings:
            binder += 1
            for _ in range(rnd.randint(1, 4)):
                if n >= self.v.bindings:
                    break
                n += 1
                member = 1 + rnd.randrange(self.v.persons)
                active = rnd.random() >= 0.10
                bound = self.start + timedelta(seconds=rnd.randrange(365 * 86400))
                yield (uuid.UUID(int=n), "parent", "active" if active else "unbound", bound,
                       None if active else bound + timedelta(days=30),
                       None if active else f"user:{binder}", None,
                       1 + (binder - 1) % self.v.users, member)

    def authorizations(self) -> Iterator[tuple[Any, ...]]:
        for k in range(1, self.v.authorizations + 1):
            u = 1 + (k * 7) % self.v.users
            member = 1 + (k * 13) % self.v.persons
            yield (uuid.UUID(int=k), "child", "active", "v1", "0" * 64, None, self.now, None, u,
                   min(user_person(u), self.v.persons), member, False, None)

    def institutions(self) -> Iterator[tuple[Any, ...]]:
        for i in range(1, self.v.institutions + 1):
            yield (institution_code(i), f"医院{i}", "420100", ENC, True, self.now, None, None)

    # -- money -------------------------------------------------------------------------
    def _setl_time(self, s: int) -> datetime:
        # spread evenly over the year; a day has (settlements / 365) rows
        seconds = (s * 365 * 86400) // max(1, self.v.settlements)
        return self.start + timedelta(seconds=seconds)

    def settlement_member(self, s: int) -> int:
        """An employee (account holder) for settlement ``s``."""
        p = 1 + (s * 7919) % self.v.persons
        while not has_account(p):
            p = p % self.v.persons + 1
        return p

    def settlements(self) -> Iterator[tuple[Any, ...]]:
        rnd = self.rnd
        insts = list(range(1, self.v.institutions + 1))
        picks = rnd.choices(insts, weights=self.inst_weights, k=self.v.settlements)
        detail = json.dumps({"split": [{"kind": "acct", "fen": 0}], "v": 1})
        for s in range(1, self.v.settlements + 1):
            t = self._setl_time(s)
            total = 1_000 + rnd.randrange(200_000)
            part = total // 3
            reversed_ = s % 97 == 0
            yield (s, f"S{s:012d}", None, "11", t, "0" * 64, total, total - part, total - part,
                   part, part // 2, part // 4, part - part // 2 - part // 4, 10_000, detail,
                   "reversed" if reversed_ else "settled", t,
                   t + timedelta(hours=2) if reversed_ else None,
                   institution_code(picks[s - 1]), self.settlement_member(s),
                   "撤销" if reversed_ else None)

    def ledger(self) -> Iterator[tuple[Any, ...]]:
        """Opening imports first, then the settlements' postings until the volume is reached."""
        e = 0
        opening = self.start - timedelta(days=1)
        for p in range(1, self.v.persons + 1):
            if e >= self.v.ledger:
                return
            if has_account(p):
                e += 1
                yield (e, 100_000, 100_000, "import", "opening", opening, account_of(p), None, None)
        per = max(1, (self.v.ledger - e) // max(1, self.v.settlements))
        for s in range(1, self.v.settlements + 1):
            t = self._setl_time(s)
            member = self.settlement_member(s)
            for k in range(per + (1 if s % 3 == 0 else 0)):
                if e >= self.v.ledger:
                    return
                e += 1
                acct = account_of(member) if k == 0 else account_of(self.settlement_member(s + k * 31))
                yield (e, -500 - k, 1_000, "settlement" if k == 0 else "mutual_aid", None, t,
                       acct, s, None)

    def notices(self) -> Iterator[tuple[Any, ...]]:
        rnd = self.rnd
        data = json.dumps({"member_name": "张*华", "institution": "医院", "medfee_fen": 12345,
                           "psn_part_amt_fen": 2345, "setl_id": "S1"}, ensure_ascii=False)
        for k in range(1, self.v.notices + 1):
            s = 1 + (k * 2) % self.v.settlements
            created = self._setl_time(s)
            r = rnd.random()
            if r < 0.98:
                state, nxt, sent = "sent", None, created + timedelta(seconds=3)
            elif r < 0.99:
                state, nxt, sent = "pending", None, None  # due now
            elif r < 0.995:
                state, nxt, sent = "pending", self.now + timedelta(hours=1), None
            else:
                state, nxt, sent = "failed", None, None
            yield (uuid.UUID(int=k), "family_settlement", f"prov:{k}", "家人就医结算通知", data,
                   state, "template" if state == "sent" else None, 1 if sent else 0, nxt, None,
                   None, None, None, None, created, sent, created,
                   1 + k % self.v.users, s)


# table → (columns in COPY order, the generator method)
COLUMNS: dict[str, tuple[str, ...]] = {
    "insured_persons": ("id", "psn_no", "name_enc", "name_hash", "id_type", "id_number_enc",
                        "id_hash", "insurance_type", "region_code", "has_personal_account",
                        "voucher_activated", "status", "created_at", "updated_at",
                        "guardian_hashes"),
    "accounts": ("id", "balance_fen", "updated_at", "person_id"),
    "users": ("id", "openid", "unionid", "session_key_enc", "realname_verified",
              "realname_verified_at", "name_enc", "id_type", "id_number_enc", "id_hash",
              "phone_enc", "created_at", "updated_at", "person_id"),
    "bindings": ("id", "relationship", "state", "bound_at", "unbound_at", "unbound_by",
                 "application_id", "binder_id", "member_id"),
    "authorizations": ("id", "relationship", "state", "notice_version", "notice_sha256",
                       "quota_fen", "created_at", "revoked_at", "authorizer_id",
                       "authorizer_person_id", "member_id", "cross_province",
                       "quota_remaining_fen"),
    "institutions": ("code", "name", "region_code", "secret_enc", "active", "created_at",
                     "previous_secret_enc", "previous_secret_until"),
    "settlements": ("id", "setl_id", "mdtrt_id", "med_type", "setl_time", "body_sha256",
                    "medfee_sumamt_fen", "hifp_pay_fen", "fund_pay_sumamt_fen",
                    "psn_part_amt_fen", "acct_pay_fen", "acct_mulaid_pay_fen",
                    "psn_cash_pay_fen", "balc_fen", "detail", "state", "created_at",
                    "reversed_at", "institution_id", "member_id", "reversal_reason"),
    "ledger_entries": ("id", "amount_fen", "balance_after_fen", "kind", "note", "created_at",
                       "account_id", "settlement_id", "authorization_id"),
    "notices": ("id", "kind", "dedupe_key", "title", "data", "state", "channel", "attempts",
                "next_attempt_at", "lease_until", "leased_by", "errcode", "reason", "wx_msgid",
                "created_at", "sent_at", "updated_at", "recipient_id", "settlement_id"),
}
ORDER = ("insured_persons", "accounts", "users", "bindings", "authorizations", "institutions",
         "settlements", "ledger_entries", "notices")
SEQUENCES = {"insured_persons": "id", "accounts": "id", "users": "id", "settlements": "id",
             "ledger_entries": "id"}


def rows(gen: Generator, table: str) -> Iterator[tuple[Any, ...]]:
    method = {"ledger_entries": gen.ledger, "insured_persons": gen.persons}.get(table) or getattr(gen, table)
    return method()


def batched(it: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in it:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def seed(conn: Any, v: Volumes, today: date, *, log: Any = print) -> dict[str, float]:
    """COPY every table (asyncpg ``copy_records_to_table``, binary); seconds per table."""
    import time

    gen = Generator(v, today)
    took: dict[str, float] = {}
    for table in ORDER:
        started = time.perf_counter()
        n = 0
        cols = list(COLUMNS[table])
        for batch in batched(rows(gen, table), 50_000):
            await conn.copy_records_to_table(table, records=batch, columns=cols)
            n += len(batch)
        if table in SEQUENCES:
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT coalesce(max(id), 1) FROM {table}))")
        took[table] = round(time.perf_counter() - started, 1)
        log(f"  {table:<16} {n:>10,} rows in {took[table]:6.1f} s")
    started = time.perf_counter()
    await conn.execute("VACUUM ANALYZE")
    took["vacuum_analyze"] = round(time.perf_counter() - started, 1)
    return took


__all__ = ["COLUMNS", "Generator", "Volumes", "account_of", "has_account", "id_hash_of",
           "institution_code", "openid_of", "psn_no_of", "seed", "user_person"]
