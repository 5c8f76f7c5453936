"""Monthly credits: ``python -m server ledger credit FILE.csv`` through the same ledger.

Idempotent by (batch_id, row): a re-run changes nothing; a changed row in a known batch
is refused with nothing of the file applied; every balance stays the sum of its entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from server import keys
from server.domain import ledger
from server.domain.credits import import_credits
from server.domain.errors import DomainError
from server.domain.models import Account, CreditRow, LedgerEntry
from tests.factories import add_person
from tests.money.conftest import run_cli

HEADER = "batch_id,row,psn_no,id_type,id_number,amount_fen,kind,note\n"


def _file(tmp_path: Path, name: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
async def people(app: web.Application) -> dict[str, Any]:
    return {
        "li": await add_person(app, "李秀英", balance_fen=1_000),
        "zhang": await add_person(app, "张伟", balance_fen=0),
        "child": await add_person(app, "张小明", insurance_type="resident"),
    }


async def _balance(person: Any) -> int:
    return (await Account.get(person_id=person.id)).balance_fen


async def test_a_batch_applies_once(
    app: web.Application, people: dict[str, Any], tmp_path: Path
) -> None:
    li, zhang = people["li"], people["zhang"]
    rows = [
        f"B-2026-12,1,{li.psn_no},,,35000,unit,12月单位划入",
        f"B-2026-12,2,,resident_id,{zhang.id_number},12000,personal,",
        f"B-2026-12,3,{li.psn_no},,,500,personal,",
        f"B-2026-12,3,{li.psn_no},,,500,personal,",  # the same row twice: applied once
    ]
    path = _file(tmp_path, "credits.csv", rows)
    summary = await import_credits(path, pii=app[keys.pii_key])
    assert (summary.rows, summary.applied, summary.skipped) == (4, 3, 1)
    assert summary.applied_fen == 47_500
    assert dict(summary.by_kind) == {"unit": 35_000, "personal": 12_500}
    assert (await _balance(li), await _balance(zhang)) == (36_500, 12_000)
    entries = await LedgerEntry.filter(kind__startswith="credit_").count()
    assert entries == 3

    again = await import_credits(path, pii=app[keys.pii_key])  # a re-run changes nothing
    assert (again.applied, again.skipped) == (0, 4)
    assert (await _balance(li), await _balance(zhang)) == (36_500, 12_000)
    assert await LedgerEntry.filter(kind__startswith="credit_").count() == entries
    for person in (li, zhang):
        assert await ledger.verify_account((await Account.get(person_id=person.id)).id)


@pytest.mark.parametrize(
    ("row", "why"),
    [
        ("B1,1,{li},,,35001,unit,", "内容与本次不同"),  # a changed row of a known batch
        ("B1,1,{li},,,35000,personal,", "内容与本次不同"),
        ("B2,1,P404,,,100,unit,", "查无此人"),
        ("B2,1,{child},,,100,unit,", "没有职工医保个人账户"),
        ("B2,1,{li},,,0,unit,", "amount_fen"),
        ("B2,1,{li},,,-5,unit,", "amount_fen"),
        ("B2,1,{li},,,1٠0,unit,", "amount_fen"),  # an Arabic-Indic zero
        ("B2,1,{li},,,12.50,unit,", "amount_fen"),
        ("B2,0,{li},,,100,unit,", "row"),
        ("B2,1,{li},,,100,bonus,", "kind"),
        ("B 2,1,{li},,,100,unit,", "batch_id"),
        ("B2,1,,resident_id,,100,unit,", "psn_no"),
    ],
)
async def test_a_bad_row_refuses_the_whole_file(
    app: web.Application, people: dict[str, Any], tmp_path: Path, row: str, why: str
) -> None:
    li = people["li"]
    pii = app[keys.pii_key]
    await import_credits(_file(tmp_path, "first.csv", [f"B1,1,{li.psn_no},,,35000,unit,"]), pii=pii)
    good = f"B3,1,{li.psn_no},,,700,unit,"  # a valid new row beside the bad one
    bad = row.format(li=li.psn_no, child=people["child"].psn_no)
    path = _file(tmp_path, "second.csv", [good, bad])
    with pytest.raises(DomainError) as info:
        await import_credits(path, pii=pii)
    assert info.value.code == "CREDIT_FILE_REFUSED" and "第 3 行" in info.value.message
    assert why in info.value.message
    assert await _balance(li) == 36_000  # nothing of the second file applied
    assert await CreditRow.all().count() == 1


async def test_a_file_that_is_not_a_credit_file(
    app: web.Application, tmp_path: Path
) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("batch_id,row,amount,kind\nB,1,1,unit\n", encoding="utf-8")
    with pytest.raises(DomainError) as info:
        await import_credits(path, pii=app[keys.pii_key])
    assert info.value.code == "CREDIT_FILE_INVALID" and "amount_fen" in info.value.message


async def test_credits_through_the_cli(
    app: web.Application, people: dict[str, Any], tmp_path: Path, settings: Any
) -> None:
    li = people["li"]
    path = _file(tmp_path, "credits.csv", [f"M-2026-12,1,{li.psn_no},,,35000,unit,单位划入"])
    rc, out, err = await run_cli(settings, "ledger", "credit", str(path))
    assert rc == 0, err
    assert "1 applied (350.00 yuan), 0 already applied" in out and "unit (单位划入): 350.00" in out
    rc, out, err = await run_cli(settings, "ledger", "credit", str(path))
    assert rc == 0 and "0 applied (0.00 yuan), 1 already applied" in out, err
    changed = _file(tmp_path, "changed.csv", [f"M-2026-12,1,{li.psn_no},,,35100,unit,单位划入"])
    rc, out, err = await run_cli(settings, "ledger", "credit", str(changed))
    assert rc == 1 and "CREDIT_FILE_REFUSED" in err and "拒绝修改" in err
    assert await _balance(li) == 36_000
