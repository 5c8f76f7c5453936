"""The family area's hot reads, in one place (each covered by tests/family/test_queries.py on
SQLite and PostgreSQL).

Built once per database dialect and afterwards only executed (``server.domain.queries``
``Compiled``: building a query costs more than running it on these small indexed
look-ups), and the members list as one fixed statement. Everything else in the area uses
the ORM as usual.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tortoise import connections

from server.domain.models import Application, CommitmentSignature, Material, User
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


# The hot read of the mini-program's home page: one fixed statement, no ORM query
# building or model instances (measured: about half of the request's time).
_MEMBERS_SQL = (
    "SELECT b.id, b.relationship, b.state, b.bound_at, p.name_enc, p.id_number_enc, "
    "p.insurance_type, p.region_code, p.status, p.voucher_activated "
    "FROM bindings b JOIN insured_persons p ON p.id = b.member_id "
    "WHERE b.binder_id = {0} AND b.state = 'active' ORDER BY b.bound_at"
)


async def active_members(binder_id: int) -> list[tuple[Any, ...]]:
    """The binder's active bindings with their member's registry row, oldest first:
    (binding id, relationship, state, bound_at, name_enc, id_number_enc, insurance_type,
    region_code, status, voucher_activated); ``bound_at`` an aware datetime."""
    conn = connections.get("default")
    placeholder = "?" if conn.capabilities.dialect == "sqlite" else "$1"
    _, rows = await conn.execute_query(_MEMBERS_SQL.format(placeholder), [binder_id])
    out = []
    for r in rows:
        row = tuple(r)
        if isinstance(row[3], str):  # SQLite hands back text
            row = (*row[:3], datetime.fromisoformat(row[3]), *row[4:])
        out.append(row)
    return out
