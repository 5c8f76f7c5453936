"""定点医药机构: who may call the signed webhook, and the CLI that manages them.

Each institution signs its webhook calls with its own secret (API.md "Institutions");
the secret is stored encrypted. The HTTP layer (``institution_api.signing``) verifies a
signature and asks :class:`InstitutionDirectory` who the caller is; it never reads the
table itself.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from server.domain.errors import DomainError
from server.domain.models import Institution
from server.domain.pii import PiiCipher


@dataclass(frozen=True)
class InstitutionInfo:
    """The signed caller, as the settlement service sees it."""

    code: str
    name: str
    region_code: str


class InstitutionDirectory:
    """Active institutions by code, per process.

    Rows are kept ``ttl`` seconds (``[institution_api] cache_seconds``, default 5 s): a
    deactivated or re-keyed institution is refused within that time, and the hot path
    saves a database round trip per request. Decrypted secrets are kept by
    (code, secret_enc), so a re-key never serves the old secret once the row is re-read.
    """

    MAX_ROWS = 100_000

    def __init__(self) -> None:
        self._rows: dict[str, tuple[float, InstitutionInfo | None, str]] = {}
        self._secrets: dict[tuple[str, str], str] = {}

    async def lookup(
        self, code: str, *, ttl: float, pii: PiiCipher
    ) -> tuple[InstitutionInfo, str] | None:
        """The active institution ``code`` and its secret; None when unknown or inactive."""
        now = time.monotonic()
        cached = self._rows.get(code)
        if cached is None or cached[0] <= now:
            row = await Institution.filter(code=code, active=True).values_list(
                "name", "region_code", "secret_enc"
            )
            info = InstitutionInfo(code, row[0][0], row[0][1]) if row else None
            cached = (now + ttl, info, row[0][2] if row else "")
            if ttl > 0 and len(self._rows) < self.MAX_ROWS:
                self._rows[code] = cached
        _, info, secret_enc = cached
        if info is None:
            return None
        secret = self._secrets.get((code, secret_enc))
        if secret is None:
            secret = pii.decrypt(secret_enc, purpose="institution_secret")
            self._secrets[(code, secret_enc)] = secret
        return info, secret


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


__all__ = ["InstitutionDirectory", "InstitutionInfo", "add_institution"]
