"""Registry CSVs for the bulk tests, and a backend-independent picture of the registry."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from server.domain import ledger
from server.domain.identity import make_resident_id
from server.domain.models import Account, InsuredPerson, LedgerEntry
from server.domain.pii import PiiCipher
from server.domain.registry import HEADER, OPTIONAL

FULL_HEADER = ",".join(HEADER + OPTIONAL)


def person_id_number(i: int) -> str:
    """The i-th test person's valid resident ID (distinct for i < 10,000)."""
    return make_resident_id("420102", date(1950 + i % 60, 1 + i % 12, 1 + i % 28), f"{i % 1000:03d}")


def row(i: int, *, balance: int | None = None, status: str = "active", name: str | None = None,
        guardians: str = "") -> str:
    """A valid CSV line for test person i (employees on even i, with a balance)."""
    employee = i % 2 == 0
    bal = balance if balance is not None else (1000 * i if employee else 0)
    return ",".join([
        name or f"测试{i}", "resident_id", person_id_number(i), "employee" if employee else "resident",
        "420100", "true" if employee else "false", "true", status, str(bal), guardians,
    ])


def write_csv(path: Path, lines: list[str], header: str = FULL_HEADER) -> Path:
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


async def snapshot(pii: PiiCipher) -> dict[str, Any]:
    """Every insured person (decrypted, by blind index), their balances and ledger entries.

    Ids, timestamps and ciphertexts differ between two runs that load the same data
    (sequences, clocks, nonces): everything else must be equal.
    """
    persons: dict[str, Any] = {}
    for p in await InsuredPerson.all().order_by("id"):
        persons[p.id_hash] = {
            "psn_no": p.psn_no,
            "name": pii.decrypt(p.name_enc, purpose="name"),
            "name_hash": p.name_hash,
            "id_type": p.id_type,
            "id_number": pii.decrypt(p.id_number_enc, purpose="id_number"),
            "insurance_type": p.insurance_type,
            "region_code": p.region_code,
            "has_personal_account": p.has_personal_account,
            "voucher_activated": p.voucher_activated,
            "status": p.status,
            "guardian_hashes": p.guardian_hashes,
        }
    hash_of = dict(await InsuredPerson.all().values_list("id", "id_hash"))
    accounts: dict[str, Any] = {}
    for a in await Account.all():
        assert await ledger.verify_account(a.id), "balance ≠ Σ entries"
        entries = await (
            LedgerEntry.filter(account_id=a.id).order_by("id")
            .values_list("amount_fen", "balance_after_fen", "kind", "note")
        )
        accounts[hash_of[a.person_id]] = {"balance": a.balance_fen, "entries": [tuple(e) for e in entries]}
    return {"persons": persons, "accounts": accounts}


async def clear_registry() -> None:
    await LedgerEntry.all().delete()
    await Account.all().delete()
    await InsuredPerson.all().delete()
