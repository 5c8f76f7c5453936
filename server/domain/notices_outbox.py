"""结算通知 outbox: the notice rows a settlement (or its reversal) creates, in its transaction.

SPEC.md "Settlement notices": one notice per recipient — each binder of the member
(家人就医结算通知), each authorizer whose balance paid (共济账户支出通知), the member if
they use WeChat — and a correcting notice on reversal (2208). Rows start ``pending``;
the push worker (``server.push``) delivers them. ``dedupe_key`` makes every notice
unique, so a notice can never be created twice for the same settlement, kind and
recipient.

Every notice row is written through :func:`save`: a recipient who withdrew their consent
to ``notices`` (PIPL art. 15, issue #12) gets none; :func:`cancel_pending` ends the ones
not sent yet (withdrawal, account deletion) as ``cancelled``.

``Notice.data`` holds semantic fields (not WeChat keywords; the push side maps them):
member_name (masked), institution, setl_time (ISO +08:00), med_type, medfee_fen,
psn_part_fen, acct_pay_fen, mulaid_fen (an authorizer's: their own amount), cash_fen, setl_id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from server.domain.clock import cn_iso
from server.domain.models import Notice
from server.privacy.records import withdrawn_users

FAMILY = "family_settlement"
MUTUAL_AID = "mutual_aid_debit"
MEMBER = "member_settlement"
REVERSAL = "reversal"
CANCELLED = "cancelled"  # a state: never sent, the recipient withdrew or left

TITLES: Mapping[str, str] = {
    FAMILY: "家人就医结算通知",
    MUTUAL_AID: "共济账户支出通知",
    MEMBER: "就医结算通知",
    REVERSAL: "结算撤销通知",
}


@dataclass(frozen=True)
class SettlementFacts:
    """What every notice of one settlement says (amounts in 分)."""

    setl_id: str
    member_name: str  # masked
    institution: str
    setl_time: str  # ISO 8601 +08:00
    med_type: str
    medfee_fen: int
    psn_part_fen: int
    acct_pay_fen: int
    mulaid_fen: int
    cash_fen: int


def _pending(
    kind: str, recipient: int, settlement_id: int, dedupe_key: str, data: dict[str, Any]
) -> Notice:
    return Notice(
        recipient_id=recipient,
        kind=kind,
        settlement_id=settlement_id,
        dedupe_key=dedupe_key,
        title=TITLES[kind],
        data=data,
        state="pending",
    )


def settlement_notices(
    facts: SettlementFacts,
    *,
    settlement_id: int,
    binder_ids: Iterable[int],
    authorizer_amounts: Mapping[int, int],
    member_user_ids: Iterable[int],
) -> list[Notice]:
    """The notice rows of one settlement (not saved: the caller bulk-inserts them)."""
    data = asdict(facts)
    out: list[Notice] = []

    def add(kind: str, recipient: int, extra: Mapping[str, Any] | None = None) -> None:
        key = f"{facts.setl_id}:{kind}:{recipient}"
        out.append(_pending(kind, recipient, settlement_id, key, {**data, **(extra or {})}))

    for uid in dict.fromkeys(binder_ids):
        add(FAMILY, uid)
    for uid, amount in authorizer_amounts.items():
        if amount > 0:
            add(MUTUAL_AID, uid, {"mulaid_fen": amount})
    for uid in dict.fromkeys(member_user_ids):
        add(MEMBER, uid)
    return out


def reversal_notices(
    originals: Iterable[Mapping[str, Any]],
    *,
    setl_id: str,
    settlement_id: int,
    reason: str | None,
    reversed_at: str,
) -> list[Notice]:
    """One correcting notice for each notice the settlement produced (same recipient)."""
    out: list[Notice] = []
    for n in originals:
        kind, recipient = n["kind"], n["recipient_id"]
        data = {**n["data"], "reversal_of": kind, "reason": reason, "reversed_at": reversed_at}
        out.append(
            _pending(
                REVERSAL, recipient, settlement_id, f"{setl_id}:reversal:{kind}:{recipient}", data
            )
        )
    return out


async def save(notices: Sequence[Notice], *, using_db: BaseDBAsyncClient | None = None) -> int:
    """Insert ``notices`` (one statement), except those for a recipient who withdrew their
    consent to ``notices``; returns how many were written."""
    if not notices:
        return 0
    stop = await withdrawn_users(
        (n.recipient_id for n in notices if n.recipient_id is not None), "notices", using_db=using_db
    )
    keep = [n for n in notices if n.recipient_id not in stop]
    if keep:
        await Notice.bulk_create(keep, using_db=using_db)
    return len(keep)


async def cancel_pending(user_id: int, *, reason: str) -> int:
    """End every notice to ``user_id`` not sent yet as ``cancelled`` (``reason`` says why);
    returns how many. A notice already handed to WeChat at this moment may still arrive."""
    return await Notice.filter(recipient_id=user_id, state="pending").update(
        state=CANCELLED, reason=reason[:200], lease_until=None, leased_by=None
    )


async def list_for_user(user_id: int, *, limit: int = 50) -> dict[str, Any]:
    """A user's notices, newest first (GET /api/v1/notices)."""
    rows = await Notice.filter(recipient_id=user_id).order_by("-created_at", "-id").limit(limit)
    items = []
    for n in rows:
        item: dict[str, Any] = {
            "id": str(n.id),
            "kind": n.kind,
            "state": n.state,
            "title": n.title,
            "created_at": cn_iso(n.created_at),
            "data": n.data,
        }
        if n.sent_at is not None:
            item["sent_at"] = cn_iso(n.sent_at)
        if n.state in ("failed", "undeliverable"):
            item["reason"] = n.reason
            item["errcode"] = n.errcode
        items.append(item)
    return {"items": items}
