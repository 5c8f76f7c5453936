"""窗口代办 (counter service): staff at the 医保大厅 look a person up on the registry.

Seed 001 sends elderly people without a smartphone to the counter. The clerk types the
ID document and the name the person shows; the registry answers by blind index (the
same look-up as the mini-program's, ``Registry``), and the clerk sees the person
masked, their insurance, and who they are bound to. A person outside the clerk's regions,
an unknown ID and a wrong name all answer the same "not found" (the counter is no oracle
for the rest of the country); each look-up is audited and counted per clerk per hour.

Binding, unbinding, 代激活 and 家庭共济 on the person's behalf: ``counter_desk``.
"""

from __future__ import annotations

from typing import Any

from server.domain import audit
from server.domain.clock import cn_today
from server.domain.counter_accounts import is_counter_account
from server.domain.errors import DomainError
from server.domain.family.states import STATE_LABELS
from server.domain.identity import ID_TYPE_LABELS, parse_id
from server.domain.models import Application, Authorization, Binding, InsuredPerson, User
from server.domain.pii import PiiCipher, mask_id, mask_name
from server.domain.policy import RELATIONSHIP_LABELS
from server.domain.registry import Registry, id_hash, match
from server.domain.staff import Principal, when
from server.ratelimit import hit

NOT_FOUND = "未找到该参保人:请核对证件号码和姓名,或该参保人不在本窗口辖区。"


async def lookup(
    who: Principal,
    *,
    id_type: str,
    id_number: str,
    name: str,
    registry: Registry,
    pii: PiiCipher,
    redis: Any,
    per_hour: int,
) -> dict[str, Any]:
    await hit(redis, f"console-counter:{who.name}", limit=per_hour, per_seconds=3600)
    doc = parse_id(id_type, id_number, today=cn_today())  # 422 for a malformed number
    name = name.strip()
    result, record = await match(
        registry, pii, id_type=doc.id_type, id_number=doc.id_number, name=name
    )
    person = None
    if result == "match" and record is not None and who.covers(record.region_code):
        person = await InsuredPerson.get_or_none(id=record.person_id)
    ref = f"person:{person.id}" if person else f"idx:{id_hash(pii, doc.id_type, doc.id_number)}"
    await audit.record(
        who.actor, "counter_lookup", target_kind="person", target_id=str(person.id) if person else None,
        person_ref=ref, detail={"found": person is not None},
    )
    if person is None:
        raise DomainError("PERSON_NOT_FOUND", NOT_FOUND)
    return await person_view(person, pii=pii, id_number=doc.id_number, name=name)


async def person_view(
    person: InsuredPerson, *, pii: PiiCipher, id_number: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """The person as the clerk sees them: masked, with their bindings both ways, their
    家庭共济 authorizations and their latest applications (ids for the counter's forms)."""
    name = name if name is not None else pii.decrypt(person.name_enc, purpose="name")
    if id_number is None:
        id_number = pii.decrypt(person.id_number_enc, purpose="id_number")
    as_member = (
        await Binding.filter(member_id=person.id, state="active")
        .prefetch_related("binder")
        .order_by("bound_at")
    )
    user = await User.get_or_none(id_hash=person.id_hash) or await User.get_or_none(
        person_id=person.id, realname_verified=True
    )
    as_binder = (
        []
        if user is None
        else await Binding.filter(binder_id=user.id, state="active").prefetch_related("member").order_by("bound_at")
    )
    given = (
        []
        if user is None
        else await Authorization.filter(authorizer_id=user.id, state="active")
        .prefetch_related("member")
        .order_by("created_at")
    )
    applications = (
        []
        if user is None
        else await Application.filter(binder_id=user.id).order_by("-created_at").limit(5)
    )
    authorizers = await Authorization.filter(member_id=person.id, state="active").count()
    account = "none" if user is None else "counter" if is_counter_account(user.openid) else "wechat"
    return {
        "id": person.id,
        "name": mask_name(name),
        "id_type_label": ID_TYPE_LABELS.get(person.id_type, person.id_type),
        "id_number": mask_id(id_number),
        "insurance_type": "职工医保" if person.insurance_type == "employee" else "居民医保",
        "employee": person.insurance_type == "employee",
        "region": person.region_code,
        "status": "正常参保" if person.status == "active" else "暂停参保",
        "voucher_activated": person.voucher_activated,
        "has_personal_account": person.has_personal_account,
        "uses_miniprogram": account == "wechat",
        "account": account,
        "account_label": {"none": "无(办理时将建立窗口账户)", "counter": "窗口账户(未使用微信)",
                          "wechat": "小程序用户(已实名)"}[account],
        "binders": [
            {
                "binding_id": str(b.id),
                "name": mask_name(pii.decrypt(b.binder.name_enc, purpose="name")) if b.binder.name_enc else "(未实名)",
                "relationship": RELATIONSHIP_LABELS.get(b.relationship, b.relationship),
                "since": when(b.bound_at),
            }
            for b in as_member
        ],
        "members": [
            {
                "binding_id": str(b.id),
                "name": mask_name(pii.decrypt(b.member.name_enc, purpose="name")),
                "relationship": RELATIONSHIP_LABELS.get(b.relationship, b.relationship),
                "since": when(b.bound_at),
                "voucher_activated": b.member.voucher_activated,
            }
            for b in as_binder
        ],
        "authorizations": [
            {
                "id": str(a.id),
                "name": mask_name(pii.decrypt(a.member.name_enc, purpose="name")),
                "relationship": RELATIONSHIP_LABELS.get(a.relationship, a.relationship),
                "since": when(a.created_at),
            }
            for a in given
        ],
        "applications": [
            {
                "id": str(a.id),
                "member": mask_name(pii.decrypt(a.member_name_enc, purpose="name")),
                "relationship": RELATIONSHIP_LABELS.get(a.relationship, a.relationship),
                "state": STATE_LABELS.get(a.state, a.state),
                "failure": a.failure_message or "",
                "at": when(a.created_at),
            }
            for a in applications
        ],
        "mutual_aid": {"authorizers": authorizers, "authorized": len(given)},
    }
