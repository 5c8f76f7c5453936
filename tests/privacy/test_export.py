"""GET /api/v1/me/export: everything held about the caller, as JSON, streamed; files by
short-lived signed links (PIPL art. 45; issue #12)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.clock import SHANGHAI
from server.domain.models import Notice
from tests.factories import add_binding, add_person, bearer, error_of, post_signed, verified_user
from tests.family.helpers import ALICE, MOTHER, create, load_registry, png, sign, submit, upload
from tests.money.conftest import settlement_body

SECTIONS = [
    "format", "exported_at", "profile", "consents", "notice_acceptances", "applications",
    "applications_about_me", "members", "binders", "authorizations", "authorizations_received",
    "account", "settlements", "family_settlements", "notices", "subscriptions",
    "mutual_aid_refusals", "official_account", "deletion",
]


async def export_of(client: TestClient, tokens: dict[str, Any]) -> tuple[dict[str, Any], int, Any]:
    resp = await client.get("/api/v1/me/export", headers=bearer(tokens))
    assert resp.status == 200, await resp.text()
    chunks = [c async for c in resp.content.iter_any()]
    raw = b"".join(chunks)
    return json.loads(raw), len(chunks), resp


async def test_export_holds_everything_masked_with_working_file_links(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    await load_registry(app)
    alice = await verified_user(client, "alice", ALICE)
    h = bearer(alice)
    created = await create(client, h, MOTHER, "parent")
    assert (await upload(client, h, created["id"], data=png(text=b"GPS 30.5N"))).status == 201
    image = "data:image/png;base64," + base64.b64encode(png()).decode()
    assert (await sign(client, h, created["id"], signature_image=image)).status == 201
    assert (await submit(client, h, created["id"])).status == 200
    now = (datetime.now(SHANGHAI) + timedelta(minutes=1)).isoformat(timespec="seconds")  # after binding
    body = settlement_body("S1", "12.00", certno=MOTHER[2], setl_time=now)
    resp = await post_signed(client, "/settlements", body, code=institution["code"], secret=institution["secret"])
    assert resp.status == 201, await resp.text()

    doc, _, http = await export_of(client, alice)
    assert http.headers["Content-Type"].startswith("application/json")
    assert "attachment" in http.headers["Content-Disposition"]
    assert http.headers["Cache-Control"] == "private, no-store"
    assert list(doc) == SECTIONS and doc["format"] == "qinqing-export/1"
    text = json.dumps(doc, ensure_ascii=False)
    for clear in (ALICE[0], ALICE[2], MOTHER[0], MOTHER[2]):  # masked as the API masks
        assert clear not in text, clear
    p = doc["profile"]
    assert p["name"] == "张*" and p["id_number"] == "4201**********1232" and p["realname_verified"]
    assert p["wechat"]["openid"] == "demo-alice" and p["insurance"]["region_code"]
    assert sorted(c["purpose"] for c in doc["consents"]) == [
        "face", "id_documents", "medical_records", "notices"
    ]
    assert doc["notice_acceptances"][0]["notice_version"] == "2026-12"

    (application,) = doc["applications"]
    assert application["state"] == "active" and application["member"]["name"] == "李*英"
    assert [e["to_state"] for e in application["events"]][:2] == ["draft", "materials"]
    assert application["events"][-1]["to_state"] == "active"
    (material,) = application["materials"]
    assert material["kind"] == "household_register" and material["size"] > 0
    (commitment,) = application["commitments"]
    assert commitment["version"] and commitment["signature_image"]["download_url"]
    (member,) = doc["members"]
    assert member["state"] == "active" and member["member"]["name"] == "李*英"
    (family,) = doc["family_settlements"]
    assert family["withdrawn"] is False and [s["setl_id"] for s in family["items"]] == ["S1"]
    assert [n["kind"] for n in doc["notices"]] == ["family_settlement"]
    assert doc["deletion"] is None and doc["settlements"] == []

    # the material's link: the file without its metadata, no bearer token needed
    got = await client.get(material["download_url"])
    assert got.status == 200 and got.headers["Content-Type"] == "image/png"
    data = await got.read()
    assert data.startswith(b"\x89PNG") and b"GPS" not in data
    assert got.headers["Cache-Control"] == "private, no-store"
    sig = await client.get(commitment["signature_image"]["download_url"])
    assert sig.status == 200 and (await sig.read()).startswith(b"\x89PNG")

    # an altered link is refused; an expired one too
    url = urlsplit(material["download_url"])
    q = {k: v[0] for k, v in parse_qs(url.query).items()}
    other = await client.get(url.path, params={**q, "u": str(int(q["u"]) + 1)})
    assert other.status == 403 and (await error_of(other))["code"] == "DOWNLOAD_LINK_INVALID"
    forged = await client.get(url.path, params={**q, "sig": "0" * 64})
    assert forged.status == 403
    app[keys.links_key].clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    late = await client.get(material["download_url"])
    assert late.status == 403 and (await error_of(late))["code"] == "DOWNLOAD_LINK_EXPIRED"


async def test_the_member_side_and_the_account(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    member = await add_person(app, "李秀英", balance_fen=10_000)
    mother = await verified_user(client, "mother", member)
    binder = await verified_user(client, "binder", await add_person(app, "王芳"))
    await add_binding(binder["user"]["id"], member)
    resp = await post_signed(
        client, "/settlements", settlement_body("S1", "30.00", psn_no=member.psn_no),
        code=institution["code"], secret=institution["secret"],
    )
    assert resp.status == 201
    doc, _, _ = await export_of(client, mother)
    (b,) = doc["binders"]
    assert b["binder"]["name"] == "王*" and b["state"] == "active"
    assert [s["setl_id"] for s in doc["settlements"]] == ["S1"]
    assert doc["settlements"][0]["acct_pay"] == 3_000
    account = doc["account"]
    assert account["balance_fen"] == 7_000
    assert [(e["kind"], e["amount_fen"], e["setl_id"]) for e in account["entries"]] == [
        ("import", 10_000, None), ("settlement", -3_000, "S1")
    ]
    # the binder's copy says the member withdrew their spending, without the figures
    await client.delete("/api/v1/privacy/consents/medical_records", headers=bearer(mother))
    doc, _, _ = await export_of(client, binder)
    (fam,) = doc["family_settlements"]
    assert fam["withdrawn"] is True and fam["items"] == []


async def test_export_is_streamed_in_pieces(client: TestClient, app: web.Application) -> None:
    tokens = await verified_user(client, "alice", await add_person(app, "张伟"))
    uid = tokens["user"]["id"]
    await Notice.bulk_create(
        [
            Notice(recipient_id=uid, kind="family_settlement", dedupe_key=f"k{i}", title="家人就医结算通知",
                   data={"setl_id": f"S{i}", "institution": "测试人民医院" * 4}, state="delivered")
            for i in range(900)
        ]
    )
    doc, chunks, resp = await export_of(client, tokens)
    assert len(doc["notices"]) == 900
    assert "Content-Length" not in resp.headers  # written as it is produced, not sized first
    assert chunks > 2


async def test_export_needs_the_user(client: TestClient) -> None:
    resp = await client.get("/api/v1/me/export")
    assert resp.status == 401 and (await error_of(resp))["code"] == "UNAUTHORIZED"
