"""The ledger: the registry import credits through it, idempotently; balances = Σ entries."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from server import keys
from server.bulk.registry_import import import_csv
from server.domain import ledger
from server.domain.models import Account, LedgerEntry
from server.domain.registry import HEADER

ROW = "李秀英,resident_id,420102195806122242,employee,420100,true,true,active,{balance}"


async def test_registry_import_posts_only_the_difference(
    app: web.Application, tmp_path: Path
) -> None:
    csv = tmp_path / "registry.csv"
    pii = app[keys.pii_key]
    csv.write_text(",".join(HEADER) + "\n" + ROW.format(balance=120_000) + "\n", encoding="utf-8")
    await import_csv(csv, pii=pii)
    await import_csv(csv, pii=pii)  # the same file again changes nothing
    account = await Account.get()
    assert account.balance_fen == 120_000
    assert await LedgerEntry.filter(account_id=account.id).count() == 1
    csv.write_text(",".join(HEADER) + "\n" + ROW.format(balance=100_000) + "\n", encoding="utf-8")
    await import_csv(csv, pii=pii)
    amounts = (
        await LedgerEntry.filter(account_id=account.id)
        .order_by("id")
        .values_list("amount_fen", flat=True)
    )
    assert amounts == [120_000, -20_000]
    assert await ledger.verify_account(account.id)
    assert (await Account.get()).balance_fen == 100_000


async def test_a_debit_never_goes_below_zero(app: web.Application) -> None:
    from tests.factories import add_person

    person = await add_person(app, "张伟", balance_fen=500)
    try:
        await ledger.credit(person.id, -501, kind="adjustment")
    except Exception as err:  # noqa: BLE001
        assert getattr(err, "code", None) == "INSUFFICIENT_BALANCE"
    else:
        raise AssertionError("overdraft accepted")
    assert await ledger.credit(person.id, -500, kind="adjustment") == 0
    assert await ledger.verify_account((await Account.get(person_id=person.id)).id)
