"""GET /api/v1/me: masked identity and insurance summary, read in one query."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.bulk.registry_import import import_csv
from server.demo import DEMO_REGISTRY
from server.domain.models import User
from server.domain.registry import find_by_id
from tests.factories import bearer, error_of, login


async def test_me_of_a_verified_user_is_masked_with_insurance(client: TestClient, app: web.Application) -> None:
    pii = app[keys.pii_key]
    await import_csv(DEMO_REGISTRY, pii=pii)
    person = await find_by_id(pii, "resident_id", "420102199003071232")
    assert person is not None
    tokens = await login(client, "zhangwei")
    user = await User.get(id=tokens["user"]["id"])
    user.realname_verified = True
    user.name_enc = pii.encrypt("张伟", purpose="name")
    user.id_number_enc = pii.encrypt("420102199003071232", purpose="id_number")
    user.person = person
    await user.save()

    resp = await client.get("/api/v1/me", headers=bearer(tokens))
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "id": user.id,
        "realname_verified": True,
        "name": body["name"],
        "id_number": body["id_number"],
        "insurance": {
            "insurance_type": "employee",
            "region_code": "420100",
            "status": "active",
            "has_personal_account": True,
            "voucher_activated": True,
        },
    }
    assert body["name"] != "张伟" and body["name"].startswith("张")
    assert "199003071232" not in body["id_number"] and body["id_number"].endswith("1232")


async def test_me_of_a_new_user_has_no_identity(client: TestClient) -> None:
    tokens = await login(client, "newbie")
    resp = await client.get("/api/v1/me", headers=bearer(tokens))
    assert (await resp.json()) == {"id": tokens["user"]["id"], "realname_verified": False}


async def test_me_of_a_deleted_user_is_401(client: TestClient) -> None:
    tokens = await login(client, "gone")
    await User.filter(id=tokens["user"]["id"]).delete()
    resp = await client.get("/api/v1/me", headers=bearer(tokens))
    assert resp.status == 401
    assert (await error_of(resp))["code"] == "UNAUTHORIZED"


async def test_access_log_line_is_one_json_object(client: TestClient, caplog) -> None:
    import json
    import logging

    tokens = await login(client, "logan")
    caplog.set_level(logging.INFO, logger="server.access")
    caplog.clear()  # the login's lines (the run logs at INFO: tests/security/logscan.py)
    # an id that does not look like one is replaced by ours (never logged or echoed)
    resp = await client.get("/api/v1/me", headers={**bearer(tokens), "X-Request-Id": 'odd"rid\\1'})
    rid = resp.headers["X-Request-Id"]
    assert resp.status == 200 and rid != 'odd"rid\\1' and len(rid) == 32
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "server.access"]
    assert len(lines) == 1
    line = lines[0]
    assert line.pop("ms") >= 0
    assert line == {"rid": rid, "method": "GET", "route": "/api/v1/me", "status": 200,
                    "user": tokens["user"]["id"]}


async def test_a_request_id_never_carries_personal_data_into_logs(client: TestClient, caplog) -> None:
    import json
    import logging

    caplog.set_level(logging.INFO, logger="server.access")
    resp = await client.get("/healthz", headers={"X-Request-Id": "call-13812345678"})
    rid = resp.headers["X-Request-Id"]
    assert "5678" not in rid and len(rid) == 32  # replaced by ours, not echoed masked
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "server.access"]
    assert [line["rid"] for line in lines] == [rid]
    assert "13812345678" not in caplog.text
