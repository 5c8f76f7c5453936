"""The bulk registry import (issue 18): rejects with reasons, --strict, --dry-run, crash
and re-run safety, idempotence — on whichever backend the suite runs (SQLite, PostgreSQL)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from aiohttp import web

from server import keys
from server.bulk.pipeline import Hooks
from server.bulk.registry_import import import_csv
from server.domain import ledger
from server.domain.errors import DomainError
from server.domain.identity import make_resident_id
from server.domain.models import Account, InsuredPerson, LedgerEntry
from server.domain.registry import HEADER
from tests.bulk.helpers import clear_registry, person_id_number, row, snapshot, write_csv

BAD_CHECKSUM = person_id_number(3)[:-1] + ("0" if person_id_number(3)[-1] != "0" else "1")
UNKNOWN_AREA = make_resident_id("990101")  # a valid checksum, area 99: no province


class Crash(Exception):
    """Stands for the process dying at that point."""


def _reject_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_rejected_rows_are_reported_with_line_and_reason(app: web.Application, tmp_path: Path) -> None:
    pii = app[keys.pii_key]
    lines = [
        row(0),                                                    # line 2 ok
        row(1).replace(person_id_number(1), BAD_CHECKSUM),         # 3 bad checksum
        row(2).replace(",420100,", ",990100,"),                    # 4 unknown region (region_code)
        row(4).replace(person_id_number(4), UNKNOWN_AREA),         # 5 unknown region (ID area)
        row(5),                                                    # 6 ok
        row(5, name="另一个名字"),                                   # 7 duplicate of line 6
        row(6).replace(",true,true,", ",yes,true,"),               # 8 malformed boolean
        row(8).replace(",8000,", ",-5,"),                          # 9 malformed: negative balance
        row(9) + ",extra",                                         # 10 malformed: column count
        row(10, guardians=f"{person_id_number(0)};{BAD_CHECKSUM}"),  # 11 guardian bad checksum
        '"broken,quote"x,resident_id,1,employee,420100,true,true,active,0,',  # 12 CSV error
        row(12, guardians=f"{person_id_number(0)};{person_id_number(2)}"),  # 13 ok, guardians
        row(0, balance=1),                                         # 14 duplicate of line 2 (later batch)
    ]
    path = write_csv(tmp_path / "reg.csv", lines)
    report = tmp_path / "rejects.csv"
    summary = await import_csv(path, pii=pii, strict=False, reject_path=report, batch_size=4)

    assert (summary.rows, summary.created, summary.rejected) == (13, 3, 10)
    got = [(r["line"], r["reason"], r["field"]) for r in _reject_rows(report)]
    assert got == [
        ("3", "bad_checksum", "id_number"),
        ("4", "unknown_region", "region_code"),
        ("5", "unknown_region", "id_number"),
        ("7", "duplicate", "id_number"),
        ("8", "malformed", "has_personal_account"),
        ("9", "malformed", "balance_fen"),
        ("10", "malformed", ""),
        ("11", "bad_checksum", "guardian_id_numbers"),
        ("12", "malformed", ""),
        ("14", "duplicate", "id_number"),
    ]
    rows = _reject_rows(report)
    assert rows[3]["message"] == "与第 6 行是同一人" and rows[9]["message"] == "与第 2 行是同一人"
    text = report.read_text(encoding="utf-8")
    for i in (0, 1, 2, 5, 6, 8, 9, 10):  # personal data never in clear in the report
        assert person_id_number(i) not in text
    assert rows[0]["id_number_masked"] == BAD_CHECKSUM[:4] + "*" * 10 + BAD_CHECKSUM[-4:]
    assert summary.by_reason == {"malformed": 4, "bad_checksum": 2, "unknown_region": 2, "duplicate": 2}
    # the good rows are in, the first of the duplicates won, guardians as blind indexes
    assert await InsuredPerson.all().count() == 3
    kept = await InsuredPerson.get(id_hash=_hash(app, person_id_number(0)))
    assert (await Account.get(person_id=kept.id)).balance_fen == 0  # row(0): employee, 0 分
    child = await InsuredPerson.get(id_hash=_hash(app, person_id_number(12)))
    assert child.guardian_hashes == ",".join(sorted([_hash(app, person_id_number(0)),
                                                     _hash(app, person_id_number(2))]))
    assert person_id_number(0) not in child.guardian_hashes


def _hash(app: web.Application, number: str) -> str:
    from server.domain.registry import id_hash

    return id_hash(app[keys.pii_key], "resident_id", number)


async def test_a_wrong_header_refuses_the_file(app: web.Application, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "reg.csv", [row(0)], header="name,id_number")
    with pytest.raises(DomainError) as err:
        await import_csv(path, pii=app[keys.pii_key], strict=False)
    assert err.value.code == "REGISTRY_CSV_INVALID" and "表头" in err.value.message
    # the v1.0 header (no guardian column) is still accepted
    path = write_csv(tmp_path / "old.csv", [row(0).rsplit(",", 1)[0]], header=",".join(HEADER))
    assert (await import_csv(path, pii=app[keys.pii_key])).created == 1


async def test_strict_is_all_or_nothing(app: web.Application, tmp_path: Path) -> None:
    pii = app[keys.pii_key]
    lines = [row(i) for i in range(12)]
    lines[9] = row(9).replace(person_id_number(9), BAD_CHECKSUM)  # line 11, in the third batch
    path = write_csv(tmp_path / "reg.csv", lines)
    report = tmp_path / "rejects.csv"
    with pytest.raises(DomainError) as err:
        await import_csv(path, pii=pii, strict=True, reject_path=report, batch_size=4)
    assert err.value.code == "REGISTRY_CSV_INVALID"
    assert err.value.message.startswith("第 11 行 id_number 校验位不符")
    assert "未导入任何数据" in err.value.message
    # nothing written, though two batches had gone to the database before the bad row
    assert await InsuredPerson.all().count() == 0
    assert await Account.all().count() == 0 and await LedgerEntry.all().count() == 0
    assert [r["line"] for r in _reject_rows(report)] == ["11"]
    # fixed, the same file loads whole
    lines[9] = row(9)
    write_csv(path, lines)
    summary = await import_csv(path, pii=pii, strict=True, batch_size=4)
    assert (summary.created, summary.rejected) == (12, 0)


async def test_strict_counts_a_duplicate_of_an_earlier_batch(app: web.Application, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "reg.csv", [row(0), row(1), row(2), row(0)])
    with pytest.raises(DomainError) as err:
        await import_csv(path, pii=app[keys.pii_key], strict=True, batch_size=2)
    assert err.value.message.startswith("第 5 行 id_number 与第 2 行是同一人")
    assert await InsuredPerson.all().count() == 0


async def test_dry_run_changes_nothing(app: web.Application, tmp_path: Path) -> None:
    pii = app[keys.pii_key]
    path = write_csv(tmp_path / "reg.csv", [row(i) for i in range(10)])
    await import_csv(path, pii=pii, batch_size=3)
    before = await snapshot(pii)
    raw_before = sorted(await InsuredPerson.all().values_list("id", "name_enc", "id_number_enc", "updated_at"))
    changed = [row(i) for i in range(10)]
    changed[1] = row(1, status="suspended")      # updated
    changed[2] = row(2, balance=777)              # balance moves
    changed += [row(10), row(11)]                 # created
    changed.append(row(3).replace(person_id_number(3), BAD_CHECKSUM))
    write_csv(path, changed)

    summary = await import_csv(path, pii=pii, dry_run=True, strict=False, batch_size=3)

    assert summary.dry_run
    assert (summary.created, summary.updated, summary.unchanged, summary.rejected) == (2, 1, 9, 1)
    assert summary.balances == 2  # row 2's new balance, row 10's opening balance
    assert await snapshot(pii) == before
    assert sorted(await InsuredPerson.all().values_list("id", "name_enc", "id_number_enc", "updated_at")) == raw_before
    assert "would be created 2" in "\n".join(summary.lines())


async def test_rerun_changes_nothing_and_updates_post_the_difference(
    app: web.Application, tmp_path: Path
) -> None:
    pii = app[keys.pii_key]
    path = write_csv(tmp_path / "reg.csv", [row(i) for i in range(10)])
    first = await import_csv(path, pii=pii, batch_size=4)
    assert (first.created, first.updated, first.unchanged, first.balances) == (10, 0, 0, 4)
    once = await snapshot(pii)
    again = await import_csv(path, pii=pii, batch_size=4)
    assert (again.created, again.updated, again.unchanged, again.balances) == (0, 0, 10, 0)
    assert await snapshot(pii) == once

    lines = [row(i) for i in range(10)]
    lines[2] = row(2, balance=500)           # 2000 → 500
    lines[4] = row(4, name="改名")            # name only
    lines[6] = row(6, status="suspended", balance=6000)  # status, same balance
    write_csv(path, lines)
    third = await import_csv(path, pii=pii, batch_size=4)
    assert (third.created, third.updated, third.unchanged, third.balances) == (0, 2, 8, 1)
    now = await snapshot(pii)
    two = _hash(app, person_id_number(2))
    assert now["accounts"][two]["entries"] == [(2000, 2000, "import", "registry import"),
                                               (-1500, 500, "import", "registry import")]
    assert now["persons"][_hash(app, person_id_number(4))]["name"] == "改名"
    assert now["persons"][_hash(app, person_id_number(6))]["status"] == "suspended"


async def test_a_settlement_meanwhile_is_not_overwritten_but_set(app: web.Application, tmp_path: Path) -> None:
    """The import sets the balance the file says by one entry of the difference from
    the balance it finds — a debit posted between two imports stays in the ledger."""
    pii = app[keys.pii_key]
    path = write_csv(tmp_path / "reg.csv", [row(2)])
    await import_csv(path, pii=pii)
    person = await InsuredPerson.get(id_hash=_hash(app, person_id_number(2)))
    await ledger.credit(person.id, -300, kind="settlement", note="test")
    await import_csv(path, pii=pii)
    account = await Account.get(person_id=person.id)
    assert account.balance_fen == 2000 and await ledger.verify_account(account.id)
    amounts = await LedgerEntry.filter(account_id=account.id).order_by("id").values_list("amount_fen", flat=True)
    assert amounts == [2000, -300, 300]


@pytest.mark.parametrize("where", ["after_commit", "before_commit"])
async def test_a_crash_mid_file_then_a_rerun_equals_one_clean_run(
    app: web.Application, tmp_path: Path, where: str
) -> None:
    """A crash after batch 3 committed, or inside batch 3 before its commit (rolled back,
    as a dead process's transaction is); the re-run of the whole file must leave exactly
    what one clean run leaves: every person, every balance, every ledger entry."""
    pii = app[keys.pii_key]
    lines = [row(i, guardians=f"{person_id_number(i + 100)}" if i % 5 == 0 else "") for i in range(30)]
    path = write_csv(tmp_path / "reg.csv", lines)

    await import_csv(path, pii=pii, strict=False, batch_size=7)
    clean = await snapshot(pii)
    assert len(clean["persons"]) == 30 and len(clean["accounts"]) == 15
    await clear_registry()

    def crash(batch: int) -> None:
        if batch == 3:
            raise Crash

    with pytest.raises(Crash):
        await import_csv(path, pii=pii, strict=False, batch_size=7, hooks=Hooks(**{where: crash}))
    committed = 21 if where == "after_commit" else 14
    assert await InsuredPerson.all().count() == committed
    rerun = await import_csv(path, pii=pii, strict=False, batch_size=7)
    assert (rerun.created, rerun.unchanged) == (30 - committed, committed)
    assert await snapshot(pii) == clean


async def test_the_demo_registry_loads_in_one_go(app: web.Application) -> None:
    from server.demo import DEMO_REGISTRY

    summary = await import_csv(DEMO_REGISTRY, pii=app[keys.pii_key])
    assert (summary.created, summary.rejected) == (15, 0)
    assert (await import_csv(DEMO_REGISTRY, pii=app[keys.pii_key])).unchanged == 15


async def test_a_first_load_meeting_known_persons_still_catches_earlier_batches_duplicates(
    app: web.Application, tmp_path: Path
) -> None:
    """On PostgreSQL a first load appends to the seen-set without looking it up while every
    batch is new; the batch that meets persons already in the registry switches to the
    checked path, and a duplicate of a row of those first batches is still rejected, the
    known persons updated, the new ones created — the state of the same rows loaded one
    by one."""
    pii = app[keys.pii_key]
    await import_csv(write_csv(tmp_path / "known.csv", [row(i) for i in (8, 9, 10)]), pii=pii)
    lines = [row(i) for i in range(8)]           # batches 1–2: new (lines 2–9)
    lines += [row(8, balance=1), row(9), row(10)]  # batch 3: known persons (lines 10–12)
    lines += [row(11), row(1, name="重复")]       # batch 4: new + a duplicate of line 3
    summary = await import_csv(write_csv(tmp_path / "reg.csv", lines), pii=pii, strict=False,
                               reject_path=tmp_path / "rejects.csv", batch_size=4)
    # the known persons' rows are unchanged (a balance is the ledger's, not the person's)
    assert (summary.created, summary.updated, summary.unchanged, summary.rejected) == (9, 0, 3, 1)
    assert [(r["line"], r["reason"], r["message"]) for r in _reject_rows(tmp_path / "rejects.csv")] == [
        ("14", "duplicate", "与第 3 行是同一人")]
    got = await snapshot(pii)
    assert len(got["persons"]) == 12
    assert got["persons"][_hash(app, person_id_number(1))]["name"] == "测试1"  # the first line won
    eight = got["accounts"][_hash(app, person_id_number(8))]
    assert eight["entries"][-1][1] == 1  # the known person's balance set from the file
