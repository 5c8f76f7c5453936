"""User profile use cases."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from server.domain.errors import DomainError
from server.domain.models import User
from server.domain.pii import PiiCipher, mask_id, mask_name

# GET /api/v1/me runs on every app start and often after: one query (user LEFT JOIN its
# insured person), the ORM builds its SQL once per database dialect, then only executes it
# (building it costs more than running it — bench/README.md).
_PROFILE_FIELDS = (
    "id",
    "realname_verified",
    "name_enc",
    "id_number_enc",
    "person_id",
    "person__insurance_type",
    "person__region_code",
    "person__status",
    "person__has_personal_account",
    "person__voucher_activated",
)
_SENTINEL = -424242
_profile_sql_by_dialect: dict[str, str] = {}


def _profile_sql(db: BaseDBAsyncClient) -> str:
    dialect = db.capabilities.dialect
    sql = _profile_sql_by_dialect.get(dialect)
    if sql is None:
        qs = User.filter(id=_SENTINEL).using_db(db).values(*_PROFILE_FIELDS)
        sql = qs.sql()
        _, params = qs.query.get_parameterized_sql()
        if list(params) != [_SENTINEL]:  # the one placeholder must be the user id
            raise RuntimeError(f"unexpected profile query parameters: {params!r}")
        _profile_sql_by_dialect[dialect] = sql
    return sql


async def profile(user_id: int, *, pii: PiiCipher) -> dict[str, Any]:
    """The mini-program's view of a user: masked personal data, insurance summary."""
    db = User._meta.db
    rows = await db.execute_query_dict(_profile_sql(db), [user_id])
    if not rows:
        raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
    row = rows[0]
    out: dict[str, Any] = {"id": row["id"], "realname_verified": bool(row["realname_verified"])}
    if row["name_enc"]:
        out["name"] = mask_name(pii.decrypt(row["name_enc"], purpose="name"))
    if row["id_number_enc"]:
        out["id_number"] = mask_id(pii.decrypt(row["id_number_enc"], purpose="id_number"))
    if row["person_id"] is not None:
        out["insurance"] = {
            "insurance_type": row["person__insurance_type"],
            "region_code": row["person__region_code"],
            "status": row["person__status"],
            "has_personal_account": bool(row["person__has_personal_account"]),
            "voucher_activated": bool(row["person__voucher_activated"]),
        }
    return out
