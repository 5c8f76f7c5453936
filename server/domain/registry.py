"""The insurance registry (参保登记): who is insured, and does the name match?

The domain asks one question of the registry — "who holds this ID document?" — through
the :class:`Registry` port, and decides the rest itself (:func:`match`: the name is
compared through its keyed blind index, never decrypted). :class:`LocalRegistry` answers
from our own ``insured_persons`` table (demo, tests, imported data); the national
platform's interface can implement the same port without touching a rule.

The table is loaded from CSV (CLI ``python -m server registry import`` / demo). CSV header (API.md "Demo mode"): name,id_type,id_number,insurance_type,region_code,
has_personal_account,voucher_activated,status,balance_fen, and optionally (v1.1)
guardian_id_numbers: the ``;``-separated resident ID numbers of a minor's registered
guardians, kept only as blind indexes. Re-importing a person updates
them; a balance line credits the personal account through the ledger (kind ``import``)
only by the difference, so importing the same file twice changes nothing.

The import itself is the bulk path (server/bulk/, docs/bulk.md); this module keeps the
registry's rules it uses: the header, the blind indexes and ``psn_no``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from server.domain.errors import DomainError
from server.domain.identity import parse_id
from server.domain.models import InsuredPerson
from server.domain.pii import PiiCipher
from server.domain.queries import S_STR, Compiled

HEADER = [
    "name",
    "id_type",
    "id_number",
    "insurance_type",
    "region_code",
    "has_personal_account",
    "voucher_activated",
    "status",
    "balance_fen",
]
OPTIONAL = ["guardian_id_numbers"]


def id_hash(pii: PiiCipher, id_type: str, id_number: str) -> str:
    return pii.blind_index(f"{id_type}:{id_number}", purpose="id_number")


def name_hash(pii: PiiCipher, name: str) -> str:
    return pii.blind_index(name, purpose="name")


def guardian_hashes(pii: PiiCipher, cell: str, line: int) -> str:
    """The guardians' resident ID numbers as comma-separated blind indexes (never stored
    in clear: the registry only needs to recognise a guardian, not to name one)."""
    out: list[str] = []
    for raw in (cell or "").split(";"):
        number = raw.strip().upper()
        if not number:
            continue
        try:
            doc = parse_id("resident_id", number, today=date(2100, 1, 1))
        except DomainError:
            raise DomainError(
                "REGISTRY_CSV_INVALID", f"第 {line} 行 guardian_id_numbers 含无效身份证号"
            ) from None
        out.append(id_hash(pii, doc.id_type, doc.id_number))
    return ",".join(sorted(set(out)))


def psn_no_for(hashed_id: str) -> str:
    """A stable 人员编号 derived from the blind index (the demo has no national one)."""
    # the first 60 bits of its SHA-256, in 19 decimal digits (2^60 < 10^19)
    return "P" + str(int.from_bytes(hashlib.sha256(hashed_id.encode()).digest()[:8]) >> 4).zfill(19)


async def find_by_id(pii: PiiCipher, id_type: str, id_number: str) -> InsuredPerson | None:
    return await InsuredPerson.get_or_none(id_hash=id_hash(pii, id_type, id_number.upper()))


# -- look-ups: the port, the rule, our table ------------------------------------------

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
    name_hash: str  # the keyed blind index of the registered name (``name_hash``)
    guardian_hashes: frozenset[str] = frozenset()  # a minor's registered guardians


class Registry(Protocol):
    """What the domain needs of a registry (the port)."""

    async def lookup(self, id_type: str, id_number: str) -> RegistryRecord | None:
        """The insured person holding this (normalised) ID document, or None."""


async def match(
    registry: Registry, pii: PiiCipher, *, id_type: str, id_number: str, name: str
) -> tuple[Match, RegistryRecord | None]:
    """Name + ID against the registry (SPEC.md verification: matching name + ID)."""
    record = await registry.lookup(id_type, id_number)
    if record is None:
        return "not_found", None
    return ("match" if name_hash(pii, name) == record.name_hash else "mismatch"), record


class LocalRegistry:
    """The registry as our own ``insured_persons`` table (demo, tests, imported data)."""

    def __init__(self, pii: PiiCipher) -> None:
        self._pii = pii

    async def lookup(self, id_type: str, id_number: str) -> RegistryRecord | None:
        rows = await _BY_ID_HASH.rows(id_hash(self._pii, id_type, id_number.upper()))
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
