"""Personalised diagnosis: "your binding of 张*华 on 11月20日 failed because ...".

A follower is the same person as a mini-program user when their unionids match. The
follower's unionid is learnt off the reply path (subscribe → user/info, see
``bot.followers``) and kept in ``OfficialFollower``; here we only read our own database:
OfficialFollower → User (by unionid) → what the domain says went wrong for that user
within ``diagnosis_days`` (``server.domain.attempts``: the latest application that
failed, needs action or waits for a reviewer, and the latest refused 家庭共济 request)
— SPEC.md "The bot": "the answer names that attempt and its actual reason".

The follower → user link (the first two lookups) is kept briefly in ``Links``: an openid's
unionid and a unionid's user never change once known, so a found link is reused for five
minutes; "not linked yet" is asked again after ten seconds. The applications are always
read fresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography.exceptions import InvalidTag

from bot.nlu import KnowledgeBase
from server.domain import attempts
from server.domain.attempts import (
    CORRECTION_REQUESTED,
    FAILED,
    NEEDS_ACTION,
    PENDING_REVIEW,
    Refusal,
)
from server.domain.clock import SHANGHAI
from server.domain.models import OfficialFollower, User
from server.domain.pii import PiiCipher, mask_name

__all__ = ["Attempt", "Diagnosis", "Links", "diagnose", "explain", "explain_refusal"]


@dataclass(frozen=True)
class Attempt:
    """A recent binding attempt worth talking about."""

    state: str  # one of server.domain.attempts.ATTEMPT_STATES
    member_masked: str
    at: datetime  # when it was submitted (or created), UTC
    failure_code: str | None
    failure_message: str | None


@dataclass(frozen=True)
class Diagnosis:
    """What we know about one follower: whether their unionid is learnt, their latest
    binding attempt worth explaining, and their latest refused 家庭共济 request."""

    unionid_known: bool
    attempt: Attempt | None
    refusal: Refusal | None = None


class Links:
    """Follower → mini-program user, per process: ``(unionid known, user id or None)``."""

    def __init__(self, *, ttl: float = 300.0, unlinked_ttl: float = 10.0,
                 max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.unlinked_ttl = unlinked_ttl
        self.max_entries = max_entries
        self._clock = clock
        self._links: dict[str, tuple[float, bool, int | None]] = {}

    def get(self, openid: str) -> tuple[bool, int | None] | None:
        entry = self._links.get(openid)
        if entry is None:
            return None
        expires, unionid_known, user_id = entry
        if expires <= self._clock():
            del self._links[openid]
            return None
        return unionid_known, user_id

    def put(self, openid: str, unionid_known: bool, user_id: int | None) -> None:
        if len(self._links) >= self.max_entries:
            self._links.clear()  # rare (that many followers asking within minutes): start over
        ttl = self.ttl if user_id is not None else self.unlinked_ttl
        self._links[openid] = (self._clock() + ttl, unionid_known, user_id)

    def forget(self, openid: str) -> None:
        """The follower was (re)learnt or unsubscribed in this process: look again."""
        self._links.pop(openid, None)


async def _link(openids: list[str], links: Links | None) -> dict[str, tuple[bool, int | None]]:
    """OfficialFollower → User (by unionid, the newest) for each follower."""
    out: dict[str, tuple[bool, int | None]] = {}
    missing: list[str] = []
    for openid in openids:
        cached = links.get(openid) if links is not None else None
        if cached is None:
            missing.append(openid)
        else:
            out[openid] = cached
    if not missing:
        return out
    # values_list, not .only(): Tortoise builds a model class per .only() call (~2 ms).
    unionid_of: dict[str, str] = {}
    for openid, unionid in await OfficialFollower.filter(oa_openid__in=missing).values_list(
        "oa_openid", "unionid"
    ):
        if unionid and openid not in unionid_of:
            unionid_of[openid] = unionid
    user_of: dict[str, int] = {}  # the newest user with that unionid
    if unionid_of:
        for unionid, user_id in await User.filter(
            unionid__in=sorted(set(unionid_of.values()))
        ).values_list("unionid", "id"):
            if user_id > user_of.get(unionid, -1):
                user_of[unionid] = user_id
    for openid in missing:
        unionid = unionid_of.get(openid)
        link = (unionid is not None, user_of.get(unionid) if unionid is not None else None)
        out[openid] = link
        if links is not None:
            links.put(openid, *link)
    return out


async def diagnose(
    oa_openids: Sequence[str], *, pii: PiiCipher, days: int = 30, now: datetime | None = None,
    links: Links | None = None,
) -> dict[str, Diagnosis]:
    """For each follower: OfficialFollower → User (by unionid, the newest) → that user's
    latest binding attempt and 家庭共济 refusal within ``days`` (``server.domain.attempts``).

    Batched (bot.batching.Coalescer): a fixed number of queries for any number of
    followers, not a few per follower. On SQLite every query holds the one connection's
    lock for a thread hop and two event-loop turns, so per-follower queries queued behind
    each other under load (p99 ≈ 0.2 s on bench/scenario_bot.py)."""
    openids = list(dict.fromkeys(oa_openids))
    link_of = await _link(openids, links)
    out = {openid: Diagnosis(known, None) for openid, (known, _) in link_of.items()}
    user_ids = sorted({user_id for _, user_id in link_of.values() if user_id is not None})
    if not user_ids:
        return out
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    found = await attempts.latest_binding_attempts(user_ids, since=since)
    refusals = await attempts.latest_mutual_aid_refusals(user_ids, since=since)
    for openid, (_, user_id) in link_of.items():
        if user_id is not None:
            row = found.get(user_id)
            out[openid] = Diagnosis(
                True, _attempt(row, pii) if row is not None else None, refusals.get(user_id)
            )
    return out


def _attempt(row: attempts.BindingAttempt, pii: PiiCipher) -> Attempt:
    try:
        member = mask_name(pii.decrypt(row.member_name_enc, purpose="name"))
    except (InvalidTag, ValueError, KeyError):  # unreadable with the configured keys
        member = "家人"
    return Attempt(
        state=row.state,
        member_masked=member,
        at=row.at,
        failure_code=row.failure_code,
        failure_message=row.failure_message,
    )


def _when(at: datetime) -> str:
    day = at.astimezone(SHANGHAI)
    return f"{day.month}月{day.day}日"


def explain(attempt: Attempt, kb: KnowledgeBase) -> str | None:
    """The personal answer for a binding attempt; None when we cannot say more than the
    FAQ. The wording is the knowledge base's ``[reply.binding_<state>]``,
    filled with the attempt and the failure code's intent."""
    fields = {"when": _when(attempt.at), "member": attempt.member_masked}
    if attempt.state == PENDING_REVIEW:
        return kb.replies["binding_pending_review"].text.format(**fields)
    if attempt.state == CORRECTION_REQUESTED:
        note = (attempt.failure_message or "").strip()
        fields["reason"] = f":{note}" if note else ""
        return kb.replies["binding_correction_requested"].text.format(**fields)
    if attempt.state not in (FAILED, NEEDS_ACTION) or not attempt.failure_code:
        return None
    intent = kb.by_error_code(attempt.failure_code, "binding")
    if intent is None:
        return None
    template = "binding_needs_action" if attempt.state == NEEDS_ACTION else "binding_failed"
    return kb.replies[template].text.format(
        **fields, title=intent.title, answer=kb.render(intent)
    )


def explain_refusal(refusal: Refusal, kb: KnowledgeBase) -> str | None:
    """The personal answer for a refused 家庭共济 request; None when no intent explains
    its code (the FAQ answer is all we can give then)."""
    intent = kb.by_error_code(refusal.code, "mutual_aid")
    if intent is None:
        return None
    template = "mutual_aid_revoke_refused" if refusal.action == "revoke" else "mutual_aid_refused"
    return kb.replies[template].text.format(
        when=_when(refusal.at),
        message=refusal.message,
        title=intent.title,
        answer=kb.render(intent),
    )
