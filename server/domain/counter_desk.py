"""窗口代办 at the counter: a clerk does for the person in front of them what the
mini-program does — bind and unbind a 亲情账户 member, 代激活 a 医保电子凭证, give and end
a 家庭共济 authorization — through the same services, the same policy engine and the
same limits (``FamilyService``, ``server.domain.mutual_aid``).

What the counter changes, and only that:

* the person is the binder / authorizer; without a WeChat account they get a counter
  account (``server.domain.counter_accounts``) made from their registry record — the
  clerk's check of their ID document is their real-name verification, so, as in the
  mini-program, their own 医保电子凭证 must be activated first (the counter can do that:
  ``activate``);
* the member's identity is checked by the clerk in person, which replaces the member's
  face check (``FamilyService.submit(staff=…)``); a member who cannot come goes the
  documents way, to a reviewer, as in the mini-program;
* documents are scanned and uploaded, or marked as seen at the counter (an application
  event naming the clerk); the 个人承诺书 of the version in force is signed on the
  counter's pad (an image) or on the printed form; the person's consent to the use of
  their documents is given on the paper privacy notice and recorded as such;
* every action, refused or done, is one audit entry: staff X, for ``person:<id>``, what,
  and the outcome (codes and ids only);
* a clerk acts only for people of their regions: anyone else is "not found".
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, cast

from tortoise.transactions import in_transaction

from server.domain import audit, mutual_aid, reasons
from server.domain.clock import parse_uuid
from server.domain.counter import NOT_FOUND
from server.domain.counter_accounts import account_for
from server.domain.errors import DomainError
from server.domain.family import outcomes
from server.domain.family.commitment import MAX_SIGNATURE_BYTES
from server.domain.family.states import FIXABLE, STATE_LABELS
from server.domain.identity import parse_id
from server.domain.models import Application, Binding, InsuredPerson, User
from server.domain.pii import mask_name
from server.domain.staff import Principal

if TYPE_CHECKING:
    from server.domain.family import FamilyService

Verification = Literal["in_person", "documents"]
PAPER_CONSENT = ("id_documents",)  # what the paper privacy notice signed at the counter covers


@dataclass
class BindRequest:
    """The counter's binding form, as the domain takes it."""

    name: str
    id_type: str
    id_number: str
    relationship: str
    verification: Verification
    commitment_version: str
    commitment_sha256: str
    consent_on_paper: bool
    uploads: Sequence[tuple[str, AsyncIterator[bytes]]] = ()
    seen: Sequence[str] = ()
    signature_image: bytes | None = None
    signed_on_paper: bool = False


@dataclass
class Outcome:
    """What the clerk is shown after an action (and what the audit entry says)."""

    action: str
    title: str
    lines: list[str] = field(default_factory=list)
    audit: dict[str, Any] | None = None  # the audit entry that records it (``audit.view``)


def _person_not_found() -> DomainError:
    return DomainError("PERSON_NOT_FOUND", NOT_FOUND)


def _needs_own_voucher() -> DomainError:
    err = reasons.error("BINDER_NOT_VERIFIED")
    err.message = "本人的医保电子凭证尚未激活,暂不能办理绑定或共济授权。"
    err.detail = {"fix": "请先在本窗口为本人代激活医保电子凭证(核验本人证件后),再办理。"}
    return err


def _invalid(message: str, field_name: str) -> DomainError:
    return DomainError("VALIDATION_FAILED", message, fields={field_name: "REQUIRED"})


class CounterDesk:
    """The counter's use cases (``keys.counter_desk_key``)."""

    def __init__(self, *, family: FamilyService) -> None:
        self.family = family
        self.pii = family.pii
        self.policy = family.policy

    # -- who is served ----------------------------------------------------------------

    async def person(self, who: Principal, person_id: int | str) -> InsuredPerson:
        """The insured person, when the clerk's regions cover them (else "not found")."""
        try:
            pid = int(person_id)
        except (TypeError, ValueError):
            raise _person_not_found() from None
        person = await InsuredPerson.get_or_none(id=pid)
        if person is None or not who.covers(person.region_code):
            raise _person_not_found()
        return person

    async def _account(self, person: InsuredPerson, *, acting: bool = True) -> tuple[User, bool]:
        """The person's account (made now at the counter if they have none). To bind or
        authorize (``acting``) their own voucher must be activated, as for a real-name
        verification in the mini-program; a member removing a binder needs no voucher."""
        if acting and not person.voucher_activated:
            raise _needs_own_voucher()
        return await account_for(
            person,
            name=self.pii.decrypt(person.name_enc, purpose="name"),
            id_number=self.pii.decrypt(person.id_number_enc, purpose="id_number"),
            pii=self.pii,
            now=self.family.clock(),
        )

    @staticmethod
    async def _existing_account(person: InsuredPerson) -> User:
        user = await User.get_or_none(id_hash=person.id_hash)
        if user is None:
            raise DomainError("BINDING_NOT_FOUND", "该参保人没有可办理的绑定或授权")
        return user

    async def _paper_consent(self, who: Principal, user_id: int) -> None:
        """Record the consent the person gave on the paper privacy notice (only the
        purposes the counter needs; nothing when already in force)."""
        consents = self.family.consents
        try:
            for purpose in PAPER_CONSENT:
                await consents.require(user_id, purpose)
            return
        except DomainError as err:
            if err.code != "CONSENT_REQUIRED":
                raise
        notice = consents.notice()
        await consents.accept(
            user_id,
            version=notice.version,
            sha256=notice.sha256,
            purposes=PAPER_CONSENT,
            ip=who.ip,
            user_agent=f"窗口代办 {who.name}:纸质告知书签字",
        )

    async def _audit(
        self, who: Principal, action: str, person: InsuredPerson, *, target_kind: str,
        target_id: str | None, detail: dict[str, Any],
    ) -> dict[str, Any]:
        entry = await audit.record(
            who.actor, action, target_kind=target_kind, target_id=target_id,
            person_ref=f"person:{person.id}", detail=detail,
        )
        return audit.view(entry)

    async def _refused(
        self, who: Principal, action: str, person: InsuredPerson, err: DomainError, **detail: Any
    ) -> None:
        await self._audit(
            who, action, person, target_kind="person", target_id=str(person.id),
            detail={"outcome": "refused", "code": err.code, **detail},
        )

    # -- 亲情账户 ------------------------------------------------------------------------

    async def bind(self, who: Principal, person_id: int | str, form: BindRequest) -> Outcome:
        """Bind a family member for the person (the binder), as the mini-program's create,
        upload, sign and submit — one form. A refusal the binder could fix in the
        mini-program cancels the application here (the clerk fills the form again)."""
        person = await self.person(who, person_id)
        try:
            return await self._bind(who, person, form)
        except DomainError as err:
            await self._refused(who, "counter_bind", person, err, relationship=form.relationship)
            raise

    async def _bind(self, who: Principal, person: InsuredPerson, form: BindRequest) -> Outcome:
        if not form.consent_on_paper:
            raise _invalid("请确认本人已在纸质《个人信息处理告知书》上签字同意", "consent_on_paper")
        if form.signature_image is None and not form.signed_on_paper:
            raise _invalid("请上传本人签名图片,或确认本人已在打印的承诺书上签字", "signature")
        if form.signature_image is not None and len(form.signature_image) > MAX_SIGNATURE_BYTES:
            raise DomainError("MATERIAL_TOO_LARGE", "签名图片不能超过 512 KB")
        if form.verification not in ("in_person", "documents"):
            raise _invalid("请选择被绑定人的身份核验方式", "verification")
        family, staff = self.family, who.name
        user, created = await self._account(person)
        await self._paper_consent(who, user.id)
        pre = await family.precheck(
            user.id, name=form.name, id_type=form.id_type, id_number=form.id_number,
            relationship=form.relationship,
        )
        final = [b for b in pre["blocking"] if b["code"] not in FIXABLE]
        if final:
            b = final[0]
            raise reasons.error(b["code"]).conflict(b["message"], {"fix": b["fix"]})
        app = await family.create_application(
            user.id, name=form.name, id_type=form.id_type, id_number=form.id_number,
            relationship=form.relationship, staff=staff,
        )
        app_id = app["id"]
        try:
            for kind, chunks in form.uploads:
                stored = await family.store_upload(user.id, app_id, chunks)
                await family.attach_material(user.id, app_id, kind=kind, stored=stored, staff=staff)
            if form.seen:
                await family.record_seen(user.id, app_id, kinds=list(form.seen), staff=staff)
            image = (
                base64.b64encode(form.signature_image).decode()
                if form.signature_image is not None
                else None
            )
            await family.sign_commitment(
                user.id, app_id, version=form.commitment_version,
                sha256=form.commitment_sha256, signature_image=image, ip=who.ip,
                user_agent=f"窗口代办 {staff}", staff=staff,
                on_paper=form.signed_on_paper and image is None,
            )
            result = await family.submit(
                user.id, app_id, member_face_token=None,
                verification="face" if form.verification == "in_person" else "documents",
                staff=staff,
            )
        except DomainError as err:
            await self._cancel_unfinished(user.id, app_id, err)
            raise
        state = result["state"]
        member_id = await Application.filter(id=app_id).first().values_list("member_id", flat=True)
        entry = await self._audit(
            who, "counter_bind", person, target_kind="application", target_id=app_id,
            detail={
                "outcome": state,
                "account": "created" if created else "existing",
                "relationship": form.relationship,
                "member": f"person:{member_id}",
                "verification": form.verification,
                "uploaded": [m["kind"] for m in result.get("materials", [])],
                "seen": list(dict.fromkeys(form.seen)),
                "signature": "image" if form.signature_image is not None else "paper",
                "commitment": form.commitment_version,
                "activated": bool(result.get("member_activated")),
            },
        )
        member = result["member"]["name"]
        lines = [f"被绑定人:{member}({result['relationship_label']})",
                 f"申请状态:{STATE_LABELS.get(state, state)}"]
        if state == "pending_review":
            lines.append("已转人工审核,审核结果以短信或窗口查询为准。")
        if result.get("member_activated"):
            lines.append(f"已为 {member} 代激活医保电子凭证。")
        if created:
            lines.append("已为本人建立窗口账户;本人日后用微信登录并实名认证后,可在小程序中看到这些绑定。")
        title = "绑定成功" if state == "active" else "已提交审核"
        return Outcome("counter_bind", title, lines, entry)

    async def _cancel_unfinished(self, user_id: int, app_id: str, err: DomainError) -> None:
        """A counter application that did not go through is cancelled — nothing waits for
        a fix at the counter (the clerk fills the form again); a final failure stays."""
        state = (err.detail or {}).get("state")
        if state not in (None, "needs_action"):
            return
        try:
            await self.family.cancel_application(user_id, app_id)
        except DomainError:  # it moved on meanwhile: leave it as it is
            return
        err.detail = {**(err.detail or {}), "application_id": app_id, "state": "cancelled"}

    async def unbind(
        self, who: Principal, person_id: int | str, binding_id: str,
        side: Literal["binder", "member"],
    ) -> Outcome:
        """End a binding for the person: one they made (``binder``) or one that binds them
        (``member``: they remove a binder — which frees the month's slot, as in the app)."""
        person = await self.person(who, person_id)
        try:
            if side == "member":
                user, _ = await self._account(person, acting=False)
            else:
                user = await self._existing_account(person)
            binding = await self.family.unbind(
                user.id, binding_id, as_member=side == "member", staff=who.name
            )
        except DomainError as err:
            await self._refused(who, "counter_unbind", person, err, side=side)
            raise
        entry = await self._audit(
            who, "counter_unbind", person, target_kind="binding", target_id=str(binding.id),
            detail={"outcome": "unbound", "side": side, "member": f"person:{binding.member_id}",
                    "binder": f"user:{binding.binder_id}"},
        )
        return Outcome("counter_unbind", "已解除绑定", ["该亲情账户绑定已解除,对方将收到通知(如使用微信)。"], entry)

    # -- 代激活 --------------------------------------------------------------------------

    async def activate(
        self, who: Principal, person_id: int | str, binding_id: str | None = None
    ) -> Outcome:
        """代激活 at the counter: the person's own 医保电子凭证 (they are here, the clerk
        checked their document), or that of a member the person has bound (``binding_id``)
        where the region's policy lets a binder activate on a member's behalf."""
        person = await self.person(who, person_id)
        try:
            return await self._activate(who, person, binding_id)
        except DomainError as err:
            await self._refused(who, "counter_activate", person, err)
            raise

    async def _activate(
        self, who: Principal, person: InsuredPerson, binding_id: str | None
    ) -> Outcome:
        now = self.family.clock()
        by_user: int | None = None
        application_id = None
        target_id = person.id
        if binding_id:
            user = await self._existing_account(person)
            bid = parse_uuid(binding_id)
            binding = None if bid is None else await Binding.filter(
                id=bid, binder_id=user.id, state="active"
            ).select_related("member").first()
            if binding is None:
                raise DomainError("BINDING_NOT_FOUND", "家庭成员不存在或已解绑")
            if not self._may_activate_for(person, binding.member, self.family.today(now)):
                raise reasons.error("MEMBER_NOT_ACTIVATED")
            by_user, application_id, target_id = user.id, binding.application_id, binding.member_id
        else:
            by_user = cast(
                "int | None", await User.filter(id_hash=person.id_hash).first().values_list("id", flat=True)
            )
        async with in_transaction():
            target = await InsuredPerson.filter(id=target_id).select_for_update(no_key=True).first()
            assert target is not None
            if target.voucher_activated:
                raise DomainError("VOUCHER_ALREADY_ACTIVATED", "该参保人的医保电子凭证已激活,无需再次激活")
            if target.status != "active":
                raise reasons.error("MEMBER_NOT_INSURED")
            await outcomes.activate_voucher(
                target.id, by_user=by_user, application_id=application_id, method="counter",
                now=now, staff=who.name,
            )
        name = mask_name(self.pii.decrypt(target.name_enc, purpose="name"))
        entry = await self._audit(
            who, "counter_activate", person, target_kind="person", target_id=str(target.id),
            detail={"outcome": "activated", "for": "self" if target.id == person.id else "member",
                    "member": f"person:{target.id}"},
        )
        return Outcome("counter_activate", "代激活成功", [f"已为 {name} 激活医保电子凭证(窗口代办)。"], entry)

    def _may_activate_for(self, binder: InsuredPerson, member: InsuredPerson, today: date) -> bool:
        """Whether the binder's region lets a binder activate this member's voucher (the
        policy's ``proxy_activation``, or ``minor_activation_by_guardian`` for a minor)."""
        p = self.policy.settings(binder.region_code, today)
        try:
            doc = parse_id(
                member.id_type, self.pii.decrypt(member.id_number_enc, purpose="id_number"),
                today=today,
            )
        except DomainError:
            doc = None
        return p.minor_activation_by_guardian if self.policy.is_minor(doc, today, p) else p.proxy_activation

    # -- 家庭共济 ------------------------------------------------------------------------

    async def authorize(
        self, who: Principal, person_id: int | str, *, name: str, id_type: str, id_number: str,
        relationship: str, quota_fen: int | None, notice_on_paper: bool,
    ) -> Outcome:
        """A 家庭共济 authorization from the person (the authorizer) to a relative: the
        告知书 in force read and signed on paper at the counter; the same rules
        (``mutual_aid.authorize``)."""
        person = await self.person(who, person_id)
        try:
            if not notice_on_paper:
                raise _invalid("请确认本人已阅读并在纸质《共济绑定告知书》上签字", "notice_on_paper")
            user, created = await self._account(person)
            notice = mutual_aid.current_notice()
            out = await mutual_aid.authorize(
                user_id=user.id, name=name, id_type=id_type, id_number=id_number,
                relationship=relationship, notice_version=notice.version,
                notice_sha256=notice.sha256, quota_fen=quota_fen, pii=self.pii,
                policy=self.policy, redis=self.family.redis, guesses=self.family.guesses,
                ip=None,
            )
        except DomainError as err:
            await self._refused(who, "counter_authorize", person, err, relationship=relationship)
            raise
        entry = await self._audit(
            who, "counter_authorize", person, target_kind="authorization", target_id=out["id"],
            detail={"outcome": "active", "account": "created" if created else "existing",
                    "relationship": relationship, "notice": notice.version,
                    "cross_province": out["cross_province"]},
        )
        lines = [f"被授权人:{out['member']['name']}", f"告知书版本:{notice.version}",
                 f"可解除日期:{out['revocable_from']} 起"]
        return Outcome("counter_authorize", "共济授权已生效", lines, entry)

    async def revoke(self, who: Principal, person_id: int | str, authorization_id: str) -> Outcome:
        """End one of the person's 家庭共济 authorizations (the region's lock applies)."""
        person = await self.person(who, person_id)
        try:
            user = await self._existing_account(person)
            await mutual_aid.revoke(
                user_id=user.id, authorization_id=authorization_id, policy=self.policy
            )
        except DomainError as err:
            await self._refused(who, "counter_revoke", person, err)
            raise
        entry = await self._audit(
            who, "counter_revoke", person, target_kind="authorization",
            target_id=authorization_id, detail={"outcome": "revoked"},
        )
        return Outcome("counter_revoke", "共济授权已解除", ["未使用的共济额度(如有)已退回本人个人账户。"], entry)


__all__ = ["BindRequest", "CounterDesk", "Outcome"]
