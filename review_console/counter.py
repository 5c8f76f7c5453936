"""窗口代办 pages: look a person up, then bind / unbind a 亲情账户 member, 代激活 a
医保电子凭证, give or end a 家庭共济 authorization on their behalf
(``server.domain.counter_desk``). Each action answers the counter page again with the
person, and either what was done (with its audit entry) or the refusal: code, Chinese
message and what to do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from aiohttp import web
from multidict import MultiDictProxy

from review_console.session import form, principal, render, requires
from server import keys
from server.domain import counter, mutual_aid
from server.domain.counter_desk import BindRequest, CounterDesk, Outcome
from server.domain.errors import DomainError
from server.domain.family.commitment import MAX_SIGNATURE_BYTES
from server.domain.identity import ID_TYPE_LABELS
from server.domain.policy import MATERIAL_LABELS, RELATIONSHIP_LABELS
from server.domain.staff import COUNTER_ROLES
from server.http_errors import status_of

UPLOAD_ROWS = 3  # file inputs on the binding form
CHUNK = 64 * 1024


def _desk(request: web.Request) -> CounterDesk:
    return request.config_dict[keys.counter_desk_key]


def _context(request: web.Request, **extra: Any) -> dict[str, Any]:
    family = request.config_dict[keys.family_key]
    try:
        commitment: dict[str, Any] | None = family.current_commitment()
    except DomainError:
        commitment = None
    out: dict[str, Any] = {
        "id_types": ID_TYPE_LABELS,
        "relationships": RELATIONSHIP_LABELS,
        "materials": MATERIAL_LABELS,
        "upload_rows": range(1, UPLOAD_ROWS + 1),
        "commitment": commitment,
        "aid_notice": mutual_aid.current_notice(),
        "person": None,
        "error": None,
        "outcome": None,
        "filled": {},
    }
    out.update(extra)
    return out


def _error_view(err: DomainError) -> dict[str, Any]:
    detail = err.detail or {}
    return {"code": err.code, "message": err.message, "fix": detail.get("fix", ""),
            "cancelled": detail.get("state") == "cancelled"}


@requires(COUNTER_ROLES)
async def counter_page(request: web.Request) -> web.Response:
    return render(request, "counter.html", _context(request))


@requires(COUNTER_ROLES)
async def counter_lookup(request: web.Request) -> web.Response:
    data = await form(request)
    settings = request.config_dict[keys.settings_key]
    try:
        person = await counter.lookup(
            principal(request),
            id_type=data.get("id_type", "resident_id"),
            id_number=data.get("id_number", "")[:32],
            name=data.get("name", "")[:50],
            registry=request.config_dict[keys.registry_key],
            pii=request.config_dict[keys.pii_key],
            redis=request.config_dict[keys.redis_key],
            per_hour=settings.console.counter_lookups_per_hour,
        )
    except DomainError as err:
        if status_of(err) not in (404, 422):
            raise
        return render(request, "counter.html", _context(request, error=_error_view(err)), status=status_of(err))
    return render(request, "counter.html", _context(request, person=person))


async def _answer(
    request: web.Request, person_id: str, outcome: Outcome | None, err: DomainError | None,
    filled: dict[str, str] | None = None,
) -> web.Response:
    """The counter page again: the person as they are now, and the outcome or the error."""
    desk = _desk(request)
    person = await desk.person(principal(request), person_id)  # 404 outside the regions
    view = await counter.person_view(person, pii=desk.pii)
    ctx = _context(
        request, person=view, outcome=outcome, error=_error_view(err) if err else None,
        filled=filled or {},
    )
    return render(request, "counter.html", ctx, status=status_of(err) if err else 200)


def _chunks(file: Any) -> AsyncIterator[bytes]:
    """An uploaded part's bytes (aiohttp keeps a posted file in a temporary file)."""

    async def gen() -> AsyncIterator[bytes]:
        file.seek(0)
        while chunk := file.read(CHUNK):
            yield chunk

    return gen()


def _files(data: MultiDictProxy[Any]) -> list[tuple[str, Any]]:
    out = []
    for i in range(1, UPLOAD_ROWS + 1):
        f = data.get(f"file_{i}")
        if isinstance(f, web.FileField) and f.filename:
            out.append((str(data.get(f"kind_{i}", "")), f.file))
    return out


@requires(COUNTER_ROLES)
async def counter_bind(request: web.Request) -> web.Response:
    data = await request.post()
    text = {k: v for k, v in data.items() if isinstance(v, str)}
    person_id = request.match_info["person_id"]
    signature = data.get("signature")
    image = None
    if isinstance(signature, web.FileField) and signature.filename:
        signature.file.seek(0)
        image = signature.file.read(MAX_SIGNATURE_BYTES + 1)
    filled = {k: text.get(k, "")[:50] for k in ("name", "id_type", "id_number", "relationship")}
    req = BindRequest(
        name=text.get("name", "").strip()[:50],
        id_type=text.get("id_type", "resident_id"),
        id_number=text.get("id_number", "")[:32],
        relationship=text.get("relationship", ""),
        verification=text.get("verification", ""),  # type: ignore[arg-type]  # checked by the desk
        commitment_version=text.get("commitment_version", ""),
        commitment_sha256=text.get("commitment_sha256", ""),
        consent_on_paper=text.get("consent_on_paper") == "yes",
        uploads=[(kind, _chunks(f)) for kind, f in _files(data)],
        seen=[str(k) for k in data.getall("seen", []) if isinstance(k, str)],
        signature_image=image,
        signed_on_paper=text.get("signed_on_paper") == "yes",
    )
    try:
        outcome = await _desk(request).bind(principal(request), person_id, req)
    except DomainError as err:
        if err.code == "PERSON_NOT_FOUND":
            raise
        return await _answer(request, person_id, None, err, filled)
    return await _answer(request, person_id, outcome, None)


@requires(COUNTER_ROLES)
async def counter_action(request: web.Request) -> web.Response:
    """Unbind, 代激活, revoke a 共济 authorization: one small form each."""
    data = await form(request)
    person_id, action = request.match_info["person_id"], request.match_info["action"]
    desk, who = _desk(request), principal(request)
    try:
        if action == "unbind":
            side: Literal["binder", "member"] = "member" if data.get("side") == "member" else "binder"
            outcome = await desk.unbind(who, person_id, data.get("binding_id", ""), side)
        elif action == "activate":
            outcome = await desk.activate(who, person_id, data.get("binding_id") or None)
        elif action == "revoke":
            outcome = await desk.revoke(who, person_id, data.get("authorization_id", ""))
        elif action == "authorize":
            outcome = await desk.authorize(
                who, person_id, name=data.get("name", "").strip()[:50],
                id_type=data.get("id_type", "resident_id"), id_number=data.get("id_number", "")[:32],
                relationship=data.get("relationship", ""), quota_fen=_quota(data.get("quota_yuan", "")),
                notice_on_paper=data.get("notice_on_paper") == "yes",
            )
        else:
            raise web.HTTPNotFound()
    except DomainError as err:
        if err.code == "PERSON_NOT_FOUND":
            raise
        filled = {f"aid_{k}": data.get(k, "")[:50] for k in ("name", "id_type", "id_number", "relationship")}
        return await _answer(request, person_id, None, err, filled if action == "authorize" else None)
    return await _answer(request, person_id, outcome, None)


def _quota(value: str) -> int | None:
    """A 共济额度 typed in 元 (two decimals at most), as integer 分; empty: none."""
    value = value.strip()
    if not value:
        return None
    try:
        yuan, _, jiao = value.partition(".")
        if len(jiao) > 2 or not yuan.isdigit() or (jiao and not jiao.isdigit()):
            raise ValueError(value)
        return int(yuan) * 100 + int((jiao + "00")[:2])
    except ValueError:
        raise DomainError("VALIDATION_FAILED", "共济额度应为金额(元),最多两位小数",
                          fields={"quota_fen": "INVALID"}) from None
