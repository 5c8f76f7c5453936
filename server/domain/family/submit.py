"""Would it work, submit, and the reviewer's decision: the policy decides with every fact.

Every rule is the policy engine's (``PolicyEngine.check_binding``): the precheck, the
submit, the approval and the bot ask the same question (the facts: ``facts``). On submit
the facts are gathered under row locks so the limits hold under concurrent submits from
several processes (PostgreSQL): the member's registry row first, then the binder's user
row, always in that order (no lock cycle), then it counts and decides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from tortoise import connections
from tortoise.transactions import in_transaction

from server.domain import reasons
from server.domain.errors import DomainError
from server.domain.family import facts, outcomes, queries
from server.domain.family.applications import application_view
from server.domain.family.base import FamilyBase, actor_of, not_found, uuid_or_404
from server.domain.family.commitment import commitment_status
from server.domain.family.materials import seen_kinds
from server.domain.family.states import FIXABLE, state_conflict, step, transition
from server.domain.identity import IdDocument, parse_id
from server.domain.models import Application, ApplicationEvent, Binding, InsuredPerson, User
from server.domain.policy import BindingDecision, blocker, requirement_label


def row_locks() -> bool:
    """Whether ``select_for_update`` means anything: on SQLite every transaction runs
    alone on the one connection already (Tortoise serializes them), so skip the query."""
    return bool(connections.get("default").capabilities.dialect != "sqlite")


def precheck_view(decision: BindingDecision) -> dict[str, Any]:
    return {
        "ok": decision.ok,
        "blocking": [
            {"code": b.code, "message": b.message, "fix": b.fix} for b in decision.blocking
        ],
        "required_materials": [
            {
                "kinds": r.split("|"),
                "alternatives": [alt.split("+") for alt in r.split("|")],
                "label": requirement_label(r),
            }
            for r in decision.required_materials
        ],
        "face_check_required": decision.face_check_required,
        "review_required": decision.review_required,
    }


class SubmitPart(FamilyBase):
    """Precheck, submit with atomic limits, and the reviewer's approve / reject."""

    async def precheck(
        self,
        user_id: int,
        *,
        name: str,
        id_type: str,
        id_number: str,
        relationship: str,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """Would this binding work? The policy's answer at the precheck stage; nothing stored.

        Only a real-name verified binder learns anything about the member: an unverified
        one is told that, and nothing is looked up (the registry is no oracle — issue #17);
        every look-up spends the identity-guessing budget (``GuessBudget``)."""
        now = self.clock()
        binder = await self._binder(user_id)
        if not binder.realname_verified:
            return precheck_view(
                BindingDecision(
                    ok=False,
                    blocking=(blocker("BINDER_NOT_VERIFIED"),),
                    required_materials=(),
                    face_check_required=False,
                    review_required=False,
                    minor=False,
                    policy_sources={},
                )
            )
        await self.guesses.spend(self.redis, user_id=user_id, ip=ip)
        try:
            doc: IdDocument | None = parse_id(id_type, id_number, today=self.today(now))
        except DomainError as err:
            if err.code != "INVALID_ID_NUMBER":
                raise
            doc = None
        if doc is not None:
            facts.self_check(self.pii, binder, doc)
        found = await facts.found(self.registry, self.pii, doc, name)
        counts = await facts.counts(
            binder_id=binder.id,
            member_id=facts.member_id(found),
            now=now,
            exclude=None,
            guardian_hashes=facts.guardians(found),
        )
        ctx = facts.context(
            binder,
            today=self.today(now),
            doc=doc,
            relationship=relationship,
            found=found,
            counts=counts,
        )
        return precheck_view(self.policy.check_binding(ctx))

    async def submit(
        self,
        user_id: int,
        application_id: str,
        *,
        member_face_token: str | None,
        verification: Literal["face", "documents"] | None = None,
        ip: str | None = None,
        staff: str | None = None,
    ) -> dict[str, Any]:
        """Submit: the policy decides with every fact, the limits counted under locks.

        ``active`` at once when nothing blocks (and the member's voucher activated on their
        behalf where it was not — 代激活); ``pending_review`` where the policy wants a
        person to look (``verification="documents"``: the member cannot do the face check);
        otherwise a 409 carrying the reason (SPEC.md failure reasons), the application
        waiting in ``needs_action`` when every blocker is one the binder can fix inside it
        (``FIXABLE``: materials, signature and all kept), else ``failed`` with the first
        reason no fix can cure.
        The member's face check (a network call) runs before the transaction; a face
        service that is down is 503 ``SYSTEM_BUSY`` and changes nothing. A member face
        token needs the caller's consent to ``face`` (403 ``CONSENT_REQUIRED``, before
        anything is counted or checked).

        At the counter (窗口代办, ``staff``: the clerk acting for the binder) the member's
        identity is checked by the clerk in person, which replaces the face check when
        ``verification`` is ``"face"`` (no face token, no face service); documents the
        clerk saw count as materials (``record_seen``); a 代激活 is recorded as the
        clerk's (method ``counter``). Every other rule and limit is the same.
        """
        way: Literal["face", "documents"] = verification or "face"
        await self._limit(user_id, "submits")
        app = await self._editable(user_id, application_id, "提交")
        if member_face_token:
            await self.consents.require(user_id, "face")
        await self.guesses.spend(self.redis, user_id=user_id, ip=ip)
        actor = actor_of(user_id, staff)
        now = self.clock()
        today = self.today(now)
        name = self.pii.decrypt(app.member_name_enc, purpose="name")
        try:
            doc: IdDocument | None = parse_id(
                app.id_type,
                self.pii.decrypt(app.id_number_enc, purpose="id_number"),
                today=today,
            )
        except DomainError:
            doc = None
        found = await facts.found(self.registry, self.pii, doc, name)

        # Does the policy want the member's face? It does not depend on any count.
        binder = await self._binder(user_id)
        preview = facts.context(
            binder,
            today=today,
            doc=doc,
            relationship=app.relationship,
            found=found,
            verification=way,
        )
        face_passed: bool | None = None
        if self.policy.check_binding(preview).face_check_required and doc is not None:
            face_passed = False
            if staff:
                face_passed = True  # the clerk checked the member's identity in person
            elif member_face_token:
                try:
                    face_passed = await self.face.check(
                        user_id, member_face_token, name=name, id_number=doc.id_number,
                        purpose="member",
                    )
                except DomainError as err:
                    await ApplicationEvent.create(
                        application_id=app.id,
                        from_state=app.state,
                        to_state=app.state,
                        actor="system",
                        code=err.code,
                        note="face gateway unavailable",
                    )
                    raise
        member_id = facts.member_id(found)
        materials = await queries.materials(app.id)
        kinds = frozenset(m.kind for m in materials) | await seen_kinds(app.id)
        signature = await queries.latest_signature(app.id)
        read_state = app.state

        failure: DomainError | None = None
        binding: Binding | None = None
        async with in_transaction():
            if row_locks():
                # Lock order: member, then binder (module docstring); no lock cycle.
                if member_id is not None:
                    await InsuredPerson.filter(id=member_id).select_for_update().first()
                await User.filter(id=user_id).select_for_update().first()
            counts = await facts.counts(
                binder_id=user_id,
                member_id=member_id,
                now=now,
                exclude=app.id,
                guardian_hashes=facts.guardians(found),
            )
            ctx = facts.context(
                binder,
                today=today,
                doc=doc,
                relationship=app.relationship,
                found=found,
                counts=counts,
                stage="submit",
                materials=kinds,
                commitment=commitment_status(self.documents, signature, now),
                face_passed=face_passed,
                verification=way,
            )
            decision = self.policy.check_binding(ctx)
            events = [step(app, "submitted", actor=actor)]
            app.submitted_at, app.member_id = now, member_id
            app.failure_code = app.failure_message = None  # type: ignore[assignment]  # null=True
            final = [b for b in decision.blocking if b.code not in FIXABLE]
            blocker = final[0] if final else decision.failure
            if blocker is not None:
                to = "failed" if final else "needs_action"
                events.append(
                    step(app, to, actor="system", code=blocker.code, note=blocker.message)
                )
                app.failure_code, app.failure_message = blocker.code, blocker.message
                app.decided_at = now if to == "failed" else None
                failure = reasons.error(blocker.code).conflict(
                    blocker.message,
                    {"fix": blocker.fix, "application_id": str(app.id), "state": to},
                )
            elif decision.review_required:
                events.append(
                    step(app, "pending_review", actor="system", note="policy: review required")
                )
            else:
                events.append(step(app, "active", actor="system"))
                app.decided_at = now
                assert member_id is not None
                binding = await Binding.create(
                    binder_id=user_id,
                    member_id=member_id,
                    application_id=app.id,
                    relationship=app.relationship,
                    state="active",
                    bound_at=now,
                )
                if decision.activates_voucher:
                    await outcomes.activate_voucher(
                        member_id,
                        by_user=user_id,
                        application_id=app.id,
                        method="counter" if staff else "guardian" if decision.minor else "face",
                        now=now,
                        staff=staff,
                    )
                    app.member_activated = True
                await outcomes.member_told(self.pii, binding, kind=outcomes.MEMBER_BOUND, now=now)
            await ApplicationEvent.bulk_create(events)
            # Compare-and-set on the state read before: a concurrent submit of the same
            # application (or anything else that moved it) makes this one roll back.
            changed = await Application.filter(id=app.id, state=read_state).update(
                state=app.state,
                submitted_at=now,
                member_id=member_id,
                failure_code=app.failure_code,
                failure_message=app.failure_message,
                decided_at=app.decided_at,
                member_activated=app.member_activated,
                updated_at=now,
            )
            if changed != 1:
                raise state_conflict(await Application.get(id=app.id), "提交")
        if failure is not None:
            raise failure
        return await application_view(
            self.pii, app, materials=materials, signature=signature, binding=binding
        )

    async def decide_review(
        self, application_id: str, *, reviewer: str, approve: bool, detail: str = ""
    ) -> dict[str, Any]:
        """A reviewer's decision on a ``pending_review`` application (the console calls this).

        Approve: the binding becomes effective once the member's limits are checked again
        (``_limits_at_approval``), the member's voucher activated where it was not (代激活,
        the documents way). Reject: ``failed`` with ``MATERIALS_REJECTED`` (SPEC.md:
        材料不清晰或不符), final. Either way the binder gets a ``binding_result`` notice.
        """
        now = self.clock()
        async with in_transaction():
            app = (
                await Application.filter(id=uuid_or_404(application_id, "申请"))
                .select_for_update()
                .first()
            )
            if app is None:
                raise not_found()
            if app.state != "pending_review":
                raise state_conflict(app, "审核")
            actor = f"reviewer:{reviewer}"
            app.decided_at = now
            if approve:
                activates = await self._limits_at_approval(app, now)
                await transition(app, "active", actor=actor)
                app.failure_code = app.failure_message = None  # type: ignore[assignment]  # null=True
                binding = await Binding.create(
                    binder_id=app.binder_id,
                    member_id=app.member_id,
                    application_id=app.id,
                    relationship=app.relationship,
                    state="active",
                    bound_at=now,
                )
                if activates and app.member_id is not None:
                    await outcomes.activate_voucher(
                        app.member_id,
                        by_user=app.binder_id,
                        application_id=app.id,
                        method="documents",
                        now=now,
                    )
                    app.member_activated = True
                await outcomes.binding_result(
                    self.pii, app, outcome="approved", reason=detail, now=now
                )
                await outcomes.member_told(self.pii, binding, kind=outcomes.MEMBER_BOUND, now=now)
            else:
                r = reasons.reason("MATERIALS_REJECTED", detail=detail)
                await transition(app, "failed", actor=actor, code=r.code, note=detail or None)
                app.failure_code, app.failure_message = r.code, r.message
                await outcomes.binding_result(
                    self.pii, app, outcome="rejected", reason=detail, now=now
                )
            await app.save()
        return await application_view(self.pii, app)

    async def request_correction(
        self, application_id: str, *, reviewer: str, reason: str
    ) -> dict[str, Any]:
        """The reviewer asks the binder to correct the materials (``correction_requested``,
        with the reason): the binder uploads, removes and submits again in the same
        application; a ``binding_result`` notice and the bot explain what to do."""
        reason = (reason or "").strip()
        if not reason:
            raise DomainError(
                "REASON_REQUIRED", "请填写需要补正的内容", fields={"reason": "REQUIRED"}
            )
        now = self.clock()
        async with in_transaction():
            app = (
                await Application.filter(id=uuid_or_404(application_id, "申请"))
                .select_for_update()
                .first()
            )
            if app is None:
                raise not_found()
            if app.state != "pending_review":
                raise state_conflict(app, "要求补正")
            r = reasons.reason("CORRECTION_REQUESTED", detail=reason)
            await transition(
                app, "correction_requested", actor=f"reviewer:{reviewer}", code=r.code, note=reason
            )
            app.failure_code, app.failure_message = r.code, r.message
            await outcomes.binding_result(
                self.pii, app, outcome="correction_requested", reason=reason, now=now
            )
            await app.save()
        return await application_view(self.pii, app)

    async def _limits_at_approval(self, app: Application, now: datetime) -> bool:
        """Pending applications hold no monthly slot of the member (``facts.counts``), so the
        approval asks the policy again, under the member's row lock: a member who got two
        binders meanwhile is not given a third (409 with the code; still pending). Whether
        the approval activates the member's voucher (代激活) is the answer."""
        if app.member_id is None:
            return False
        if row_locks():
            await InsuredPerson.filter(id=app.member_id).select_for_update().first()
        binder = await self._binder(app.binder_id)
        try:
            doc: IdDocument | None = parse_id(
                app.id_type,
                self.pii.decrypt(app.id_number_enc, purpose="id_number"),
                today=self.today(now),
            )
        except DomainError:
            doc = None
        found = await facts.found(
            self.registry, self.pii, doc, self.pii.decrypt(app.member_name_enc, purpose="name")
        )
        counts = await facts.counts(
            binder_id=app.binder_id,
            member_id=app.member_id,
            now=now,
            exclude=app.id,
            guardian_hashes=facts.guardians(found),
        )
        ctx = facts.context(
            binder,
            today=self.today(now),
            doc=doc,
            relationship=app.relationship,
            found=found,
            counts=counts,
        )
        limits = ("ALREADY_BOUND", "MEMBER_LIMIT_REACHED", "MONTHLY_BINDER_LIMIT")
        decision = self.policy.check_binding(ctx)
        for b in decision.blocking:
            if b.code in limits:
                raise reasons.error(b.code).conflict(
                    b.message, {"fix": b.fix, "application_id": str(app.id), "state": app.state}
                )
        return decision.activates_voucher
