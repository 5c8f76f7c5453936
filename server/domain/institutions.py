"""定点医药机构 management (CLI): each institution signs its webhook calls with its secret."""

from __future__ import annotations

import secrets

from server.domain.errors import DomainError
from server.domain.models import Institution
from server.domain.pii import PiiCipher


async def add_institution(
    *, code: str, name: str, region_code: str, pii: PiiCipher, secret: str | None = None
) -> str:
    """Create (or re-key) an institution and return its secret (shown once)."""
    if not code or len(code) > 32 or not code.replace("-", "").isalnum():
        raise DomainError("INVALID_INSTITUTION_CODE", "机构编码只能包含字母、数字和连字符", 422)
    if not (len(region_code) == 6 and region_code.isdigit()):
        raise DomainError("INVALID_REGION_CODE", "区划代码必须是 6 位数字", 422)
    secret = secret or secrets.token_urlsafe(32)
    enc = pii.encrypt(secret, purpose="institution_secret")
    inst = await Institution.get_or_none(code=code)
    if inst is None:
        await Institution.create(code=code, name=name, region_code=region_code, secret_enc=enc)
    else:
        inst.name, inst.region_code, inst.secret_enc, inst.active = name, region_code, enc, True
        await inst.save()
    return secret
