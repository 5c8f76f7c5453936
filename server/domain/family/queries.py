"""The family area's hot reads, in one place; each is covered by tests/family/test_queries.py
on SQLite and PostgreSQL.

Each is built by the ORM once per database dialect and afterwards only executed
(``server.domain.queries.Compiled``): on these small indexed look-ups building the query
costs more than running it. Every other read and all writes of the area use the ORM.

Measured 2026-12 on a busy 2-CPU machine (CPU of the server process per call, SQLite /
PostgreSQL, pre-built vs plain ORM): owned application 155 / 160–180 µs vs 370–440;
binder 50–70 / 110–145 vs 360–480; materials 95–130 / 120–160 vs 230–330; latest
signature 95–105 / 115–175 vs 255–340; members list 57–75 / 110–150 vs 590–790. The
binding flow runs the first four several times per binding; the members list is the
mini-program's home page: ``python -m bench --only family_members`` gave 532 CPU
µs/request pre-built vs 1,275 with the ORM (881 vs 232 req/s). A hand-written statement
for the members list (as before) was within noise of the pre-built one (439 µs/request;
in-process ~10 µs less per list), so the area keeps one way of bypassing the ORM.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from server.domain.models import Application, Binding, CommitmentSignature, Material, User
from server.domain.queries import S_INT, S_UUID, Compiled

_OWNED_APPLICATION = Compiled(
    lambda app_id, binder_id: Application.filter(id=app_id, binder_id=binder_id).limit(1),
    S_UUID,
    S_INT,
)
_BINDER = Compiled(
    lambda user_id: User.filter(id=user_id).values(
        "id", "realname_verified", "id_hash", "person_id", "person__region_code"
    ),
    S_INT,
)
_MATERIALS = Compiled(
    lambda app_id: Material.filter(application_id=app_id).order_by("created_at"), S_UUID
)
_LATEST_SIGNATURE = Compiled(
    lambda app_id: CommitmentSignature.filter(application_id=app_id).order_by("-id").limit(1),
    S_UUID,
)


async def owned_application(app_id: uuid.UUID, binder_id: int) -> Application | None:
    """The application ``app_id`` if ``binder_id`` made it."""
    rows = await _OWNED_APPLICATION.rows(app_id, binder_id)
    return Application._init_from_db(**rows[0]) if rows else None


async def binder(user_id: int) -> dict[str, Any] | None:
    """id, realname_verified, id_hash, person_id, person__region_code of a user."""
    rows = await _BINDER.rows(user_id)
    return rows[0] if rows else None


async def materials(app_id: uuid.UUID) -> list[Material]:
    """The application's materials, oldest first."""
    return [Material._init_from_db(**r) for r in await _MATERIALS.rows(app_id)]


async def latest_signature(app_id: uuid.UUID) -> CommitmentSignature | None:
    """The latest signature of the application (signing again adds one)."""
    rows = await _LATEST_SIGNATURE.rows(app_id)
    return CommitmentSignature._init_from_db(**rows[0]) if rows else None


# The hot read of the mini-program's home page: no query building, no model instances
# (measured: the ORM query costs ~0.5 ms of CPU more than this, per request).
MEMBER_COLUMNS = (
    "id",
    "relationship",
    "state",
    "bound_at",
    "member__name_enc",
    "member__id_number_enc",
    "member__insurance_type",
    "member__region_code",
    "member__status",
    "member__voucher_activated",
)
_ACTIVE_MEMBERS = Compiled(
    lambda binder_id: Binding.filter(binder_id=binder_id, state="active")
    .order_by("bound_at")
    .values(*MEMBER_COLUMNS),
    S_INT,
)


async def active_members(binder_id: int) -> list[dict[str, Any]]:
    """The binder's active bindings joined with their member's registry row, oldest
    first (keys: ``MEMBER_COLUMNS``; ``bound_at`` an aware datetime on every backend)."""
    rows = await _ACTIVE_MEMBERS.rows(binder_id)
    for r in rows:
        if isinstance(r["bound_at"], str):  # SQLite hands back text
            r["bound_at"] = datetime.fromisoformat(r["bound_at"])
    return rows
