"""``GET /api/v1/me/export``: everything held about the caller, as JSON (PIPL art. 45).

The document is produced in pieces (:func:`export`, an async iterator of JSON text) and
each list is read from the database a page at a time, so an account with years of
settlements and notices is never built in memory; the handler writes the pieces to a
``StreamResponse``. Personal data is masked as the API masks it elsewhere (the name, ID
and phone of the caller and of others); files are listed with their metadata and a
short-lived signed download link (:mod:`server.privacy.links`).

Sections (each always present; lists may be empty): ``profile``, ``consents``,
``notice_acceptances``, ``applications`` (with ``events``, ``materials``,
``commitments``), ``applications_about_me``, ``members`` (bindings I hold), ``binders``
(bindings of me), ``authorizations`` (given), ``authorizations_received``, ``account``
(balance and ledger ``entries``), ``settlements`` (mine), ``family_settlements`` (of the
members I bind, from each binding's start, unless the member withdrew
``medical_records``), ``notices``, ``subscriptions``, ``mutual_aid_refusals``,
``official_account``, ``deletion``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from server.domain.clock import cn_iso, cn_iso_or_none
from server.domain.errors import DomainError
from server.domain.models import (
    Account,
    AccountDeletion,
    Application,
    ApplicationEvent,
    Authorization,
    Binding,
    CommitmentSignature,
    Consent,
    InsuredPerson,
    LedgerEntry,
    Material,
    MutualAidRefusal,
    Notice,
    OfficialFollower,
    PrivacyNoticeAcceptance,
    Settlement,
    SubscriptionGrant,
    User,
)
from server.domain.pii import PiiCipher, mask_id, mask_name, mask_phone
from server.privacy import records
from server.privacy.links import LinkSigner

__all__ = ["FORMAT", "PAGE", "export"]

FORMAT = "qinqing-export/1"
PAGE = 200  # rows read per database round


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class _Ctx:
    user: User
    pii: PiiCipher
    links: LinkSigner

    def name(self, enc: str | None) -> str | None:
        return mask_name(self.pii.decrypt(enc, purpose="name")) if enc else None

    def id_number(self, enc: str | None) -> str | None:
        return mask_id(self.pii.decrypt(enc, purpose="id_number")) if enc else None

    def link(self, kind: str, object_id: str) -> dict[str, str]:
        link = self.links.sign(kind, object_id, self.user.id)
        return {
            "download_url": link.url,
            "download_expires_at": cn_iso(datetime.fromtimestamp(link.expires_at, UTC)),
        }


async def _pages(query: Callable[[], QuerySet[Any]], order: tuple[str, ...]) -> AsyncIterator[Any]:
    """Rows of ``query()`` in ``order``, read ``PAGE`` at a time."""
    offset = 0
    while True:
        rows = await query().order_by(*order).offset(offset).limit(PAGE)
        for row in rows:
            yield row
        if len(rows) < PAGE:
            return
        offset += PAGE


async def _array(items: AsyncIterator[Any], view: Callable[[Any], Awaitable[Any]]) -> AsyncIterator[str]:
    yield "["
    first = True
    async for item in items:
        yield ("" if first else ",") + _dumps(await view(item))
        first = False
    yield "]"


async def export(user_id: int, *, pii: PiiCipher, links: LinkSigner, now: datetime) -> AsyncIterator[str]:
    """The JSON document of everything held about ``user_id``, in pieces."""
    user = await User.get_or_none(id=user_id)
    if user is None:
        raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
    ctx = _Ctx(user, pii, links)
    person = await InsuredPerson.get_or_none(id=user.person_id) if user.person_id else None
    yield "{" + f'"format":{_dumps(FORMAT)},"exported_at":{_dumps(cn_iso(now))}'
    yield ',"profile":' + _dumps(_profile(ctx, person))
    for name, section in _sections(ctx, person):
        yield f',"{name}":'
        async for piece in section:
            yield piece
    yield "}"


def _profile(ctx: _Ctx, person: InsuredPerson | None) -> dict[str, Any]:
    u = ctx.user
    out: dict[str, Any] = {
        "id": u.id,
        "created_at": cn_iso(u.created_at),
        "wechat": {"openid": u.openid, "unionid": u.unionid},
        "realname_verified": u.realname_verified,
        "realname_verified_at": cn_iso_or_none(u.realname_verified_at),
        "name": ctx.name(u.name_enc),
        "id_type": u.id_type,
        "id_number": ctx.id_number(u.id_number_enc),
        "phone": mask_phone(ctx.pii.decrypt(u.phone_enc, purpose="phone")) if u.phone_enc else None,
        "insurance": None,
    }
    if person is not None:
        out["insurance"] = {
            "psn_no": person.psn_no,
            "insurance_type": person.insurance_type,
            "region_code": person.region_code,
            "status": person.status,
            "has_personal_account": person.has_personal_account,
            "voucher_activated": person.voucher_activated,
        }
    return out


def _sections(ctx: _Ctx, person: InsuredPerson | None) -> list[tuple[str, AsyncIterator[str]]]:
    uid = ctx.user.id
    pid = person.id if person is not None else None
    about_me = _about_me_filter(ctx.user, pid)

    async def consent(c: Consent) -> dict[str, Any]:
        return {
            "purpose": c.purpose,
            "notice_version": c.notice_version,
            "notice_sha256": c.notice_sha256,
            "purpose_sha256": c.purpose_sha256,
            "accepted_at": cn_iso(c.accepted_at),
            "withdrawn_at": cn_iso_or_none(c.withdrawn_at),
            "ip": c.ip,
            "user_agent": c.user_agent,
        }

    async def acceptance(a: PrivacyNoticeAcceptance) -> dict[str, Any]:
        return {
            "notice_version": a.notice_version,
            "notice_sha256": a.notice_sha256,
            "accepted_at": cn_iso(a.accepted_at),
            "ip": a.ip,
            "user_agent": a.user_agent,
        }

    async def application(a: Application) -> dict[str, Any]:
        events = await ApplicationEvent.filter(application_id=a.id).order_by("at", "id")
        materials = await Material.filter(application_id=a.id).order_by("created_at", "id")
        signatures = await CommitmentSignature.filter(application_id=a.id).order_by("signed_at", "id")
        return {
            **_application_brief(ctx, a),
            "phone": mask_phone(ctx.pii.decrypt(a.phone_enc, purpose="phone")) if a.phone_enc else None,
            "reason": a.reason,
            "failure": {"code": a.failure_code, "message": a.failure_message} if a.failure_code else None,
            "events": [
                {
                    "from_state": e.from_state,
                    "to_state": e.to_state,
                    "actor": e.actor,
                    "code": e.code,
                    "note": e.note,
                    "at": cn_iso(e.at),
                }
                for e in events
            ],
            "materials": [
                {
                    "id": str(m.id),
                    "kind": m.kind,
                    "content_type": m.content_type,
                    "size": m.size,
                    "sha256": m.sha256,
                    "created_at": cn_iso(m.created_at),
                    **ctx.link("material", str(m.id)),
                }
                for m in materials
            ],
            "commitments": [_signature(ctx, s) for s in signatures],
        }

    async def about_me_view(a: Application) -> dict[str, Any]:
        binder = await User.get_or_none(id=a.binder_id).only("id", "name_enc")
        return {**_application_brief(ctx, a), "binder": {"name": ctx.name(binder.name_enc) if binder else None}}

    async def member(b: Binding) -> dict[str, Any]:
        p = await InsuredPerson.get(id=b.member_id)
        return {**_binding(b), "member": {"name": ctx.name(p.name_enc), "id_number": ctx.id_number(p.id_number_enc)}}

    async def binder(b: Binding) -> dict[str, Any]:
        u = await User.get_or_none(id=b.binder_id).only("id", "name_enc")
        return {**_binding(b), "binder": {"name": ctx.name(u.name_enc) if u else None}}

    async def given(a: Authorization) -> dict[str, Any]:
        p = await InsuredPerson.get(id=a.member_id)
        return {**_authorization(a), "member": {"name": ctx.name(p.name_enc), "id_number": ctx.id_number(p.id_number_enc)}}

    async def received(a: Authorization) -> dict[str, Any]:
        p = await InsuredPerson.get(id=a.authorizer_person_id)
        return {**_authorization(a), "authorizer": {"name": ctx.name(p.name_enc)}}

    async def notice(n: Notice) -> dict[str, Any]:
        return {
            "id": str(n.id),
            "kind": n.kind,
            "title": n.title,
            "state": n.state,
            "data": n.data,
            "channel": n.channel,
            "reason": n.reason,
            "created_at": cn_iso(n.created_at),
            "sent_at": cn_iso_or_none(n.sent_at),
        }

    async def grant(g: SubscriptionGrant) -> dict[str, Any]:
        return {"template_id": g.template_id, "remaining": g.remaining, "updated_at": cn_iso(g.updated_at)}

    async def refusal(r: MutualAidRefusal) -> dict[str, Any]:
        return {"action": r.action, "code": r.code, "message": r.message, "at": cn_iso(r.at)}

    async def follower(f: OfficialFollower) -> dict[str, Any]:
        return {"subscribed": f.subscribed, "updated_at": cn_iso(f.updated_at)}

    def rows(model: Any, order: tuple[str, ...], *q: Q, **where: Any) -> AsyncIterator[Any]:
        return _pages(lambda: model.filter(*q, **where), order)

    mine = ("created_at", "id")
    as_member = Q(member_id=pid) if pid is not None else Q(id__isnull=True)  # none without a person
    sections: list[tuple[str, AsyncIterator[str]]] = [
        ("consents", _array(rows(Consent, ("id",), user_id=uid), consent)),
        ("notice_acceptances", _array(rows(PrivacyNoticeAcceptance, ("id",), user_id=uid), acceptance)),
        ("applications", _array(rows(Application, mine, binder_id=uid), application)),
        (
            "applications_about_me",
            _array(_pages(lambda: Application.filter(about_me).exclude(binder_id=uid), mine), about_me_view),
        ),
        ("members", _array(rows(Binding, ("bound_at", "id"), binder_id=uid), member)),
        ("binders", _array(rows(Binding, ("bound_at", "id"), as_member), binder)),
        ("authorizations", _array(rows(Authorization, mine, authorizer_id=uid), given)),
        ("authorizations_received", _array(rows(Authorization, mine, as_member), received)),
        ("account", _account(ctx, pid)),
        (
            "settlements",
            _array(
                _pages(lambda: Settlement.filter(as_member).select_related("institution"), ("setl_time", "id")),
                _settlement,
            ),
        ),
        ("family_settlements", _family_settlements(uid)),
        ("notices", _array(rows(Notice, mine, recipient_id=uid), notice)),
        ("subscriptions", _array(rows(SubscriptionGrant, ("id",), user_id=uid), grant)),
        ("mutual_aid_refusals", _array(rows(MutualAidRefusal, ("id",), user_id=uid), refusal)),
        (
            "official_account",
            _array(
                rows(OfficialFollower, ("oa_openid",), unionid=ctx.user.unionid)
                if ctx.user.unionid
                else rows(OfficialFollower, ("oa_openid",), Q(oa_openid__isnull=True)),
                follower,
            ),
        ),
        ("deletion", _deletion(uid)),
    ]
    return sections


def _about_me_filter(user: User, person_id: int | None) -> Q:
    """Applications whose member is this user (by registry person or blind index)."""
    q = Q(id__isnull=True)  # nothing
    if person_id is not None:
        q |= Q(member_id=person_id)
    if user.id_hash:
        q |= Q(id_hash=user.id_hash)
    return q


def _application_brief(ctx: _Ctx, a: Application) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "state": a.state,
        "relationship": a.relationship,
        "member": {
            "name": ctx.name(a.member_name_enc) if a.member_name_enc else None,
            "id_type": a.id_type,
            "id_number": ctx.id_number(a.id_number_enc) if a.id_number_enc else None,
        },
        "created_at": cn_iso(a.created_at),
        "submitted_at": cn_iso_or_none(a.submitted_at),
        "decided_at": cn_iso_or_none(a.decided_at),
    }


def _signature(ctx: _Ctx, s: CommitmentSignature) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": s.version,
        "text_sha256": s.text_sha256,
        "signed_at": cn_iso(s.signed_at),
        "ip": s.ip,
        "user_agent": s.user_agent,
        "signature_image": None,
    }
    if s.signature_image_key:
        out["signature_image"] = ctx.link("signature", str(s.id))
    return out


def _binding(b: Binding) -> dict[str, Any]:
    return {
        "id": str(b.id),
        "relationship": b.relationship,
        "state": b.state,
        "bound_at": cn_iso(b.bound_at),
        "unbound_at": cn_iso_or_none(b.unbound_at),
    }


def _authorization(a: Authorization) -> dict[str, Any]:
    return {
        "id": str(a.id),
        "relationship": a.relationship,
        "state": a.state,
        "cross_province": a.cross_province,
        "quota_fen": a.quota_fen,
        "quota_remaining_fen": a.quota_remaining_fen,
        "notice_version": a.notice_version,
        "notice_sha256": a.notice_sha256,
        "created_at": cn_iso(a.created_at),
        "revoked_at": cn_iso_or_none(a.revoked_at),
    }


async def _settlement(s: Settlement) -> dict[str, Any]:
    """A settlement as the API lists it (fetched with its institution)."""
    return {
        "setl_id": s.setl_id,
        "institution": s.institution.name,
        "med_type": s.med_type,
        "setl_time": cn_iso(s.setl_time),
        "medfee_sumamt": s.medfee_sumamt_fen,
        "hifp_pay": s.hifp_pay_fen,
        "fund_pay_sumamt": s.fund_pay_sumamt_fen,
        "psn_part_amt": s.psn_part_amt_fen,
        "acct_pay": s.acct_pay_fen,
        "acct_mulaid_pay": s.acct_mulaid_pay_fen,
        "psn_cash_pay": s.psn_cash_pay_fen,
        "state": s.state,
        "reversed_at": cn_iso_or_none(s.reversed_at),
    }


async def _account(ctx: _Ctx, person_id: int | None) -> AsyncIterator[str]:
    """``{balance_fen, entries: [...]}`` of the caller's own personal account, or null."""
    account = await Account.get_or_none(person_id=person_id) if person_id is not None else None
    if account is None:
        yield "null"
        return

    async def entry(e: LedgerEntry) -> dict[str, Any]:
        return {
            "amount_fen": e.amount_fen,
            "balance_after_fen": e.balance_after_fen,
            "kind": e.kind,
            "setl_id": e.settlement.setl_id if e.settlement is not None else None,
            "quota_of_authorization": str(e.authorization_id) if e.authorization_id else None,
            "created_at": cn_iso(e.created_at),
        }

    yield "{" + f'"balance_fen":{account.balance_fen},"entries":'
    entries = _pages(
        lambda: LedgerEntry.filter(account_id=account.id).select_related("settlement"), ("id",)
    )
    async for piece in _array(entries, entry):
        yield piece
    yield "}"


async def _family_settlements(user_id: int) -> AsyncIterator[str]:
    """The settlements of each member I bind (active bindings), from the binding's start —
    what the binder may see in the mini-program — unless the member withdrew
    ``medical_records``: then the entry says so instead."""
    yield "["
    first = True
    async for b in _pages(lambda: Binding.filter(binder_id=user_id, state="active"), ("bound_at", "id")):
        users = cast(list[int], await User.filter(person_id=b.member_id).values_list("id", flat=True))
        withdrawn = bool(await records.withdrawn_users(users, "medical_records"))
        yield ("" if first else ",") + "{" + f'"binding_id":{_dumps(str(b.id))},"withdrawn":{_dumps(withdrawn)},"items":'
        first = False
        if withdrawn:
            yield "[]}"
            continue
        items = _pages(
            lambda b=b: Settlement.filter(  # type: ignore[misc]  # a default-bound lambda: mypy infers no type
                member_id=b.member_id, setl_time__gte=b.bound_at
            ).select_related("institution"),
            ("setl_time", "id"),
        )
        async for piece in _array(items, _settlement):
            yield piece
        yield "}"
    yield "]"


async def _deletion(user_id: int) -> AsyncIterator[str]:
    d = await AccountDeletion.get_or_none(user_id=user_id)
    yield "null" if d is None else _dumps({"state": d.state, "started_at": cn_iso(d.started_at)})


async def download(
    kind: str, object_id: str, user_id: int, *, storage: Any
) -> tuple[str, AsyncIterator[bytes]]:
    """A file a signed link names, if it is still the user's (metadata stripped by the
    storage, as every material served): a material of an application they made, or the
    image of a 承诺书 they signed. 404 ``MATERIAL_NOT_FOUND`` otherwise (purged, deleted,
    someone else's)."""
    from server.domain.clock import parse_uuid
    from server.domain.family.materials import open_document

    gone = DomainError("MATERIAL_NOT_FOUND", "材料不存在或已删除")
    if await AccountDeletion.exists(user_id=user_id):
        raise gone
    key: str | None = None
    if kind == "material":
        mid = parse_uuid(object_id)
        m = await Material.get_or_none(id=mid, application__binder_id=user_id) if mid else None
        key = m.storage_key if m is not None else None
    elif kind == "signature" and object_id.isascii() and object_id.isdigit() and len(object_id) < 19:
        # ASCII digits only ("²".isdigit() is True, int() of it raised: a 500), within int64
        s = await CommitmentSignature.get_or_none(id=int(object_id), user_id=user_id)
        key = s.signature_image_key if s is not None else None
    if key is None:
        raise gone
    return await open_document(storage, key)
