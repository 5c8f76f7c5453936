"""Read side of what went wrong for a user: their latest 亲情账户 application that needs
explaining, and their latest refused 家庭共济 request.

The bot's personal diagnosis (SPEC.md "The bot": "the answer names that attempt and its
actual reason") asks these two questions; it never queries the models itself. Batched: one
call answers for many users (the bot coalesces concurrent followers), a fixed number of
queries whatever their count.

The application states named here are the ones a binder has to hear about (SPEC.md
"failures are recoverable", API.md v1.1): this module is where the bot (and anything
else outside the family code) takes their names from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.domain.models import (
    Application,
    ApplicationEvent,
    Authorization,
    MutualAidRefusal,
)

__all__ = [
    "ATTEMPT_STATES",
    "BindingAttempt",
    "CORRECTION_REQUESTED",
    "FAILED",
    "NEEDS_ACTION",
    "PENDING_REVIEW",
    "Refusal",
    "latest_binding_attempts",
    "latest_mutual_aid_refusals",
]

# Application states (server/domain/binding.py's state machine; API.md v1.1)
FAILED = "failed"  # final: no fix inside the application cures it
NEEDS_ACTION = "needs_action"  # a fixable refusal: fix it and submit the same application
PENDING_REVIEW = "pending_review"  # a reviewer decides
CORRECTION_REQUESTED = "correction_requested"  # the reviewer asked for a correction
ATTEMPT_STATES: tuple[str, ...] = (FAILED, NEEDS_ACTION, PENDING_REVIEW, CORRECTION_REQUESTED)
# the states whose code and message say why (a pending review has none)
_WITH_REASON = frozenset({FAILED, NEEDS_ACTION, CORRECTION_REQUESTED})
# plain rows (values(), not models: no model objects built, and typed without ignores)
_APPLICATION_FIELDS = (
    "id", "binder_id", "state", "member_name_enc", "submitted_at", "created_at",
    "failure_code", "failure_message",
)


@dataclass(frozen=True)
class BindingAttempt:
    """A binder's latest application in one of ``ATTEMPT_STATES``."""

    binder_id: int
    state: str
    member_name_enc: str  # encrypted (purpose "name"): the caller decrypts and masks it
    at: datetime  # when it was submitted (or created), UTC
    failure_code: str | None
    failure_message: str | None


@dataclass(frozen=True)
class Refusal:
    """A user's latest refused 家庭共济 request."""

    user_id: int
    action: str  # authorize | revoke
    code: str
    message: str
    at: datetime


async def latest_binding_attempts(
    user_ids: Iterable[int], *, since: datetime
) -> dict[int, BindingAttempt]:
    """For each user: the newest application (by last change, at or after ``since``) in
    one of ``ATTEMPT_STATES``; users without one are absent. An application without a
    failure code on its row gets the code (and note) of the event that moved it into its
    state."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    latest: dict[int, dict[str, Any]] = {}
    for row in await Application.filter(
        binder_id__in=ids, state__in=ATTEMPT_STATES, updated_at__gte=since
    ).order_by("-updated_at", "-id").values(*_APPLICATION_FIELDS):
        latest.setdefault(row["binder_id"], row)
    # one query for the reasons missing on the rows
    missing = [r["id"] for r in latest.values() if r["state"] in _WITH_REASON and not r["failure_code"]]
    reasons: dict[tuple[Any, str], tuple[str | None, str | None]] = {}
    if missing:
        for app_id, to_state, code, note in await ApplicationEvent.filter(
            application_id__in=missing, to_state__in=tuple(_WITH_REASON)
        ).exclude(code=None).order_by("id").values_list("application_id", "to_state", "code", "note"):
            reasons[(app_id, to_state)] = (code, note)  # ascending: the newest event wins
    out: dict[int, BindingAttempt] = {}
    for binder_id, row in latest.items():
        code, message = row["failure_code"], row["failure_message"]
        if not code:
            code, note = reasons.get((row["id"], row["state"]), (None, None))
            message = message or note
        out[binder_id] = BindingAttempt(
            binder_id=binder_id,
            state=row["state"],
            member_name_enc=row["member_name_enc"],
            at=row["submitted_at"] or row["created_at"],
            failure_code=code,
            failure_message=message,
        )
    return out


async def latest_mutual_aid_refusals(
    user_ids: Iterable[int], *, since: datetime
) -> dict[int, Refusal]:
    """For each user: the newest refused 家庭共济 request at or after ``since`` — unless the
    user authorized or revoked something after it (then it is settled, not news)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    latest: dict[int, dict[str, Any]] = {}
    for row in await MutualAidRefusal.filter(user_id__in=ids, at__gte=since).order_by(
        "-at", "-id"
    ).values("user_id", "action", "code", "message", "at"):
        latest.setdefault(row["user_id"], row)
    if not latest:
        return {}
    settled: dict[int, datetime] = {}
    for user_id, created, revoked in await Authorization.filter(
        authorizer_id__in=sorted(latest)
    ).values_list("authorizer_id", "created_at", "revoked_at"):
        last = max(t for t in (created, revoked) if t is not None)
        if user_id not in settled or last > settled[user_id]:
            settled[user_id] = last
    out: dict[int, Refusal] = {}
    for user_id, row in latest.items():
        done = settled.get(user_id)
        if done is not None and done > row["at"]:
            continue
        out[user_id] = Refusal(
            user_id=user_id, action=row["action"], code=row["code"], message=row["message"],
            at=row["at"],
        )
    return out
