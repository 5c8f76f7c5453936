"""Binding applications: create a draft, read one or the list, and the application's view
(the API output every use case answers with)."""

from __future__ import annotations

from typing import Any, Literal

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from server.domain import reasons
from server.domain.clock import cn_iso, cn_iso_or_none
from server.domain.family import facts, queries
from server.domain.family.base import FamilyBase, actor_of
from server.domain.family.commitment import signature_view
from server.domain.family.materials import material_view
from server.domain.family.states import transition
from server.domain.identity import parse_id
from server.domain.models import (
    Application,
    ApplicationEvent,
    Binding,
    CommitmentSignature,
    Material,
)
from server.domain.paging import decode_cursor, encode_cursor
from server.domain.pii import PiiCipher, mask_id, mask_name
from server.domain.policy import RELATIONSHIP_LABELS
from server.domain.registry import id_hash, name_hash

DEFAULT_REASON = (
    "为了方便家人代办医保业务"  # SPEC.md application reason, "医保亲情账号申请原因怎么填写"
)
LIST_LIMIT = 50  # the newest applications a binder sees


async def application_view(
    pii: PiiCipher,
    app: Application,
    *,
    brief: bool = False,
    materials: list[Material] | None = None,
    signature: CommitmentSignature | None | Literal[False] = False,
    binding: Binding | None | Literal[False] = False,
) -> dict[str, Any]:
    """API output: masked member, failure with its fix, materials, the signature.

    Parts the caller already holds are passed in (``False``: not known, fetch it).
    """
    out: dict[str, Any] = {
        "id": str(app.id),
        "state": app.state,
        "relationship": app.relationship,
        "relationship_label": RELATIONSHIP_LABELS.get(app.relationship, app.relationship),
        "member": {
            "name": mask_name(pii.decrypt(app.member_name_enc, purpose="name")),
            "id_type": app.id_type,
            "id_number": mask_id(pii.decrypt(app.id_number_enc, purpose="id_number")),
        },
        "reason": app.reason,
        "created_at": cn_iso(app.created_at),
        "submitted_at": cn_iso_or_none(app.submitted_at),
        "decided_at": cn_iso_or_none(app.decided_at),
    }
    if app.failure_code:
        try:
            fix = reasons.reason(app.failure_code).fix
        except KeyError:
            fix = ""
        out["failure"] = {"code": app.failure_code, "message": app.failure_message, "fix": fix}
    if brief:
        return out
    if materials is None:
        materials = await Material.filter(application_id=app.id).order_by("created_at")
    out["materials"] = [material_view(m) for m in materials]
    if signature is False:
        signature = await queries.latest_signature(app.id)
    out["commitment"] = None if signature is None else signature_view(signature)
    out["member_activated"] = bool(app.member_activated)
    if app.state == "active":
        if binding is False:
            binding = await Binding.filter(application_id=app.id).first()
        out["binding_id"] = str(binding.id) if binding else None
    return out


class ApplicationsPart(FamilyBase):
    """Create and read the binder's applications."""

    async def create_application(
        self,
        user_id: int,
        *,
        name: str,
        id_type: str,
        id_number: str,
        relationship: str,
        phone: str | None = None,
        reason: str | None = None,
        staff: str | None = None,
    ) -> dict[str, Any]:
        """A new draft. Only the document's format is refused here (422); every other rule
        is the submit's, so that a failure is recorded where the bot can find it.
        Needs the binder's consent to ``id_documents`` (403 ``CONSENT_REQUIRED``).
        ``staff``: the counter clerk creating it for the binder (窗口代办)."""
        await self.consents.require(user_id, "id_documents")
        await self._limit(user_id, "applications")
        binder = await self._binder(user_id)
        doc = parse_id(id_type, id_number, today=self.today())
        facts.self_check(self.pii, binder, doc)
        async with in_transaction():
            app = await Application.create(
                binder_id=user_id,
                member_name_enc=self.pii.encrypt(name, purpose="name"),
                member_name_hash=name_hash(self.pii, name),
                id_type=doc.id_type,
                id_number_enc=self.pii.encrypt(doc.id_number, purpose="id_number"),
                id_hash=id_hash(self.pii, doc.id_type, doc.id_number),
                relationship=relationship,
                phone_enc=self.pii.encrypt(phone, purpose="phone") if phone else None,
                reason=reason or DEFAULT_REASON,
                state="draft",
            )
            await ApplicationEvent.create(
                application_id=app.id, from_state=None, to_state="draft", actor=actor_of(user_id, staff)
            )
        return await application_view(self.pii, app, materials=[], signature=None)

    async def get_application(self, user_id: int, application_id: str) -> dict[str, Any]:
        return await application_view(self.pii, await self._owned(user_id, application_id))

    async def list_applications(
        self, user_id: int, *, cursor: str | None = None, limit: int = LIST_LIMIT
    ) -> dict[str, Any]:
        """The binder's applications, newest first, a page at a time (API.md v1.1:
        ``{items, next_cursor}``; the cursor is the last item's (created_at, id))."""
        q = Application.filter(binder_id=user_id)
        after = decode_cursor(cursor)
        if after is not None:
            at, last_id = after
            q = q.filter(Q(created_at__lt=at) | (Q(created_at=at) & Q(id__lt=last_id)))
        apps = await q.order_by("-created_at", "-id").limit(limit + 1)
        page, more = apps[:limit], len(apps) > limit
        items = [await application_view(self.pii, a, brief=True) for a in page]
        next_cursor = encode_cursor(page[-1].created_at, str(page[-1].id)) if more else None
        return {"items": items, "next_cursor": next_cursor}

    async def cancel_application(self, user_id: int, application_id: str) -> None:
        """Cancel a draft or an application waiting for a fix (``cancelled``, final); its
        materials stay until the retention purge like any decided application's."""
        async with in_transaction():
            app = await self._editable(user_id, application_id, "撤销")
            await transition(app, "cancelled", actor=f"user:{user_id}")
            app.decided_at = self.clock()
            await app.save(update_fields=["state", "decided_at", "updated_at"])
