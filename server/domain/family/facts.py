"""The facts the policy decides a binding on (``PolicyEngine.check_binding``): who the
member is in the registry, the binder, and the limit counts.

The precheck, the submit, the reviewer's approval and the bot ask the same question with
the same facts; this module only gathers them — the rules are the policy engine's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from tortoise.expressions import Q

from server.domain.clock import SHANGHAI
from server.domain.errors import DomainError
from server.domain.family.base import Binder
from server.domain.identity import IdDocument
from server.domain.models import Application, Binding, User
from server.domain.pii import PiiCipher
from server.domain.policy import NATIONAL, BindingContext
from server.domain.registry import Match, Registry, RegistryRecord, id_hash, match

Found = tuple[Match, RegistryRecord | None]


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The natural month (Asia/Shanghai calendar) containing ``now``, as UTC instants."""
    local = now.astimezone(SHANGHAI)
    start = datetime(local.year, local.month, 1, tzinfo=SHANGHAI)
    end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=SHANGHAI)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class Counts:
    """The limit facts about one attempt (see ``BindingContext``)."""

    binder_count: int  # the binder's active or pending members
    month: frozenset[str]  # binders with an effective binding to the member this month
    current: frozenset[str]  # binders holding one now (and the binder's own pending one)
    guardians: frozenset[str] = frozenset()  # those of ``month`` the registry names guardians


NO_COUNTS = Counts(0, frozenset(), frozenset())


async def counts(
    *,
    binder_id: int,
    member_id: int | None,
    now: datetime,
    exclude: uuid.UUID | None,
    guardian_hashes: frozenset[str] = frozenset(),
) -> Counts:
    """The limit facts, in two or three queries (inside the submit's transaction).

    Effective bindings in the natural month (Asia/Shanghai): bound before the month
    ends and not unbound before it began (SPEC.md binders per member) — except a
    binding the member ended themselves: the member removing a binder they did not
    want frees that slot at once (slot squatting, issue #17).
    A ``pending_review`` application holds a slot of its binder's five, but not one of
    the member's monthly slots: strangers' applications waiting for a reviewer must
    not lock the member's real family out; the approval checks the member's limit
    again (``decide_review``). The binder's own pending application for the member
    counts as already bound.
    """
    start, end = month_bounds(now)
    wanted = Q(binder_id=binder_id, state="active")
    held = Q(binder_id=binder_id)
    if member_id is not None:
        wanted |= Q(member_id=member_id, bound_at__lt=end) & (
            Q(unbound_at__isnull=True) | Q(unbound_at__gte=start)
        )
    rows = await Binding.filter(wanted).values_list(
        "binder_id", "member_id", "state", "unbound_by"
    )
    pending_q = Application.filter(held, state="pending_review")
    if exclude is not None:
        pending_q = pending_q.exclude(id=exclude)
    pending = await pending_q.values_list("binder_id", "member_id")
    count = sum(1 for b, _, s, _u in rows if b == binder_id and s == "active")
    count += len(pending)
    if member_id is None:
        return Counts(count, frozenset(), frozenset())
    mine_pending = {str(binder_id)} if any(m == member_id for _, m in pending) else set()
    month = frozenset(
        str(b)
        for b, m, s, by in rows
        if m == member_id and not (s == "unbound" and (by or "").startswith("member:"))
    )
    current = frozenset(
        {str(b) for b, m, s, _u in rows if m == member_id and s == "active"} | mine_pending
    )
    guardians: frozenset[str] = frozenset()
    if guardian_hashes and month:
        users = await User.filter(id__in=[int(b) for b in month]).values_list("id", "id_hash")
        guardians = frozenset(str(u) for u, h in users if h in guardian_hashes)
    return Counts(count, month, current, guardians)


def region(binder: Binder, record: RegistryRecord | None) -> str:
    """The policy region: the binder's insurance region, else the member's, else national."""
    if binder.region_code:
        return binder.region_code
    return record.region_code if record is not None else NATIONAL


def context(
    binder: Binder,
    *,
    today: date,
    doc: IdDocument | None,
    relationship: str,
    found: Found,
    counts: Counts | None = None,
    stage: Literal["precheck", "submit"] = "precheck",
    materials: frozenset[str] = frozenset(),
    commitment: Literal["missing", "current", "outdated"] = "missing",
    face_passed: bool | None = None,
    verification: Literal["face", "documents"] = "face",
) -> BindingContext:
    """Every fact in the shape the policy engine takes."""
    result, record = found
    counts = counts or NO_COUNTS
    is_guardian = bool(
        result == "match"
        and record is not None
        and binder.id_hash
        and binder.id_hash in record.guardian_hashes
    )
    return BindingContext(
        today=today,
        binder_id=str(binder.id),
        binder_verified=binder.realname_verified,
        binder_region=region(binder, record),
        member_doc=doc,
        relationship=relationship,
        registry_match=result,
        member_voucher_activated=bool(record and record.voucher_activated),
        member_status=record.status if record is not None else "active",
        binder_active_or_pending_count=counts.binder_count,
        member_binders_this_month=counts.month,
        already_bound=str(binder.id) in counts.current,
        materials=materials,
        commitment=commitment,
        stage=stage,
        member_face_passed=face_passed,
        member_binders_now=counts.current,
        binder_is_guardian=is_guardian,
        member_guardian_binders=counts.guardians,
        verification=verification,
    )


async def found(registry: Registry, pii: PiiCipher, doc: IdDocument | None, name: str) -> Found:
    """The member in the registry: (match / mismatch / not_found, their record)."""
    if doc is None:
        return "not_found", None
    return await match(registry, pii, id_type=doc.id_type, id_number=doc.id_number, name=name)


def member_id(found: Found) -> int | None:
    """The registry person the application is about, when name and ID matched."""
    result, record = found
    return record.person_id if record is not None and result == "match" else None


def guardians(found: Found) -> frozenset[str]:
    """The member's registered guardians (blind indexes), when name and ID matched."""
    result, record = found
    return record.guardian_hashes if record is not None and result == "match" else frozenset()


def self_check(pii: PiiCipher, binder: Binder, doc: IdDocument) -> None:
    """A user cannot bind themselves (SPEC.md: a binder helps *other* family members)."""
    if binder.id_hash and binder.id_hash == id_hash(pii, doc.id_type, doc.id_number):
        raise DomainError(
            "SELF_NOT_ALLOWED",
            "不能把自己添加为家庭成员。",
            fields={"id_number": "SELF_NOT_ALLOWED"},
            detail={"fix": "您本人就医时直接使用本人的医保电子凭证;请填写要添加的家人的信息。"},
        )
