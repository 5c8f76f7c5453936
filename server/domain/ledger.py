"""Personal accounts: balances in 分 derived from an append-only ledger.

SPEC.md "Money": amounts are integer 分; balances change only through the ledger; no
balance goes negative, even with concurrent settlements. Every change is a ``Posting``;
``apply_postings`` runs inside the caller's transaction on rows the caller locked
(``lock_accounts`` / ``lock_quotas``, always in that order and by id, so two
transactions never wait on each other in a cycle).

Two kinds of bucket hold money:
* an account's own balance (``Account.balance_fen``; entries with no authorization);
* a cross-province 共济额度 set aside from the authorizer's balance for one relative
  (``Authorization.quota_remaining_fen``; entries that name the authorization).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import Q
from tortoise.functions import Sum
from tortoise.transactions import in_transaction

from server.domain import money_sql
from server.domain.clock import SHANGHAI, parse_uuid
from server.domain.errors import DomainError
from server.domain.models import Account, Authorization, LedgerEntry


@dataclass(frozen=True)
class Posting:
    """One signed balance change of one bucket (the quota bucket when ``authorization_id``)."""

    account_id: int
    amount_fen: int
    kind: str  # import | settlement | mutual_aid | reversal | quota_hold | quota_release
    authorization_id: uuid.UUID | None = None
    note: str | None = None

    @property
    def bucket(self) -> str:
        return bucket_key(self.account_id, self.authorization_id)


def bucket_key(account_id: int, authorization_id: uuid.UUID | str | None) -> str:
    return f"quota:{authorization_id}" if authorization_id else f"acct:{account_id}"


def insufficient() -> DomainError:
    return DomainError("INSUFFICIENT_BALANCE", "个人账户余额不足")


async def lock_accounts(account_ids: Iterable[int]) -> dict[int, int]:
    """``SELECT … FOR UPDATE`` the accounts in id order; their balances by id."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    # .only(), not .values_list(): Tortoise drops FOR UPDATE from values queries.
    rows = (
        await Account.filter(id__in=ids)
        .select_for_update()
        .order_by("id")
        .only("id", "balance_fen")
    )
    return {a.id: a.balance_fen for a in rows}


async def lock_quotas(authorization_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int]]:
    """Lock quota-holding authorizations (after the accounts); their state and remaining quota."""
    ids = sorted(set(authorization_ids), key=str)
    if not ids:
        return {}
    rows = await (
        Authorization.filter(id__in=ids)
        .select_for_update()
        .order_by("id")
        .only("id", "state", "quota_remaining_fen")
    )
    return {
        auth_id: (a.state, a.quota_remaining_fen or 0)
        for a in rows
        if (auth_id := parse_uuid(a.id)) is not None
    }


async def apply_postings(
    postings: Sequence[Posting],
    balances: Mapping[str, int],
    *,
    settlement_id: int | None = None,
) -> dict[str, int]:
    """Apply ``postings`` to locked buckets whose current values are ``balances``.

    Raises INSUFFICIENT_BALANCE (nothing written) if any bucket would go below zero.
    Writes one UPDATE per table (accounts, quotas) and one INSERT of all ledger entries
    (``server.domain.money_sql``: hand-written, the settlement benchmark showed it pays);
    returns the new values by bucket.
    """
    after = dict(balances)
    entries: list[tuple[Posting, int]] = []  # (posting, balance after it)
    for p in postings:
        if p.amount_fen == 0:
            continue
        value = after[p.bucket] + p.amount_fen
        if value < 0:
            raise insufficient()
        after[p.bucket] = value
        entries.append((p, value))
    if not entries:
        return after
    conn = Account._meta.db  # the caller's transaction (contextvar), as the ORM would use
    now = datetime.now(SHANGHAI)
    accounts: dict[int, int] = {}
    quotas: dict[str, int] = {}
    for bucket in dict.fromkeys(p.bucket for p, _ in entries):
        kind, _, ident = bucket.partition(":")
        if kind == "acct":
            accounts[int(ident)] = after[bucket]
        else:
            quotas[ident] = after[bucket]
    await money_sql.set_account_balances(conn, accounts, now=now)
    await money_sql.set_quota_remaining(conn, quotas)
    await money_sql.insert_ledger_entries(
        conn,
        [
            money_sql.NewLedgerEntry(
                p.account_id, p.authorization_id, p.amount_fen, value, p.kind, p.note
            )
            for p, value in entries
        ],
        settlement_id=settlement_id,
        now=now,
    )
    return after


async def credit(
    person_id: int, amount_fen: int, *, kind: str = "import", note: str | None = None
) -> int:
    """Credit (or, negative, debit) a person's own account; creates the account. New balance."""
    return await _post_own(person_id, lambda balance: amount_fen, kind, note)


async def set_balance(
    person_id: int, target_fen: int, *, kind: str = "import", note: str | None = None
) -> int:
    """Bring a person's own balance to ``target_fen`` with one entry of the difference.

    The registry import (CLI / demo): importing the same file twice changes nothing, and
    the account is locked, so a settlement running meanwhile is never overwritten.
    """
    return await _post_own(person_id, lambda balance: target_fen - balance, kind, note)


async def _post_own(
    person_id: int, amount: Callable[[int], int], kind: str, note: str | None
) -> int:
    async with in_transaction():
        account, _ = await Account.get_or_create(person_id=person_id)
        balances = await lock_accounts([account.id])
        bucket = bucket_key(account.id, None)
        after = await apply_postings(
            [Posting(account.id, amount(balances[account.id]), kind, note=note)],
            {bucket: balances[account.id]},
        )
    return after[bucket]


async def balance_of(person_id: int) -> int | None:
    """The person's own personal-account balance (None without an account)."""
    rows = await Account.filter(person_id=person_id).values("balance_fen")
    return int(rows[0]["balance_fen"]) if rows else None


async def yearly_totals(person_id: int, year: int) -> dict[str, int]:
    """Ledger movements of a person's own account in a calendar year (Asia/Shanghai) by kind."""
    start = datetime(year, 1, 1, tzinfo=SHANGHAI)
    end = datetime(year + 1, 1, 1, tzinfo=SHANGHAI)
    rows = await (
        LedgerEntry.filter(
            Q(account__person_id=person_id),
            Q(authorization_id=None),
            Q(created_at__gte=start),
            Q(created_at__lt=end),
        )
        .group_by("kind")
        .annotate(total=Sum("amount_fen"))
        .values_list("kind", "total")
    )
    return {str(k): int(t or 0) for k, t in rows}


async def verify_account(account_id: int) -> bool:
    """The account's balance equals the sum of its own-balance ledger entries (audit, tests)."""
    account = await Account.get(id=account_id)
    row = await (
        LedgerEntry.filter(account_id=account_id, authorization_id=None)
        .annotate(total=Sum("amount_fen"))
        .first()
        .values("total")
    )
    return int((row or {}).get("total") or 0) == int(account.balance_fen)


async def person_account_ids(person_ids: Iterable[int]) -> dict[int, int]:
    """Account id by person id, for the persons who have one."""
    ids = list(set(person_ids))
    if not ids:
        return {}
    rows = await Account.filter(person_id__in=ids).values_list("person_id", "id")
    return {int(p): int(a) for p, a in rows}


__all__ = [
    "Posting",
    "apply_postings",
    "balance_of",
    "bucket_key",
    "credit",
    "insufficient",
    "lock_accounts",
    "lock_quotas",
    "person_account_ids",
    "set_balance",
    "verify_account",
    "yearly_totals",
]
