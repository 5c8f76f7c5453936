"""The split of a settlement's 个人负担: the pure rule (no I/O; property-tested).

SPEC.md "Settlements" / "家庭共济": the 个人负担 ``psn_part_amt`` is paid from the
member's own personal account first (``acct_pay``), then from the authorizers' accounts
in the order the authorizations were made (``acct_mulaid_pay``, per authorizer), the
rest in cash (``psn_cash_pay``) — seed 001. 统筹 (``hifp_pay``) never touches personal
accounts (seed 000), so it is not an input here.
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
class Split:
    acct_pay_fen: int
    mulaid: tuple[tuple[str, int], ...]  # (payer key, amount) in deduction order, amount > 0
    psn_cash_pay_fen: int
    taken: Mapping[str, int] = field(default_factory=dict)  # by bucket

    @property
    def mulaid_fen(self) -> int:
        return sum(a for _, a in self.mulaid)


def compute_split(
    psn_part_fen: int,
    own: Payer | None,
    authorizers: Sequence[Payer],
    available: Mapping[str, int],
) -> Split:
    """Split the 个人负担: own account first, then authorizers in order, the rest cash.

    Never takes more than ``psn_part_fen`` in all, nor more than a bucket holds (two
    payers on one bucket share it). 统筹 is not an input: it never reaches accounts.
    """
    if psn_part_fen < 0:
        raise ValueError("psn_part_fen must not be negative")
    left = psn_part_fen
    remaining = {k: max(v, 0) for k, v in available.items()}
    taken: dict[str, int] = {}

    def take(payer: Payer) -> int:
        nonlocal left
        if not payer.allowed or left == 0:
            return 0
        amount = min(left, remaining.get(payer.bucket, 0))
        if amount:
            remaining[payer.bucket] -= amount
            taken[payer.bucket] = taken.get(payer.bucket, 0) + amount
            left -= amount
        return amount

    acct = take(own) if own is not None else 0
    mulaid = tuple((p.key, a) for p in authorizers if (a := take(p)) > 0)
    return Split(acct, mulaid, left, taken)


__all__ = ["Payer", "Split", "compute_split"]
