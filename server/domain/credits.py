"""Where balances come from: monthly and yearly credits to the personal accounts.

In real life money reaches a 职工医保 personal account every month (单位缴费划入, 个人缴费
划入) and, in many regions, once at the start of the year (年初一次性划入). The bureau
receives them as batch files; ``python -m server ledger credit FILE.csv`` imports one
through the same append-only ledger as settlements (``server.domain.ledger``: accounts
locked in id order, one posting per row, ``credit_<kind>`` entries).

File: UTF-8 CSV, header ``batch_id,row,amount_fen,kind`` and ``psn_no`` or ``id_number``
(with an optional ``id_type``, default ``resident_id``), optionally ``note``. ``kind``:
``unit`` 单位划入, ``personal`` 个人缴费划入, ``annual`` 年初划入. Amounts are positive
integer 分 in ASCII digits (a correction is the bureau's own adjustment, not a credit).

Idempotent by (batch_id, row): a row already applied with the same content is skipped (a
re-run changes nothing); a row whose content changed in a known batch is refused.
Two passes over the streamed file: the first checks every row (format, the person has a
personal account, no changed row) and refuses the whole file — nothing applied — when
any is wrong; the second applies it in chunks, each chunk one transaction (a re-run after
an interruption applies only what is missing; two runs at once collide on the unique
(batch_id, row) and the loser re-checks and skips).

Why no signed HTTP endpoint: credits come from the bureau's own collection systems, not
from hospitals; putting "create money" beside 2207 on the institution webhook would let
one leaked hospital secret mint balances. An operator endpoint would need the console's
staff roles and a second person's approval; until then the CLI on the bureau's side is
the one door.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from server.domain import ledger
from server.domain.csvio import CsvIn
from server.domain.errors import DomainError
from server.domain.identity import ID_TYPES
from server.domain.models import Account, CreditRow, InsuredPerson
from server.domain.pii import PiiCipher
from server.domain.registry import id_hash

KINDS: dict[str, str] = {"unit": "单位划入", "personal": "个人缴费划入", "annual": "年初划入"}
CHUNK = 500
MAX_CREDIT_FEN = 10**10  # 1 亿元: far above any one credit, below any accident
MAX_PROBLEMS = 50  # problems listed in the refusal; the count says how many in all
_BATCH_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_UINT_RE = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True)
class Credit:
    line: int
    batch_id: str
    row_no: int
    kind: str
    amount_fen: int
    psn_no: str | None
    id_hash: str | None
    sha256: str  # of the row's content: what "changed" means

    @property
    def key(self) -> tuple[str, int]:
        return self.batch_id, self.row_no


@dataclass
class CreditSummary:
    rows: int = 0
    applied: int = 0
    applied_fen: int = 0
    skipped: int = 0  # already applied with the same content
    by_kind: Counter[str] = field(default_factory=Counter)  # 分 applied per kind
    batches: set[str] = field(default_factory=set)


def _problem(line: int, message: str) -> str:
    return f"第 {line} 行: {message}"


def _parse(line: int, row: dict[str, str], pii: PiiCipher) -> Credit:
    batch_id, row_no, amount, kind = row["batch_id"], row["row"], row["amount_fen"], row["kind"]
    if not _BATCH_RE.match(batch_id):
        raise ValueError("batch_id 只能是 1–64 位字母、数字、点、下划线或连字符")
    if not _UINT_RE.match(row_no) or int(row_no) < 1 or int(row_no) > 2_000_000_000:
        raise ValueError("row 必须是正整数(ASCII 数字)")
    if not _UINT_RE.match(amount) or not 0 < int(amount) <= MAX_CREDIT_FEN:
        raise ValueError("amount_fen 必须是正整数(分,ASCII 数字)")
    if kind not in KINDS:
        raise ValueError(f"kind 必须是 {'/'.join(KINDS)} 之一")
    psn_no = row.get("psn_no") or None
    hashed = None
    if psn_no is None:
        id_type = row.get("id_type") or "resident_id"
        number = (row.get("id_number") or "").upper()
        if id_type not in ID_TYPES or not number or not number.isascii() or not number.isalnum():
            raise ValueError("须提供 psn_no,或有效的 id_type + id_number")
        hashed = id_hash(pii, id_type, number)
    elif not psn_no.isascii() or not psn_no.replace("-", "").replace("_", "").isalnum():
        raise ValueError("psn_no 格式不正确")
    who = psn_no or f"id:{hashed}"
    content = f"{batch_id}\n{row_no}\n{who}\n{kind}\n{amount}\n{row.get('note', '')}"
    return Credit(
        line=line,
        batch_id=batch_id,
        row_no=int(row_no),
        kind=kind,
        amount_fen=int(amount),
        psn_no=psn_no,
        id_hash=hashed,
        sha256=hashlib.sha256(content.encode()).hexdigest(),
    )


def _chunks(path: str | Path, pii: PiiCipher, problems: list[str]) -> Iterator[list[Credit]]:
    """The file's credits in chunks; a row that cannot be read goes to ``problems``."""
    chunk: list[Credit] = []
    with CsvIn(
        path,
        required=("batch_id", "row", "amount_fen", "kind"),
        optional=("id_type", "note"),
        any_of=("psn_no", "id_number"),
        error_code="CREDIT_FILE_INVALID",
    ) as f:
        for line, row in f:
            try:
                chunk.append(_parse(line, row, pii))
            except ValueError as exc:
                problems.append(_problem(line, str(exc)))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


async def _persons(chunk: Sequence[Credit]) -> dict[str, tuple[int, bool]]:
    """(person id, has a personal account) by ``psn_no`` and by ``id:<hash>``."""
    out: dict[str, tuple[int, bool]] = {}
    psn = [c.psn_no for c in chunk if c.psn_no]
    hashes = [c.id_hash for c in chunk if c.id_hash]
    if psn:
        for no, pid, has in await InsuredPerson.filter(psn_no__in=psn).values_list(
            "psn_no", "id", "has_personal_account"
        ):
            out[no] = (int(pid), bool(has))
    if hashes:
        for h, pid, has in await InsuredPerson.filter(id_hash__in=hashes).values_list(
            "id_hash", "id", "has_personal_account"
        ):
            out[f"id:{h}"] = (int(pid), bool(has))
    return out


def _who(c: Credit) -> str:
    return c.psn_no or f"id:{c.id_hash}"


async def _known(chunk: Sequence[Credit]) -> dict[tuple[str, int], str]:
    """The sha256 of the rows of these keys already applied."""
    batches = {c.batch_id for c in chunk}
    rows = {c.row_no for c in chunk}
    found = await CreditRow.filter(batch_id__in=batches, row_no__in=rows).values_list(
        "batch_id", "row_no", "row_sha256"
    )
    keys = {c.key for c in chunk}
    return {(b, int(r)): s for b, r, s in found if (b, int(r)) in keys}


async def _check(chunk: Sequence[Credit], problems: list[str]) -> None:
    persons = await _persons(chunk)
    known = await _known(chunk)
    for c in chunk:
        person = persons.get(_who(c))
        if person is None:
            problems.append(_problem(c.line, "参保登记中查无此人"))
        elif not person[1]:
            problems.append(_problem(c.line, "此人没有职工医保个人账户"))
        sha = known.get(c.key)
        if sha is not None and sha != c.sha256:
            problems.append(
                _problem(c.line, f"批次 {c.batch_id} 第 {c.row_no} 条已入账,内容与本次不同,拒绝修改")
            )


async def _apply(chunk: Sequence[Credit], summary: CreditSummary) -> None:
    """One chunk in one transaction, rows already applied skipped."""
    async with in_transaction():
        known = await _known(chunk)
        persons = await _persons(chunk)
        fresh: list[Credit] = []
        for c in chunk:
            sha = known.get(c.key)
            if sha is None:
                known[c.key] = c.sha256  # a second copy in this file is "already applied"
                fresh.append(c)
            elif sha == c.sha256:
                summary.skipped += 1
            else:
                raise DomainError(
                    "CREDIT_ROW_CHANGED",
                    _problem(c.line, f"批次 {c.batch_id} 第 {c.row_no} 条在文件中出现两次且内容不同"),
                )
        if not fresh:
            return
        person_ids = {persons[_who(c)][0] for c in fresh}
        for pid in person_ids:
            await Account.get_or_create(person_id=pid)
        accounts = await ledger.person_account_ids(person_ids)
        balances = await ledger.lock_accounts(accounts.values())
        postings = []
        rows = []
        for c in fresh:
            pid = persons[_who(c)][0]
            account_id = accounts[pid]
            postings.append(
                ledger.Posting(
                    account_id, c.amount_fen, f"credit_{c.kind}", note=f"{c.batch_id}#{c.row_no}"
                )
            )
            rows.append(
                CreditRow(
                    batch_id=c.batch_id,
                    row_no=c.row_no,
                    row_sha256=c.sha256,
                    person_id=pid,
                    account_id=account_id,
                    kind=c.kind,
                    amount_fen=c.amount_fen,
                )
            )
        available = {ledger.bucket_key(a, None): b for a, b in balances.items()}
        await ledger.apply_postings(postings, available)
        await CreditRow.bulk_create(rows)
    for c in fresh:
        summary.applied += 1
        summary.applied_fen += c.amount_fen
        summary.by_kind[c.kind] += c.amount_fen


async def import_credits(path: str | Path, *, pii: PiiCipher) -> CreditSummary:
    """Check the whole file, then apply it (module doc); refusals raise 422 listing rows."""
    problems: list[str] = []
    summary = CreditSummary()
    for chunk in _chunks(path, pii, problems):
        summary.rows += len(chunk)
        summary.batches.update(c.batch_id for c in chunk)
        await _check(chunk, problems)
    if problems:
        listed = "\n".join(problems[:MAX_PROBLEMS])
        more = f"\n…共 {len(problems)} 处问题" if len(problems) > MAX_PROBLEMS else ""
        raise DomainError(
            "CREDIT_FILE_REFUSED", f"文件未入账(一行也没有):\n{listed}{more}"
        )
    for chunk in _chunks(path, pii, problems):
        try:
            await _apply(chunk, summary)
        except IntegrityError:  # another run applied some of these rows meanwhile
            await _apply(chunk, summary)
    return summary


__all__ = ["KINDS", "CreditSummary", "import_credits"]
