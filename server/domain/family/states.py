"""Application states and the only moves between them (SPEC.md 亲情账户 binding, issues #3, #11).

::

    draft ─upload─▶ materials ─sign─▶ commitment_signed ─submit─▶ submitted
      │  └──────────────sign──────────────▲                       │
      └──────────────────submit (any of the three)───────────────▶│
    submitted ─▶ active | pending_review | needs_action | failed
    needs_action ─fix, submit again─▶ submitted        (SPEC.md "failures are recoverable")
    pending_review ─reviewer─▶ active | failed (MATERIALS_REJECTED) | correction_requested
    correction_requested ─upload, submit again─▶ submitted
    draft … needs_action, correction_requested ─cancel─▶ cancelled
    active ─unbind─▶ unbound

Every change of state is an ``ApplicationEvent`` (from, to, actor, code, time); an
illegal one is a 409 ``APPLICATION_STATE_CONFLICT`` and changes nothing. A refused submit
whose reason the binder can fix inside the same application (``FIXABLE``) waits in
``needs_action`` with its code, message and fix, materials and signature kept; any other
reason ends it in ``failed`` (final). A new state is one entry in ``TRANSITIONS`` and one
in ``STATE_LABELS`` (``state`` is a 24-character text column: no migration).
"""

from __future__ import annotations

from server.domain.errors import DomainError
from server.domain.models import Application, ApplicationEvent

# Before submit (and while waiting for the binder's fix): materials and the signature may
# still change, and the application may be submitted or cancelled.
EDITABLE: frozenset[str] = frozenset(
    {"draft", "materials", "commitment_signed", "needs_action", "correction_requested"}
)
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"materials", "commitment_signed", "submitted", "cancelled"}),
    "materials": frozenset({"commitment_signed", "submitted", "cancelled"}),
    "commitment_signed": frozenset({"submitted", "cancelled"}),
    "submitted": frozenset({"active", "pending_review", "needs_action", "failed"}),
    "needs_action": frozenset({"submitted", "cancelled"}),
    "pending_review": frozenset({"active", "failed", "correction_requested"}),
    "correction_requested": frozenset({"submitted", "cancelled"}),
    "active": frozenset({"unbound"}),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "unbound": frozenset(),
}
# Refusals the binder can cure inside the same application: a face check done again, a
# material added, the current 承诺书 signed, their own real-name verification finished.
FIXABLE: frozenset[str] = frozenset(
    {
        "FACE_CHECK_FAILED",
        "MATERIALS_MISSING",
        "MINOR_DOCUMENTS_MISSING",
        "COMMITMENT_REQUIRED",
        "COMMITMENT_OUTDATED",
        "BINDER_NOT_VERIFIED",
    }
)
STATES: tuple[str, ...] = tuple(TRANSITIONS)

STATE_LABELS: dict[str, str] = {
    "draft": "草稿",
    "materials": "已上传材料",
    "commitment_signed": "已签署承诺书",
    "submitted": "已提交",
    "active": "已绑定",
    "pending_review": "审核中",
    "failed": "绑定失败",
    "needs_action": "待补正",
    "correction_requested": "审核要求补正",
    "cancelled": "已撤销",
    "unbound": "已解绑",
}


def state_conflict(app: Application, action: str) -> DomainError:
    """409: ``action`` is not possible in the application's current state."""
    return DomainError(
        "APPLICATION_STATE_CONFLICT",
        f"申请当前状态为「{STATE_LABELS.get(app.state, app.state)}」,不能{action}。",
        detail={"state": app.state},
    )


def step(
    app: Application, to: str, *, actor: str, code: str | None = None, note: str | None = None
) -> ApplicationEvent:
    """Move ``app`` to ``to`` in memory and return the (unsaved) event recording it; 409 if
    the state machine forbids the move. The caller saves both in one transaction."""
    if to not in TRANSITIONS[app.state]:
        raise state_conflict(app, f"变为「{STATE_LABELS.get(to, to)}」")
    event = ApplicationEvent(
        application_id=app.id, from_state=app.state, to_state=to, actor=actor, code=code, note=note
    )
    app.state = to
    return event


async def transition(
    app: Application, to: str, *, actor: str, code: str | None = None, note: str | None = None
) -> None:
    """``step`` and save the event; the caller saves ``app`` (same transaction)."""
    await step(app, to, actor=actor, code=code, note=note).save()


__all__ = ["EDITABLE", "FIXABLE", "STATES", "STATE_LABELS", "TRANSITIONS", "state_conflict", "step", "transition"]
