"""The split of a settlement's 个人负担: the pure rule (no I/O; property-tested).

SPEC.md "Settlements" / "家庭共济": the 个人负担 ``psn_part_amt`` is paid from the
member's own personal account first (``acct_pay``), then from the authorizers' accounts
in the order the authorizations were made (``acct_mulaid_pay``, per authorizer), the
rest in cash (``psn_cash_pay``) — seed 001. 统筹 (``hifp_pay``) never touches personal
accounts (seed 000), so it is not an input here.

Scope (SPEC.md "scope", seed 002: 共济 pays "符合医保政策范围内的个人自付部分"): when the
institution sends the 政策范围内 breakdown, part of the 个人负担 is outside the policy's
scope (全自费 ``fulamt_ownpay_amt`` + 超限价 ``overlmt_selfpay``). 共济 never pays it; the
member's own account pays what the region lets it (``Scope.own_may_pay_fen``), the rest is
cash. The own account spends on the out-of-scope part first — only it may pay that part,
so the in-scope part stays open to the authorizers and the cash is the least the rules
allow; the authorizers then pay only in scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Payer:
    """One source of personal-account money: the member's own account or an authorization.

    ``bucket`` names the balance it draws on (``acct:<id>`` or ``quota:<authorization>``);
    ``allowed`` is False where the policy excludes it (e.g. inpatient in Zhejiang).
    """

    key: str
    bucket: str
    allowed: bool = True


@dataclass(frozen=True)
class Scope:
    """How much of the 个人负担 lies outside the policy's scope, and how much of that the
    member's own account may pay (the region's policy; the rest of it is cash)."""

    out_of_scope_fen: int
    own_may_pay_fen: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.own_may_pay_fen <= self.out_of_scope_fen:
            raise ValueError("own_may_pay_fen must lie within out_of_scope_fen")


@dataclass(frozen=True)
class Split:
    acct_pay_fen: int
    mulaid: tuple[tuple[str, int], ...]  # (payer key, amount) in deduction order, amount > 0
    psn_cash_pay_fen: int
    taken: Mapping[str, int] = field(default_factory=dict)  # by bucket
    acct_out_of_scope_fen: int = 0  # the part of acct_pay that paid out-of-scope costs

    @property
    def mulaid_fen(self) -> int:
        return sum(a for _, a in self.mulaid)


def compute_split(
    psn_part_fen: int,
    own: Payer | None,
    authorizers: Sequence[Payer],
    available: Mapping[str, int],
    scope: Scope | None = None,
) -> Split:
    """Split the 个人负担: own account first, then authorizers in order, the rest cash.

    Never takes more than ``psn_part_fen`` in all, nor more than a bucket holds (two
    payers on one bucket share it). 统筹 is not an input: it never reaches accounts.
    With a ``scope``, the authorizers pay only in-scope costs and the own account only
    in-scope costs plus ``scope.own_may_pay_fen``; without one, everything is in scope.
    """
    if psn_part_fen < 0:
        raise ValueError("psn_part_fen must not be negative")
    scope = scope or Scope(0)
    if scope.out_of_scope_fen > psn_part_fen:
        raise ValueError("out_of_scope_fen must lie within psn_part_fen")
    in_scope = psn_part_fen - scope.out_of_scope_fen
    remaining = {k: max(v, 0) for k, v in available.items()}
    taken: dict[str, int] = {}

    def take(payer: Payer, cap: int) -> int:
        if not payer.allowed or cap <= 0:
            return 0
        amount = min(cap, remaining.get(payer.bucket, 0))
        if amount:
            remaining[payer.bucket] -= amount
            taken[payer.bucket] = taken.get(payer.bucket, 0) + amount
        return amount

    acct = take(own, in_scope + scope.own_may_pay_fen) if own is not None else 0
    acct_out = min(acct, scope.own_may_pay_fen)  # the own account covers out-of-scope first
    left_in_scope = in_scope - (acct - acct_out)
    mulaid: list[tuple[str, int]] = []
    for p in authorizers:
        amount = take(p, left_in_scope)
        if amount > 0:
            mulaid.append((p.key, amount))
            left_in_scope -= amount
    cash = psn_part_fen - acct - sum(a for _, a in mulaid)
    return Split(acct, tuple(mulaid), cash, taken, acct_out)


__all__ = ["Payer", "Scope", "Split", "compute_split"]
