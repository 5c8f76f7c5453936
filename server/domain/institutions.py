"""定点医药机构: who may call the signed webhook, and the lifecycle the bureau runs.

Each institution signs its webhook calls with its own secret (API.md "Institutions");
the secret is stored encrypted. The HTTP layer (``institution_api.signing``) verifies a
signature and asks :class:`InstitutionDirectory` who the caller is and which secrets
verify; it never reads the table itself.

Lifecycle (``python -m server institution …``, docs/money.md "Institutions"): add (or
re-key at once), list, disable / enable, and rotate the secret with an overlap window
during which the old and the new secret both verify (default 24 h), so a hospital can
switch its systems over without a refused settlement. Every change is written to
``institution_events`` (who, what, when; never a secret) and logged.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from server.domain.clock import SHANGHAI, cn_iso, cn_iso_or_none
from server.domain.errors import DomainError
from server.domain.models import Institution, InstitutionEvent
from server.domain.pii import PiiCipher

log = logging.getLogger(__name__)
DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)


@dataclass(frozen=True)
class InstitutionInfo:
    """The signed caller, as the settlement service sees it."""

    code: str
    name: str
    region_code: str


@dataclass(frozen=True)
class _Row:
    expires: float  # monotonic time until which this cached row is used
    info: InstitutionInfo | None  # None: unknown or disabled
    secret_enc: str
    previous_enc: str | None
    previous_until: float  # wall-clock (epoch) end of the overlap window, 0 when none


class InstitutionDirectory:
    """Active institutions by code, per process.

    Rows are kept ``ttl`` seconds (``[institution_api] cache_seconds``, default 5 s): a
    disabled or re-keyed institution is refused within that time, and the hot path
    saves a database round trip per request. The end of a rotation's overlap window is
    checked on every request against the wall clock, so the old secret stops at the
    stated time whatever the cache. Decrypted secrets are kept by their ciphertext, so a
    re-key never serves the old secret once the row is re-read.
    """

    MAX_ROWS = 100_000

    def __init__(
        self,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.monotonic = monotonic  # the cache's clock (tests move it)
        # the server's wall clock (epoch seconds): signature timestamps and rotation
        # windows are judged by it (tests set it off, as a server's clock may be)
        self.wall = wall
        self._rows: dict[str, _Row] = {}
        self._secrets: dict[tuple[str, str], str] = {}

    async def lookup(
        self, code: str, *, ttl: float, pii: PiiCipher, now: float | None = None
    ) -> tuple[InstitutionInfo, tuple[str, ...]] | None:
        """The active institution ``code`` and the secrets that verify now (the current
        one first); None when unknown or disabled."""
        mono = self.monotonic()
        row = self._rows.get(code)
        if row is None or row.expires <= mono:
            found = await Institution.filter(code=code, active=True).values_list(
                "name", "region_code", "secret_enc", "previous_secret_enc", "previous_secret_until"
            )
            if found:
                name, region, enc, prev_enc, prev_until = found[0]
                until = prev_until.timestamp() if prev_until is not None and prev_enc else 0.0
                row = _Row(mono + ttl, InstitutionInfo(code, name, region), enc, prev_enc, until)
            else:
                row = _Row(mono + ttl, None, "", None, 0.0)
            if ttl > 0 and len(self._rows) < self.MAX_ROWS:
                self._rows[code] = row
        if row.info is None:
            return None
        current = self._decrypt(code, row.secret_enc, pii)
        if row.previous_enc and (self.wall() if now is None else now) < row.previous_until:
            return row.info, (current, self._decrypt(code, row.previous_enc, pii))
        return row.info, (current,)

    def _decrypt(self, code: str, enc: str, pii: PiiCipher) -> str:
        secret = self._secrets.get((code, enc))
        if secret is None:
            secret = pii.decrypt(enc, purpose="institution_secret")
            if len(self._secrets) < self.MAX_ROWS:
                self._secrets[(code, enc)] = secret
        return secret


async def _event(inst_code: str, action: str, actor: str, **detail: Any) -> None:
    await InstitutionEvent.create(
        institution_id=inst_code, action=action, actor=actor[:64] or "cli", detail=detail
    )
    log.info(
        "institution %s: %s by %s%s",
        inst_code,
        action,
        actor,
        "".join(f", {k}={v}" for k, v in detail.items()),
    )


async def add_institution(
    *,
    code: str,
    name: str,
    region_code: str,
    pii: PiiCipher,
    secret: str | None = None,
    actor: str = "cli",
) -> str:
    """Create (or re-key at once, and enable) an institution and return its secret (shown
    once). Adding an existing institution with the same name, region and secret changes
    nothing (the demo adds its hospital at every start)."""
    if not code or len(code) > 32 or not code.isascii() or not code.replace("-", "").isalnum():
        raise DomainError("INVALID_INSTITUTION_CODE", "机构编码只能包含字母、数字和连字符")
    if not (len(region_code) == 6 and region_code.isascii() and region_code.isdigit()):
        raise DomainError("INVALID_REGION_CODE", "区划代码必须是 6 位数字")
    secret = secret or secrets.token_urlsafe(32)
    enc = pii.encrypt(secret, purpose="institution_secret")
    async with in_transaction():
        inst = await Institution.filter(code=code).select_for_update().first()
        if inst is None:
            await Institution.create(code=code, name=name, region_code=region_code, secret_enc=enc)
            await _event(code, "added", actor, name=name, region_code=region_code)
            return secret
        same = (
            inst.active
            and (inst.name, inst.region_code) == (name, region_code)
            and pii.decrypt(inst.secret_enc, purpose="institution_secret") == secret
        )
        if same:
            return secret
        inst.name, inst.region_code, inst.secret_enc, inst.active = name, region_code, enc, True
        # tortoise types a null=True field as never None
        inst.previous_secret_enc, inst.previous_secret_until = None, None  # type: ignore[assignment]  # null=True
        await inst.save()
        await _event(code, "rekeyed", actor, name=name, region_code=region_code)
    return secret


async def _locked(code: str) -> Institution:
    inst = await Institution.filter(code=code).select_for_update().first()
    if inst is None:
        raise DomainError("INSTITUTION_NOT_FOUND", f"机构 {code} 不存在")
    return inst


async def set_active(code: str, active: bool, *, actor: str = "cli") -> bool:
    """Disable or enable ``code``; False when it already was (nothing logged then).

    A disabled institution's signed calls answer 401 ``INSTITUTION_UNKNOWN`` within the
    directory's cache time (``[institution_api] cache_seconds``) in every process.
    """
    async with in_transaction():
        inst = await _locked(code)
        if inst.active == active:
            return False
        inst.active = active
        await inst.save(update_fields=["active"])
        await _event(code, "enabled" if active else "disabled", actor)
    return True


async def rotate_secret(
    code: str,
    *,
    pii: PiiCipher,
    overlap: timedelta = DEFAULT_OVERLAP,
    actor: str = "cli",
    now: datetime | None = None,
) -> tuple[str, datetime | None]:
    """A new secret for ``code``; the current one keeps verifying for ``overlap`` (0: it
    stops at once). Returns the new secret (shown once) and when the old one stops."""
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise DomainError("INVALID_OVERLAP", "新旧密钥并行期必须在 0 到 30 天之间")
    secret = secrets.token_urlsafe(32)
    now = now or datetime.now(SHANGHAI)
    until = now + overlap if overlap else None
    async with in_transaction():
        inst = await _locked(code)
        inst.previous_secret_enc = inst.secret_enc if until is not None else None  # type: ignore[assignment]  # null=True
        inst.previous_secret_until = until
        inst.secret_enc = pii.encrypt(secret, purpose="institution_secret")
        await inst.save(
            update_fields=["secret_enc", "previous_secret_enc", "previous_secret_until"]
        )
        await _event(code, "rotated", actor, old_secret_until=cn_iso_or_none(until))
    return secret, until


async def list_institutions() -> list[dict[str, Any]]:
    """Every institution with its state, its overlap window and its last lifecycle event."""
    out: list[dict[str, Any]] = []
    now = datetime.now(SHANGHAI)
    for inst in await Institution.all().order_by("code"):
        last = await InstitutionEvent.filter(institution_id=inst.code).order_by("-id").first()
        until = inst.previous_secret_until
        out.append(
            {
                "code": inst.code,
                "name": inst.name,
                "region_code": inst.region_code,
                "active": inst.active,
                "old_secret_until": cn_iso(until) if until and until > now else None,
                "last_event": (
                    f"{last.action} {cn_iso(last.created_at)} by {last.actor}" if last else None
                ),
            }
        )
    return out


def parse_duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``2d``, ``0`` → a timedelta (the CLI's ``--overlap``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if text == "0":
        return timedelta(0)
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isascii() or not number.isdigit():
        raise DomainError("INVALID_OVERLAP", f"时长格式应如 24h、90m、2d 或 0,收到 {text!r}")
    return timedelta(seconds=int(number) * units[unit])


__all__ = [
    "DEFAULT_OVERLAP",
    "InstitutionDirectory",
    "InstitutionInfo",
    "add_institution",
    "list_institutions",
    "parse_duration",
    "rotate_secret",
    "set_active",
]
