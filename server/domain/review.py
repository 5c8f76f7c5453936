"""The review desk: the queue of applications a person must look at, and the decisions.

Rules: an application reaches ``pending_review`` only where the policy asks for a person
(关系公证书, non-mainland documents, a child bound by someone the registry does not
record as a guardian — SPEC.md verification row, API.md submit). Staff see only
applications of their regions: the application's region is the binder's insurance
region (the policy's region for it), else the member's. Both people are shown masked;
showing one in full is a separate, audited request, as is every view of a material.
Deciding takes the application's claim (``server.domain.claims``): a second reviewer
sees who holds it. Decisions go through ``FamilyService.decide_review`` (approve: the
binding becomes effective after the limits are checked again; reject: final,
``MATERIALS_REJECTED`` "材料不清晰或不符", SPEC.md failure reasons) and are audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from tortoise.expressions import Q

from server.domain import audit
from server.domain.claims import Claim, Claims
from server.domain.clock import Clock, cn_today, parse_uuid, utc_now
from server.domain.errors import DomainError
from server.domain.family.commitment import COMMITMENT_ON_PAPER
from server.domain.family.materials import DOCUMENT_SEEN
from server.domain.identity import ID_TYPE_LABELS, ID_TYPES, normalize_id_number, parse_id
from server.domain.models import (
    Application,
    ApplicationEvent,
    CommitmentSignature,
    InsuredPerson,
    Material,
    User,
)
from server.domain.pii import PiiCipher, mask_id, mask_name
from server.domain.policy import (
    MATERIAL_LABELS,
    NATIONAL,
    RELATIONSHIP_LABELS,
    PolicyEngine,
)
from server.domain.registry import id_hash, name_hash
from server.domain.staff import Principal, when

REVIEW_STATE = "pending_review"
STATE_LABELS: dict[str, str] = {
    "draft": "草稿",
    "materials": "已上传材料",
    "commitment_signed": "已签承诺书",
    "submitted": "已提交",
    "pending_review": "待审核",
    "needs_action": "待补正",
    "correction_requested": "待补正",
    "active": "已生效",
    "failed": "未通过",
    "unbound": "已解绑",
    "cancelled": "已撤销",
}
# A rejection is final (SPEC.md: "reviewer's final rejection"); the binder sees
# MATERIALS_REJECTED ("材料不清晰或不符") with the reason below (and the bot explains it).
REJECT_REASONS: dict[str, str] = {
    "UNCLEAR": "材料不清晰、不完整或有遮挡",
    "MISMATCH": "材料与填写的姓名、证件号码不符",
    "RELATIONSHIP_UNPROVEN": "材料不能证明所填写的亲属关系",
    "NOT_GUARDIAN": "材料不能证明绑定人是未成年人的监护人",
    "FORGED": "材料疑似伪造或经过修改",
}
Whom = Literal["binder", "member"]
# A binder or member is found by their region: the binder's insured person first (the
# policy's region), then the member's.
_REGION_PATHS = ("binder__person__region_code", "member__region_code")


def _not_found() -> DomainError:
    return DomainError("NOT_FOUND", "申请不存在或不在您的辖区")


@dataclass(frozen=True)
class QueueFilter:
    region: str = ""
    id_type: str = ""
    relationship: str = ""
    waited_days: int = 0  # waiting at least this many days
    id_number: str = ""  # exact, looked up by blind index
    name: str = ""  # exact member name, looked up by blind index


class ReviewDesk:
    def __init__(
        self,
        *,
        pii: PiiCipher,
        policy: PolicyEngine,
        claims: Claims,
        binding: Any,  # FamilyService (decide_review)
        clock: Clock = utc_now,
    ) -> None:
        self.pii = pii
        self.policy = policy
        self.claims = claims
        self.binding = binding
        self.clock = clock

    # -- reading ---------------------------------------------------------------------

    async def _get(self, who: Principal, application_id: str) -> Application:
        """The application, if it exists and lies in ``who``'s regions (else 404)."""
        uid = parse_uuid(application_id)
        if uid is None:
            raise _not_found()
        q = Application.filter(id=uid)
        scope = who.region_q(*_REGION_PATHS)
        if scope is not None:
            q = q.filter(scope)
        app = await q.first()
        if app is None:
            raise _not_found()
        return app

    def _id_hashes(self, id_number: str) -> list[str]:
        number = normalize_id_number(id_number)
        out = []
        for id_type in ID_TYPES:
            try:
                out.append(id_hash(self.pii, id_type, parse_id(id_type, number, today=cn_today()).id_number))
            except DomainError:
                out.append(id_hash(self.pii, id_type, number))
        return out

    async def queue(
        self, who: Principal, f: QueueFilter, *, limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        """Oldest first: the queue is worked in the order people submitted."""
        q = Application.filter(state=REVIEW_STATE)
        scope = who.region_q(*_REGION_PATHS)
        if scope is not None:
            q = q.filter(scope)
        if f.region:
            region_scope = Principal(None, "", "", (f.region,)).region_q(*_REGION_PATHS)
            if region_scope is not None:
                q = q.filter(region_scope)
        if f.id_type:
            q = q.filter(id_type=f.id_type)
        if f.relationship:
            q = q.filter(relationship=f.relationship)
        if f.waited_days:
            q = q.filter(submitted_at__lte=self.clock() - timedelta(days=f.waited_days))
        if f.id_number or f.name:
            # a look-up by someone's ID number or name is itself an access to their data
            await audit.record(
                who.actor, "search", target_kind="application",
                detail={"by": "+".join(k for k in ("id_number", "name") if getattr(f, k))},
            )
        if f.id_number:
            hashes = self._id_hashes(f.id_number)
            binders = await User.filter(id_hash__in=hashes).values_list("id", flat=True)
            q = q.filter(Q(id_hash__in=hashes) | Q(binder_id__in=list(binders) or [-1]))
        if f.name:
            q = q.filter(member_name_hash=name_hash(self.pii, f.name.strip()))
        total = await q.count()
        rows = (
            await q.order_by("submitted_at", "created_at")
            .offset(offset)
            .limit(limit)
            .prefetch_related("binder__person", "member")
        )
        items = []
        for app in rows:
            item = self._summary(app)
            claim = await self.claims.current(str(app.id))
            item["claim"] = _claim_view(claim)
            items.append(item)
        return {"items": items, "total": total}

    def _summary(self, app: Application) -> dict[str, Any]:
        binder: User = app.binder
        member: InsuredPerson | None = app.member
        now = self.clock()
        return {
            "id": str(app.id),
            "state": app.state,
            "state_label": STATE_LABELS.get(app.state, app.state),
            "relationship": app.relationship,
            "relationship_label": RELATIONSHIP_LABELS.get(app.relationship, app.relationship),
            "id_type": app.id_type,
            "id_type_label": ID_TYPE_LABELS.get(app.id_type, app.id_type),
            "member_name": mask_name(self.pii.decrypt(app.member_name_enc, purpose="name")),
            "member_id_number": mask_id(self.pii.decrypt(app.id_number_enc, purpose="id_number")),
            "binder_name": self._binder_name(binder, masked=True),
            "region": _region_of(binder, member),
            "submitted_at": when(app.submitted_at),
            "waited_hours": None
            if app.submitted_at is None
            else int((now - app.submitted_at).total_seconds() // 3600),
        }

    def _binder_name(self, binder: User, *, masked: bool) -> str:
        if not binder.name_enc:
            return "(未实名)"
        name = self.pii.decrypt(binder.name_enc, purpose="name")
        return mask_name(name) if masked else name

    async def detail(
        self, who: Principal, application_id: str, *, unmasked: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        """Everything a reviewer needs, both people masked unless ``unmasked`` names them
        (only ``unmask`` passes it, after the audit entry is written)."""
        app = await self._get(who, application_id)
        await app.fetch_related("binder__person", "member")
        binder: User = app.binder
        member: InsuredPerson | None = app.member
        materials = await Material.filter(application_id=app.id).order_by("created_at")
        events = await ApplicationEvent.filter(application_id=app.id).order_by("at", "id")
        signature = (
            await CommitmentSignature.filter(application_id=app.id).order_by("-signed_at", "-id").first()
        )
        out = self._summary(app)
        member_name = self.pii.decrypt(app.member_name_enc, purpose="name")
        member_id = self.pii.decrypt(app.id_number_enc, purpose="id_number")
        show_member = "member" in unmasked
        show_binder = "binder" in unmasked
        binder_id_number = (
            self.pii.decrypt(binder.id_number_enc, purpose="id_number") if binder.id_number_enc else ""
        )
        out.update(
            {
                "member": {
                    "name": member_name if show_member else mask_name(member_name),
                    "id_type_label": ID_TYPE_LABELS.get(app.id_type, app.id_type),
                    "id_number": member_id if show_member else mask_id(member_id),
                    "unmasked": show_member,
                    "registry": None
                    if member is None
                    else {
                        "region": member.region_code,
                        "insurance_type": "职工医保" if member.insurance_type == "employee" else "居民医保",
                        "status": "正常参保" if member.status == "active" else "暂停参保",
                        "voucher_activated": member.voucher_activated,
                    },
                },
                "binder": {
                    "name": self._binder_name(binder, masked=not show_binder),
                    "id_type_label": ID_TYPE_LABELS.get(binder.id_type or "", "证件"),
                    "id_number": binder_id_number if show_binder else mask_id(binder_id_number),
                    "realname_verified": binder.realname_verified,
                    "region": binder.person.region_code if binder.person else None,
                    "unmasked": show_binder,
                },
                "reason": app.reason,
                "failure": {"code": app.failure_code, "message": app.failure_message}
                if app.failure_code
                else None,
                "materials": [
                    {
                        "id": str(m.id),
                        "kind": m.kind,
                        "label": MATERIAL_LABELS.get(m.kind, m.kind),
                        "content_type": m.content_type,
                        "is_image": m.content_type in ("image/jpeg", "image/png"),
                        "size_kb": max(1, round(m.size / 1024)),
                        "sha256": m.sha256,
                    }
                    for m in materials
                ],
                "commitment": None
                if signature is None
                else {
                    "version": signature.version,
                    "signed_at": when(signature.signed_at),
                    "text_sha256": signature.text_sha256,
                    "on_paper": any(e.code == COMMITMENT_ON_PAPER for e in events),
                    "image": signature.signature_image_key is not None,
                },
                # 窗口代办: documents the clerk saw in person (no file), and who
                "seen_at_counter": [
                    {"label": MATERIAL_LABELS.get(e.note or "", e.note or ""),
                     "by": _actor_label(e.actor)}
                    for e in events
                    if e.code == DOCUMENT_SEEN
                ],
                "events": [
                    {
                        "at": when(e.at),
                        "from": STATE_LABELS.get(e.from_state or "", e.from_state or ""),
                        "to": STATE_LABELS.get(e.to_state, e.to_state),
                        "actor": _actor_label(e.actor),
                        "code": e.code,
                        "note": _event_note(e.code, e.note),
                    }
                    for e in events
                ],
                "review_reasons": self._review_reasons(app, binder, member, materials),
                "claim": _claim_view(await self.claims.current(str(app.id))),
                "decidable": app.state == REVIEW_STATE,
            }
        )
        return out

    def _review_reasons(
        self, app: Application, binder: User, member: InsuredPerson | None, materials: list[Material]
    ) -> dict[str, Any]:
        """Why the policy sent this application to a person, from the same settings the
        submit used (the binder's region, on the day of the submit)."""
        region = _region_of(binder, member) or NATIONAL
        on = cn_today(app.submitted_at or app.created_at)
        try:
            p = self.policy.settings(region, on)
        except ValueError:
            return {"items": ["政策要求人工审核"], "source": ""}
        review_set = set(p.review_required_for)
        items: list[str] = []
        if app.id_type in review_set:
            items.append(f"被绑定人使用{ID_TYPE_LABELS.get(app.id_type, app.id_type)},须人工核验证件")
        for kind in sorted({m.kind for m in materials} & review_set):
            items.append(f"提交了{MATERIAL_LABELS.get(kind, kind)},须人工核验")
        try:
            doc = parse_id(app.id_type, self.pii.decrypt(app.id_number_enc, purpose="id_number"), today=on)
        except DomainError:
            doc = None
        if PolicyEngine.is_minor(doc, on, p):
            guardian = bool(
                member is not None
                and binder.id_hash
                and binder.id_hash in (member.guardian_hashes or "").split(",")
            )
            if not guardian:
                items.append(f"被绑定人未满{p.minor_age}周岁,绑定人不是户籍登记的监护人")
        origin = p.origins.get("review_required_for")
        return {
            "items": items or ["政策要求人工审核"],
            "source": origin.source if origin else "",
            "region": region,
            "on": on.isoformat(),
        }

    async def unmask(self, who: Principal, application_id: str, whom: Whom) -> dict[str, Any]:
        """Show one person in full: audited first (who, which person, from where)."""
        app = await self._get(who, application_id)
        ref = f"user:{app.binder_id}" if whom == "binder" else _member_ref(app)
        await audit.record(
            who.actor, "unmask", target_kind="application", target_id=str(app.id),
            person_ref=ref, detail={"whom": whom},
        )
        return await self.detail(who, application_id, unmasked=frozenset({whom}))

    async def material(self, who: Principal, application_id: str, material_id: str) -> Material:
        """A material to show: in scope, and its view audited."""
        app = await self._get(who, application_id)
        mid = parse_uuid(material_id)
        material = None if mid is None else await Material.get_or_none(id=mid, application_id=app.id)
        if material is None:
            raise DomainError("NOT_FOUND", "材料不存在")
        await audit.record(
            who.actor, "view_material", target_kind="material", target_id=str(material.id),
            person_ref=_member_ref(app), detail={"application_id": str(app.id), "kind": material.kind},
        )
        return material

    async def audit_view(self, who: Principal, application_id: str) -> None:
        app = await self._get(who, application_id)
        await audit.record(
            who.actor, "view_application", target_kind="application", target_id=str(app.id),
            person_ref=_member_ref(app),
        )

    # -- claims and decisions --------------------------------------------------------

    async def claim(self, who: Principal, application_id: str) -> Claim:
        app = await self._get(who, application_id)
        if app.state != REVIEW_STATE:
            raise DomainError("APPLICATION_STATE_CONFLICT", "该申请已不在待审核状态")
        claim = await self.claims.take(str(app.id), who.name)
        if not claim.held_by(who.name):
            raise _claimed(claim)
        await audit.record(
            who.actor, "claim", target_kind="application", target_id=str(app.id),
            person_ref=_member_ref(app),
        )
        return claim

    async def release(self, who: Principal, application_id: str) -> None:
        app = await self._get(who, application_id)
        if await self.claims.release(str(app.id), who.name):
            await audit.record(
                who.actor, "release", target_kind="application", target_id=str(app.id),
                person_ref=_member_ref(app),
            )

    async def decide(
        self,
        who: Principal,
        application_id: str,
        *,
        decision: Literal["approve", "reject", "correction"],
        reason_code: str = "",
        note: str = "",
    ) -> dict[str, Any]:
        """Approve, reject (final) or request a correction. Takes the claim first: a
        reviewer cannot decide an application another holds.

        A correction goes to ``request_correction(application_id, reviewer=, reason=)``
        of the family service, which the lead is adding (``correction_requested``): until
        it exists the console offers the button disabled and this answers 409."""
        app = await self._get(who, application_id)
        detail = ""
        request_correction = getattr(self.binding, "request_correction", None)
        if decision == "correction":
            if not callable(request_correction):
                raise DomainError("CORRECTION_UNAVAILABLE", "“要求补正”暂不可用")
            if not note.strip():
                raise DomainError("REASON_REQUIRED", "请填写需要补正的内容", fields={"reason": "REQUIRED"})
        if decision == "reject":
            if reason_code not in REJECT_REASONS:
                raise DomainError(
                    "REASON_REQUIRED", "驳回时请选择理由", fields={"reason": "REQUIRED"}
                )
            detail = REJECT_REASONS[reason_code] + (f"({note.strip()})" if note.strip() else "")
        claim = await self.claims.take(str(app.id), who.name)
        if not claim.held_by(who.name):
            raise _claimed(claim)
        if decision == "correction":
            assert request_correction is not None
            out = await request_correction(str(app.id), reviewer=who.name, reason=note.strip()[:200])
        else:
            out = await self.binding.decide_review(
                str(app.id), reviewer=who.name, approve=decision == "approve", detail=detail
            )
        await self.claims.release(str(app.id), who.name)
        action = {"approve": "approve", "reject": "reject", "correction": "request_correction"}[decision]
        await audit.record(
            who.actor,
            action,
            target_kind="application",
            target_id=str(app.id),
            person_ref=_member_ref(app),
            detail={} if decision == "approve" else {"reason_code": reason_code, "note": note.strip()[:200]},
        )
        return dict(out)


def _claimed(claim: Claim) -> DomainError:
    return DomainError(
        "APPLICATION_CLAIMED",
        f"该申请已由 {claim.owner} 于 {when(claim.at)} 领取处理,请处理其他申请",
        detail={"claimed_by": claim.owner, "claimed_at": when(claim.at)},
    )


def _claim_view(claim: Claim | None) -> dict[str, str] | None:
    if claim is None:
        return None
    return {"owner": claim.owner, "at": when(claim.at), "until": when(claim.until)}


def _member_ref(app: Application) -> str:
    return f"person:{app.member_id}" if app.member_id else f"idx:{app.id_hash}"


def _region_of(binder: User, member: InsuredPerson | None) -> str:
    person = binder.person if isinstance(binder, User) else None
    if person is not None and person.region_code:
        return str(person.region_code)
    return str(member.region_code) if member is not None else ""


def _actor_label(actor: str) -> str:
    base, _, clerk = actor.partition("@staff:")  # done at the counter for that person
    if clerk:
        return f"窗口 {clerk}(代{_actor_label(base)})"
    kind, _, name = base.partition(":")
    labels = {"user": "绑定人", "member": "被绑定人", "system": "系统",
              "reviewer": f"审核员 {name}", "staff": f"窗口 {name}"}
    return labels.get(kind, actor)


def _event_note(code: str | None, note: str | None) -> str | None:
    if code == DOCUMENT_SEEN and note:
        return f"窗口当面查验:{MATERIAL_LABELS.get(note, note)}"
    if code == COMMITMENT_ON_PAPER:
        return f"本人在打印的承诺书(版本 {note})上签字,纸质件窗口留存"
    return note

