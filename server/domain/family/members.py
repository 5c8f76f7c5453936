"""After binding: the binder's members, the member's binders, unbinding (either side), the
member's dynamic 医保码 and their spending (SPEC.md after binding)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from server.domain import vouchers
from server.domain.clock import SHANGHAI, cn_iso
from server.domain.errors import DomainError
from server.domain.family import outcomes, queries
from server.domain.family.base import FamilyBase, not_found, uuid_or_404
from server.domain.family.states import transition
from server.domain.models import Application, Binding, InsuredPerson, User
from server.domain.paging import decode_cursor, encode_cursor
from server.domain.pii import PiiCipher, mask_id, mask_name
from server.domain.policy import RELATIONSHIP_LABELS


def member_row(pii: PiiCipher, r: Mapping[str, Any]) -> dict[str, Any]:
    """One family member as the binder sees them (masked), from a binding joined with the
    member's registry row (``queries.MEMBER_COLUMNS``)."""
    relationship = r["relationship"]
    return {
        "id": str(r["id"]),
        "state": r["state"],
        "relationship": relationship,
        "relationship_label": RELATIONSHIP_LABELS.get(relationship, relationship),
        "member": {
            "name": mask_name(pii.decrypt(r["member__name_enc"], purpose="name")),
            "id_number": mask_id(pii.decrypt(r["member__id_number_enc"], purpose="id_number")),
        },
        "insurance": {
            "insurance_type": r["member__insurance_type"],
            "region_code": r["member__region_code"],
            "status": r["member__status"],
            "voucher_activated": bool(r["member__voucher_activated"]),  # SQLite: 0 / 1
        },
        "bound_at": cn_iso(r["bound_at"]),
    }


def member_view(pii: PiiCipher, binding: Binding) -> dict[str, Any]:
    """``member_row`` of a binding fetched with its member."""
    person: InsuredPerson = binding.member
    return member_row(
        pii,
        {
            "id": binding.id,
            "relationship": binding.relationship,
            "state": binding.state,
            "bound_at": binding.bound_at,
            "member__name_enc": person.name_enc,
            "member__id_number_enc": person.id_number_enc,
            "member__insurance_type": person.insurance_type,
            "member__region_code": person.region_code,
            "member__status": person.status,
            "member__voucher_activated": person.voucher_activated,
        },
    )


class MembersPart(FamilyBase):
    """The bindings once effective, from both sides."""

    async def _owned_binding(
        self, user_id: int, binding_id: str, *, active: bool = True
    ) -> Binding:
        q = Binding.filter(id=uuid_or_404(binding_id, "家庭成员"), binder_id=user_id)
        if active:
            q = q.filter(state="active")
        binding = await q.select_related("member").first()
        if binding is None:
            raise not_found("家庭成员")
        return binding

    async def list_members(self, user_id: int) -> list[dict[str, Any]]:
        """The binder's effective bindings (masked), oldest first."""
        return [member_row(self.pii, r) for r in await queries.active_members(user_id)]

    async def unbind(
        self,
        user_id: int,
        binding_id: str,
        *,
        as_member: bool = False,
        staff: str | None = None,
    ) -> Binding:
        """End a binding: the binder (``DELETE /family/members/{id}``) or the member
        themselves (``DELETE /family/binders/{id}``) — SPEC.md "binder or member can
        unbind". The member's monthly slot stays taken until next month unless the policy
        says otherwise (SPEC.md binders per member). ``staff``: the counter clerk doing it
        for that person (窗口代办), named after them in the record. The ended binding."""
        now = self.clock()
        async with in_transaction():
            bid = uuid_or_404(binding_id, "家庭成员")
            q = Binding.filter(id=bid)
            if as_member:
                person_id = await self._own_person(user_id)
                q, actor = q.filter(member_id=person_id), f"member:user:{user_id}"
            else:
                q, actor = q.filter(binder_id=user_id), f"user:{user_id}"
            if staff:
                actor = f"{actor}@staff:{staff}"[:64]
            binding = await q.select_for_update().first()
            if binding is None:
                raise not_found("绑定关系" if as_member else "家庭成员")
            if binding.state != "active":
                raise DomainError("BINDING_NOT_ACTIVE", "该绑定关系已解除")
            binding.state, binding.unbound_at, binding.unbound_by = "unbound", now, actor
            await binding.save(update_fields=["state", "unbound_at", "unbound_by"])
            if binding.application_id is not None:
                app = await Application.get(id=binding.application_id)
                await transition(app, "unbound", actor=actor)
                await app.save(update_fields=["state", "updated_at"])
            if not as_member:  # the member who unbound knows; otherwise tell them
                await outcomes.member_told(
                    self.pii, binding, kind=outcomes.MEMBER_UNBOUND, now=now
                )
        return binding

    @staticmethod
    async def _own_person(user_id: int) -> int:
        """The insured person this user is (known once real-name verified)."""
        user = await User.get_or_none(id=user_id).only("id", "person_id", "realname_verified")
        if user is None or not user.realname_verified or user.person_id is None:
            raise DomainError("REALNAME_REQUIRED", "请先完成实名认证,再查看或解除绑定您的家人")
        return int(user.person_id)

    async def list_binders(self, user_id: int) -> list[dict[str, Any]]:
        """Who holds an effective binding to me (the member's view), newest first."""
        person_id = await self._own_person(user_id)
        rows = (
            await Binding.filter(member_id=person_id, state="active")
            .select_related("binder")
            .order_by("-bound_at")
        )
        return [
            {
                "id": str(b.id),
                "relationship": b.relationship,
                "binder": {
                    "name": mask_name(self.pii.decrypt(b.binder.name_enc, purpose="name"))
                    if b.binder.name_enc
                    else None
                },
                "bound_at": cn_iso(b.bound_at),
            }
            for b in rows
        ]

    async def voucher(self, user_id: int, binding_id: str) -> dict[str, Any]:
        """The member's dynamic 医保码: single use, 60 s; it always pays as the member."""
        await self._limit(user_id, "vouchers")
        binding = await self._owned_binding(user_id, binding_id)
        token, expires = await vouchers.issue(
            self.redis,
            member_id=binding.member_id,
            shown_by_user_id=user_id,
            binding_id=str(binding.id),
        )
        return {"qr_token": token, "expires_at": cn_iso(expires), "ttl_seconds": vouchers.TTL_SECONDS}

    async def settlements(
        self,
        user_id: int,
        binding_id: str,
        year: int | None,
        *,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """The member's settlement records of one year, from the binding's start on (SPEC.md
        after binding: not the member's earlier history — issue #17 finding 7), newest
        first, a page at a time (``next_cursor``); refused (403 naming ``medical_records``) once
        the member withdrew that consent."""
        from server.domain.settlements import queries as settlements

        binding = await self._owned_binding(user_id, binding_id)
        await self.consents.require_member_records(binding.member_id)
        after = decode_cursor(cursor)
        before = None
        if after is not None:
            try:
                before = (after[0], int(after[1]))
            except ValueError:
                raise DomainError(
                    "VALIDATION_FAILED", "翻页参数无效", fields={"cursor": "INVALID"}
                ) from None
        items, total, next_at = await settlements.list_for_member(
            binding.member_id,
            year or self.today().year,
            limit=limit,
            since=visible_from(binding.bound_at),
            before=before,
        )
        return {
            "items": items,
            "total": total,
            "next_cursor": encode_cursor(next_at[0], str(next_at[1])) if next_at else None,
            "visible_from": cn_iso(visible_from(binding.bound_at)),
        }

    async def summary(self, user_id: int, binding_id: str, year: int | None) -> dict[str, Any]:
        """Balance, yearly totals and insurance status of the member (refused like
        :meth:`settlements` once the member withdrew ``medical_records``)."""
        binding = await self._owned_binding(user_id, binding_id)
        await self.consents.require_member_records(binding.member_id)
        view = member_view(self.pii, binding)
        out = await spending_summary(
            binding.member_id, year or self.today().year, since=visible_from(binding.bound_at)
        )
        return {**out, "member": view["member"], "insurance": view["insurance"]}


# -- the member's spending ---------------------------------------------------------------


def visible_from(bound_at: datetime) -> datetime:
    """A binder sees the member's settlements from the day (Asia/Shanghai) the binding took
    effect on (SPEC.md after binding), not the member's earlier history."""
    day = bound_at.astimezone(SHANGHAI).date()
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
# The settlements feature owns the figures (server.domain.settlements.queries).


async def spending_summary(
    member_id: int, year: int, *, since: datetime | None = None
) -> dict[str, Any]:
    from server.domain.settlements import queries as settlements

    return dict(await settlements.yearly_summary(member_id, year, since=since))
