"""Consent rows as facts: the one in force per purpose, who withdrew a purpose.

Only the models: imported by the consent service and by the outbox that writes notices
(which must not write for someone who withdrew ``notices``), without a cycle between them.
"""

from __future__ import annotations

from collections.abc import Iterable

from server.domain.models import Consent

__all__ = ["latest", "withdrawn_users"]


async def latest(user_id: int, *, purpose: str | None = None) -> dict[str, Consent]:
    """The consent in force per purpose (the newest row), of one user."""
    q = Consent.filter(user_id=user_id)
    if purpose is not None:
        q = q.filter(purpose=purpose)
    out: dict[str, Consent] = {}
    for c in await q.order_by("id"):
        out[c.purpose] = c
    return out


async def withdrawn_users(user_ids: Iterable[int], purpose: str) -> set[int]:
    """Of ``user_ids``, those whose consent in force to ``purpose`` is withdrawn.

    A user who never answered has not withdrawn (these purposes stop a use only when
    withdrawn — ``server.privacy.consent``). One indexed query (user_id, purpose), only
    when someone withdrew at all.
    """
    ids = {int(u) for u in user_ids if u is not None}
    if not ids:
        return set()
    rows = (
        await Consent.filter(user_id__in=ids, purpose=purpose)
        .order_by("id")
        .values_list("user_id", "withdrawn_at")
    )
    state: dict[int, bool] = {}
    for uid, withdrawn_at in rows:
        state[int(uid)] = withdrawn_at is not None
    return {uid for uid, withdrawn in state.items() if withdrawn}
