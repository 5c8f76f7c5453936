"""Reviewer use cases: the queue of applications a person must look at, and decisions.

Rules: an application reaches ``pending_review`` only where the policy asks for a person
(关系公证书, non-mainland documents — SPEC.md verification row, API.md submit). Decisions
go through ``BindingService.decide_review`` (approve: the binding becomes effective;
reject: ``MATERIALS_REJECTED``, "材料不清晰或不符", seed 000), recorded as an application
event with the reviewer's name. Reviewers see full names and ID numbers: they compare
them with the documents.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from tortoise.functions import Count

from server.domain.errors import DomainError
from server.domain.models import Application, ApplicationEvent, Material, Notice
from server.domain.pii import PiiCipher

REVIEW_STATE = "pending_review"


def _parse_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise DomainError("NOT_FOUND", "申请不存在", 404) from None


async def _get(application_id: str) -> Application:
    app = await Application.get_or_none(id=_parse_id(application_id))
    if app is None:
        raise DomainError("NOT_FOUND", "申请不存在", 404)
    return app


def _summary(app: Application, pii: PiiCipher) -> dict[str, Any]:
    return {
        "id": str(app.id),
        "state": app.state,
        "relationship": app.relationship,
        "id_type": app.id_type,
        "member_name": pii.decrypt(app.member_name_enc, purpose="name"),
        "submitted_at": app.submitted_at.isoformat() if app.submitted_at else None,
        "created_at": app.created_at.isoformat(),
    }


async def list_applications(
    *, pii: PiiCipher, state: str = REVIEW_STATE, limit: int = 50, offset: int = 0
) -> dict[str, Any]:
    """Oldest first: the queue is worked in the order people submitted."""
    query = Application.filter(state=state)
    total = await query.count()
    rows = await query.order_by("submitted_at", "created_at").offset(offset).limit(limit)
    return {"items": [_summary(a, pii) for a in rows], "total": total}


async def application_detail(application_id: str, *, pii: PiiCipher) -> dict[str, Any]:
    app = await _get(application_id)
    materials = await Material.filter(application_id=app.id).order_by("created_at")
    events = await ApplicationEvent.filter(application_id=app.id).order_by("at", "id")
    out = _summary(app, pii)
    out.update(
        {
            "id_number": pii.decrypt(app.id_number_enc, purpose="id_number"),
            "reason": app.reason,
            "failure": {"code": app.failure_code, "message": app.failure_message} if app.failure_code else None,
            "materials": [
                {"id": str(m.id), "kind": m.kind, "content_type": m.content_type, "size": m.size, "sha256": m.sha256}
                for m in materials
            ],
            "events": [
                {"from": e.from_state, "to": e.to_state, "actor": e.actor, "code": e.code, "note": e.note, "at": e.at.isoformat()}
                for e in events
            ],
        }
    )
    return out


async def material_for_review(application_id: str, material_id: str) -> Material:
    app = await _get(application_id)
    material = await Material.get_or_none(id=_parse_id(material_id), application_id=app.id)
    if material is None:
        raise DomainError("NOT_FOUND", "材料不存在", 404)
    return material


async def notice_queue() -> dict[str, Any]:
    """The push queue at a glance: counts by state, oldest pending, latest failures."""
    counts = await Notice.annotate(n=Count("id")).group_by("state").values("state", "n")
    oldest = await Notice.filter(state="pending").order_by("created_at").first()
    failed = await Notice.filter(state__in=["failed", "undeliverable"]).order_by("-updated_at").limit(20)
    age = None
    if oldest is not None:
        age = max(0.0, (datetime.now(timezone.utc) - oldest.created_at) / timedelta(seconds=1))
    return {
        "counts": {row["state"]: row["n"] for row in counts},
        "oldest_pending_seconds": age,
        "recent_failures": [
            {"id": str(n.id), "kind": n.kind, "state": n.state, "errcode": n.errcode, "reason": n.reason,
             "attempts": n.attempts, "updated_at": n.updated_at.isoformat()}
            for n in failed
        ],
    }
