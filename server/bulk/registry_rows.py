"""Registry CSV rows → staging records: validation with reject reasons, hashing, encryption.

Pure CPU work, no I/O: the import's hot path (tens of µs a row, docs/bulk.md). The rules
are the registry's (server/domain/registry.py: the header, the blind indexes, ``psn_no``;
server/domain/identity.py ``parse_id``: what a well-formed ID is); this module only
decides *why* a row is refused, for the reject report.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from server.bulk.report import BAD_CHECKSUM, DUPLICATE, MALFORMED, UNKNOWN_REGION, Reject
from server.bulk.source import Row
from server.domain.errors import DomainError
from server.domain.identity import (
    PROVINCE_PREFIXES,
    RESIDENCE_PERMIT_PREFIXES,
    CanonicalResidentIds,
    gb11643_check_digit,
    normalize_id_number,
    parse_id,
)
from server.domain.pii import BatchSealer, PiiCipher, mask_id
from server.domain.registry import HEADER, id_hash, name_hash, psn_no_for

# The staging record, in this order (server/bulk/registry_import.py creates the table).
STAGE_COLUMNS = (
    "line",
    "psn_no",
    "name_enc",
    "name_hash",
    "id_type",
    "id_number_enc",
    "id_hash",
    "insurance_type",
    "region_code",
    "has_personal_account",
    "voucher_activated",
    "status",
    "guardian_hashes",
    "balance_fen",
)

# An insured person's region is a mainland 统筹区: a GB/T 2260 province prefix, not
# Taiwan / Hong Kong / Macao (71 / 81 / 82 appear only in ID numbers and permits).
INSURANCE_PROVINCES = PROVINCE_PREFIXES - {"71", "81", "82"}
_GB11643_TYPES = ("resident_id", "hk_mo_tw_residence_permit", "foreign_permanent_resident")
_PERMIT_AREAS = frozenset(RESIDENCE_PERMIT_PREFIXES.values())
_BOOLS = {"true": True, "false": False}
_GUARDIAN_BIRTH_LIMIT = date(2100, 1, 1)  # as registry.guardian_hashes: any real birth date
_ID_HASH = operator.itemgetter(STAGE_COLUMNS.index("id_hash"))
_HALF = 1 << 63  # a 64-bit unsigned fingerprint as SQLite's signed integer
_NAME, _ID_NUMBER = b"name", b"id_number"  # the associated data of PiiCipher.encrypt's purposes
MAX_BALANCE_FEN = 10**15  # a BIGINT with room to spare; anything larger is a typo


@dataclass
class PreparedBatch:
    """One batch after validation: staging records, rejects, and each line's ID number
    (kept in memory only, masked if a later check rejects the line)."""

    records: list[tuple[Any, ...]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    id_numbers: dict[int, str] = field(default_factory=dict)
    rows: int = 0


def _id_reason(id_type: str, number: str, field_name: str, line: int, err: DomainError) -> Reject:
    """Why ``parse_id`` refused a number, for the report: a GB 11643 number of the right
    shape whose check character is wrong is ``bad_checksum``; one whose area code is no
    province ``unknown_region``; anything else ``malformed`` with parse_id's message."""
    n = normalize_id_number(number)
    ref = mask_id(n) if n else ""
    if (
        id_type in _GB11643_TYPES
        and len(n) == 18
        and n.isascii()
        and n[:17].isdigit()
        and (n[17].isdigit() or n[17] == "X")
    ):
        if gb11643_check_digit(n[:17]) != n[17]:
            return Reject(line, BAD_CHECKSUM, field_name, "校验位不符(GB 11643),请逐位核对", ref)
        if id_type == "resident_id" and (n[:2] not in PROVINCE_PREFIXES or n[:6] in _PERMIT_AREAS):
            return Reject(line, UNKNOWN_REGION, field_name, "身份证号前6位地区码无效", ref)
    return Reject(line, MALFORMED, field_name, err.message, ref)


class RowPreparer:
    """Validates and transforms rows; one per run (``today`` fixed at the start)."""

    def __init__(
        self,
        pii: PiiCipher,
        columns: Sequence[str],
        *,
        today: date,
        encrypt: bool = True,
        fingerprint: Literal["uuid", "int64"] | None = None,
    ) -> None:
        self.pii = pii
        self.ncols = len(columns)
        self.has_guardians = len(columns) > len(HEADER)
        self.today = today
        self.encrypt = encrypt  # False for --dry-run: everything but the ciphertexts
        # + the seen-set's key: 128 bits of the blind index as a uuid (PostgreSQL), or 64
        # as a signed integer (SQLite's rowid)
        self.fingerprint = fingerprint
        self.resident_ids = CanonicalResidentIds(today)

    def prepare(self, rows: Sequence[Row]) -> PreparedBatch:
        out = PreparedBatch(rows=len(rows))
        seen: dict[str, int] = {}  # id_hash → first line in this batch
        sealer = self.pii.sealer(2 * len(rows)) if self.encrypt else None
        for line, cells in rows:
            result = self._row(line, cells, sealer)
            if isinstance(result, Reject):
                out.rejects.append(result)
                continue
            record, number = result
            first = seen.get(record[6])
            if first is not None:
                out.rejects.append(
                    Reject(line, DUPLICATE, "id_number", f"与第 {first} 行是同一人", mask_id(number))
                )
                continue
            seen[record[6]] = line
            out.records.append(record)
            out.id_numbers[line] = number
        # in blind-index order: the database's look-ups and inserts by id_hash (and the
        # seen-set's by its prefix) then walk each index in order instead of at random
        out.records.sort(key=_ID_HASH)
        return out

    def _row(
        self, line: int, cells: list[str] | str, sealer: BatchSealer | None
    ) -> Reject | tuple[tuple[Any, ...], str]:
        if isinstance(cells, str):
            return Reject(line, MALFORMED, "", cells)
        if len(cells) != self.ncols:
            return Reject(line, MALFORMED, "", f"应有 {self.ncols} 列,实际 {len(cells)} 列")
        name = cells[0].strip()
        id_type = cells[1].strip()
        number = cells[2]
        # most rows: a resident ID as it should be written, accepted without parse_id's
        # normalising and its IdDocument (identity.CanonicalResidentIds: the same rules)
        if id_type != "resident_id" or not self.resident_ids.accepts(number):
            try:
                number = parse_id(id_type, number, today=self.today).id_number
            except DomainError as err:
                if err.code != "INVALID_ID_NUMBER":
                    return Reject(line, MALFORMED, "id_type", "证件类型无效")
                return _id_reason(id_type, number, "id_number", line, err)
        if not name:
            return Reject(line, MALFORMED, "name", "姓名不能为空", mask_id(number))
        insurance_type = cells[3].strip()
        if insurance_type not in ("employee", "resident"):
            return Reject(line, MALFORMED, "insurance_type", "应为 employee 或 resident", mask_id(number))
        region = cells[4].strip()
        if not (len(region) == 6 and region.isascii() and region.isdigit()):
            return Reject(line, MALFORMED, "region_code", "必须是 6 位数字", mask_id(number))
        if region[:2] not in INSURANCE_PROVINCES:
            return Reject(line, UNKNOWN_REGION, "region_code", "不是已知省份的行政区划代码", mask_id(number))
        has_account = _BOOLS.get(cells[5])  # as written, mostly; else cleaned up
        if has_account is None:
            has_account = _BOOLS.get(cells[5].strip().lower())
        if has_account is None:
            return Reject(line, MALFORMED, "has_personal_account", "必须是 true 或 false", mask_id(number))
        activated = _BOOLS.get(cells[6])
        if activated is None:
            activated = _BOOLS.get(cells[6].strip().lower())
        if activated is None:
            return Reject(line, MALFORMED, "voucher_activated", "必须是 true 或 false", mask_id(number))
        status = cells[7].strip()
        if status not in ("active", "suspended"):
            return Reject(line, MALFORMED, "status", "应为 active 或 suspended", mask_id(number))
        balance_cell = cells[8].strip()
        try:
            balance = int(balance_cell) if balance_cell else 0
        except ValueError:
            return Reject(line, MALFORMED, "balance_fen", "必须是整数(分)", mask_id(number))
        if not 0 <= balance <= MAX_BALANCE_FEN:
            return Reject(line, MALFORMED, "balance_fen", "不能为负,也不能超过 10^15 分", mask_id(number))
        guardians = ""
        if self.has_guardians and cells[9].strip():
            hashes = []
            for raw in cells[9].split(";"):
                if not raw.strip():
                    continue
                try:
                    g = parse_id("resident_id", raw, today=_GUARDIAN_BIRTH_LIMIT)
                except DomainError as err:
                    reject = _id_reason("resident_id", raw, "guardian_id_numbers", line, err)
                    return Reject(line, reject.reason, reject.field, "监护人" + reject.message, mask_id(number))
                hashes.append(id_hash(self.pii, g.id_type, g.id_number))
            guardians = ",".join(sorted(set(hashes)))
        pii = self.pii
        hid = id_hash(pii, id_type, number)
        if sealer is not None:
            name_enc = sealer.encrypt(name, _NAME)
            number_enc = sealer.encrypt(number, _ID_NUMBER)
        else:
            name_enc = number_enc = ""
        record: tuple[Any, ...] = (
            line,
            psn_no_for(hid),
            name_enc,
            name_hash(pii, name),
            id_type,
            number_enc,
            hid,
            insurance_type,
            region,
            has_account,
            activated,
            status,
            guardians,
            balance,
        )
        if self.fingerprint == "uuid":
            record += (hid[:32],)
        elif self.fingerprint == "int64":
            record += (int(hid[:16], 16) - _HALF,)
        return record, number
