"""The insurance registry gateway (参保登记): who is insured, and does the name match?

The domain asks only two questions — "who holds this ID document?" and "is this their
name?" — through ``RegistryGateway``, so the local table (``InsuredPerson``, loaded by
``python -m server registry import``) can be replaced by the national platform's
interface without touching a rule. ``LocalRegistryGateway`` answers from our table,
comparing names through their keyed blind index (the name is never decrypted to match).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from server.domain import registry as registry_store
from server.domain.models import InsuredPerson
from server.domain.pii import PiiCipher
from server.domain.queries import S_STR, Compiled

Match = Literal["match", "mismatch", "not_found"]


@dataclass(frozen=True)
class RegistryRecord:
    """One insured person as the registry knows them (no clear-text personal data)."""

    person_id: int  # InsuredPerson.id: what bindings point at
    psn_no: str
    id_type: str
    insurance_type: str  # employee | resident
    region_code: str
    has_personal_account: bool
    voucher_activated: bool
    status: str  # active | suspended
    name_hash: str
    guardian_hashes: frozenset[str] = frozenset()  # a minor's registered guardians


class RegistryGateway(Protocol):
    async def lookup(self, id_type: str, id_number: str) -> RegistryRecord | None:
        """The insured person holding this (normalised) ID document, or None."""

    def name_matches(self, record: RegistryRecord, name: str) -> bool:
        """Whether ``name`` is the registered name of ``record``."""


class LocalRegistryGateway:
    """The registry as our own ``insured_persons`` table (demo, tests, imported data)."""

    def __init__(self, pii: PiiCipher) -> None:
        self._pii = pii

    async def lookup(self, id_type: str, id_number: str) -> RegistryRecord | None:
        hashed = registry_store.id_hash(self._pii, id_type, id_number.upper())
        rows = await _BY_ID_HASH.rows(hashed)
        if not rows:
            return None
        r = rows[0]
        return RegistryRecord(
            person_id=r["id"],
            psn_no=r["psn_no"],
            id_type=r["id_type"],
            insurance_type=r["insurance_type"],
            region_code=r["region_code"],
            has_personal_account=bool(r["has_personal_account"]),  # SQLite: 0 / 1
            voucher_activated=bool(r["voucher_activated"]),
            status=r["status"],
            name_hash=r["name_hash"],
            guardian_hashes=frozenset(h for h in (r["guardian_hashes"] or "").split(",") if h),
        )

    def name_matches(self, record: RegistryRecord, name: str) -> bool:
        return registry_store.name_hash(self._pii, name) == record.name_hash


_FIELDS = (
    "id",
    "psn_no",
    "id_type",
    "insurance_type",
    "region_code",
    "has_personal_account",
    "voucher_activated",
    "status",
    "name_hash",
    "guardian_hashes",
)
# Every submit and precheck looks a person up: the SQL is built once (server.domain.queries).
_BY_ID_HASH = Compiled(lambda h: InsuredPerson.filter(id_hash=h).limit(1).values(*_FIELDS), S_STR)


async def match(
    gateway: RegistryGateway, *, id_type: str, id_number: str, name: str
) -> tuple[Match, RegistryRecord | None]:
    """Name + ID against the registry (SPEC.md verification: matching name + ID)."""
    record = await gateway.lookup(id_type, id_number)
    if record is None:
        return "not_found", None
    return ("match" if gateway.name_matches(record, name) else "mismatch"), record
