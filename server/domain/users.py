"""User profile use cases."""

from __future__ import annotations

from typing import Any

from server.domain.errors import DomainError
from server.domain.models import User
from server.domain.pii import PiiCipher, mask_id, mask_name


async def profile(user_id: int, *, pii: PiiCipher) -> dict[str, Any]:
    """The mini-program's view of a user: masked personal data, insurance summary."""
    user = await User.get_or_none(id=user_id).select_related("person")
    if user is None:
        raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录", 401)
    out: dict[str, Any] = {"id": user.id, "realname_verified": user.realname_verified}
    if user.name_enc:
        out["name"] = mask_name(pii.decrypt(user.name_enc, purpose="name"))
    if user.id_number_enc:
        out["id_number"] = mask_id(pii.decrypt(user.id_number_enc, purpose="id_number"))
    person = user.person
    if person is not None:
        out["insurance"] = {
            "insurance_type": person.insurance_type,
            "region_code": person.region_code,
            "status": person.status,
            "has_personal_account": person.has_personal_account,
            "voucher_activated": person.voucher_activated,
        }
    return out
