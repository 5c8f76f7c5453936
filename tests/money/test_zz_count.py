import logging
from tests.factories import add_person, add_binding, authorize, post_signed, verified_user
from tests.money.conftest import settlement_body
from datetime import date

async def test_count(client, app, institution, caplog):
    member = await add_person(app, "李秀英", balance_fen=100)
    for i in range(2):
        p = await add_person(app, f"张{i}", birth=date(1980+i,1,1), balance_fen=100000)
        t = await verified_user(client, f"u{i}", p)
        await authorize(client, t, member)
    await add_binding(t["user"]["id"], member)
    who = {"code": institution["code"], "secret": institution["secret"]}
    caplog.set_level(logging.DEBUG, logger="tortoise.db_client")
    caplog.clear()
    r = await post_signed(client, "/settlements", settlement_body("X1", "50.00", psn_no=member.psn_no), **who)
    assert r.status == 201
    for rec in caplog.records:
        print(rec.getMessage()[:160])
