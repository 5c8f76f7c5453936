"""The privacy notice and separate consent per purpose, through the HTTP API (issue #12).

PIPL art. 17 / 30 (tell before collecting), art. 14 / 29 (separate consent for sensitive
data), art. 15 (withdraw): what is accepted is recorded like the 承诺书 — version, hashes,
time, user, address, user agent — and a new notice version asks again only for the
purposes whose text changed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.documents import DEFAULT_CONFIG_DIR, DocumentBook
from server.domain.errors import DomainError
from server.domain.models import Consent, PrivacyNoticeAcceptance
from server.http_errors import status_of
from tests.factories import bearer, consent_all, error_of, login

PURPOSES = ["face", "id_documents", "medical_records", "notices"]
MIGRATIONS = Path(__file__).resolve().parents[2] / "server" / "migrations"


async def notice(client: TestClient) -> dict[str, Any]:
    resp = await client.get("/api/v1/privacy/notice")  # readable before logging in
    assert resp.status == 200
    return await resp.json()


async def consents(client: TestClient, tokens: dict[str, Any]) -> dict[str, Any]:
    resp = await client.get("/api/v1/privacy/consents", headers=bearer(tokens))
    assert resp.status == 200
    return await resp.json()


def granted(status: dict[str, Any]) -> list[str]:
    return sorted(i["purpose"] for i in status["items"] if i["granted"])


async def test_notice_is_versioned_with_a_text_per_purpose(client: TestClient) -> None:
    n = await notice(client)
    assert n["version"] == "2026-12" and n["title"] == "亲情医保个人信息保护告知书"
    assert n["sha256"] == hashlib.sha256(n["text"].encode()).hexdigest()
    assert [p["id"] for p in n["purposes"]] == PURPOSES
    assert all(p["title"] and p["text"] for p in n["purposes"])
    for phrase in ("敏感个人信息", "撤回", "注销", "90日", "12393"):
        assert phrase in n["text"], phrase


async def test_each_purpose_is_recorded_separately_with_its_text_hash(
    client: TestClient,
) -> None:
    tokens = await login(client, "alice", consent=False)
    first = await consents(client, tokens)
    assert first["version"] is None and first["current_version"] == "2026-12"
    assert [i["purpose"] for i in first["items"]] == PURPOSES
    assert granted(first) == []

    n = await notice(client)
    resp = await client.post(
        "/api/v1/privacy/consents",
        json={"version": n["version"], "sha256": n["sha256"], "purposes": ["face", "notices"]},
        headers={**bearer(tokens), "User-Agent": "wechat-devtools/1.0"},
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["version"] == "2026-12" and granted(body) == ["face", "notices"]
    face = next(i for i in body["items"] if i["purpose"] == "face")
    assert face["accepted_at"].endswith("+08:00") and face["withdrawn_at"] is None
    assert face["renewal_needed"] is False

    rows = await Consent.filter(user_id=tokens["user"]["id"]).order_by("purpose")
    assert [r.purpose for r in rows] == ["face", "notices"]
    texts = {p["id"]: p["text"] for p in n["purposes"]}
    for r in rows:
        assert r.notice_version == "2026-12" and r.notice_sha256 == n["sha256"]
        assert r.purpose_sha256 == hashlib.sha256(texts[r.purpose].encode()).hexdigest()
        assert r.ip == "127.0.0.1" and r.user_agent == "wechat-devtools/1.0"
    assert await PrivacyNoticeAcceptance.filter(user_id=tokens["user"]["id"]).count() == 1

    # the same again adds nothing new for what is already in force; more purposes add rows
    await consent_all(client, tokens)
    assert await Consent.filter(user_id=tokens["user"]["id"]).count() == 4
    assert granted(await consents(client, tokens)) == sorted(PURPOSES)


async def test_accepting_nothing_still_records_the_notice(client: TestClient) -> None:
    tokens = await login(client, "alice", consent=False)
    body = await consent_all(client, tokens, purposes=[])
    assert body["version"] == "2026-12" and granted(body) == []
    assert await Consent.filter(user_id=tokens["user"]["id"]).count() == 0


async def test_refusals(client: TestClient) -> None:
    tokens = await login(client, "alice", consent=False)
    n = await notice(client)
    h = bearer(tokens)
    bad = await client.post(
        "/api/v1/privacy/consents",
        json={"version": n["version"], "sha256": "0" * 64, "purposes": ["face"]},
        headers=h,
    )
    assert bad.status == 422 and (await error_of(bad))["code"] == "PRIVACY_NOTICE_MISMATCH"
    unknown = await client.post(
        "/api/v1/privacy/consents",
        json={"version": n["version"], "sha256": n["sha256"], "purposes": ["face", "dna"]},
        headers=h,
    )
    err = await error_of(unknown)
    assert unknown.status == 422 and err["fields"] == {"purposes": "UNKNOWN_PURPOSE"}
    nobody = await client.post(
        "/api/v1/privacy/consents",
        json={"version": n["version"], "sha256": n["sha256"], "purposes": []},
    )
    assert nobody.status == 401
    missing = await client.delete("/api/v1/privacy/consents/dna", headers=h)
    assert missing.status == 404 and (await error_of(missing))["code"] == "PURPOSE_NOT_FOUND"
    assert await Consent.all().count() == 0 and await PrivacyNoticeAcceptance.all().count() == 0


async def test_withdraw_one_purpose(client: TestClient) -> None:
    tokens = await login(client, "alice", consent=False)
    await consent_all(client, tokens)
    resp = await client.delete("/api/v1/privacy/consents/medical_records", headers=bearer(tokens))
    assert resp.status == 200
    body = await resp.json()
    assert body["purpose"] == "medical_records" and body["granted"] is False
    assert body["withdrawn_at"].endswith("+08:00") and "不能再查看" in body["effect"]
    status = await consents(client, tokens)
    assert granted(status) == ["face", "id_documents", "notices"]
    item = next(i for i in status["items"] if i["purpose"] == "medical_records")
    assert item["withdrawn_at"] == body["withdrawn_at"]
    # withdrawing again changes nothing; consenting again adds a new row (history kept)
    again = await client.delete("/api/v1/privacy/consents/medical_records", headers=bearer(tokens))
    assert again.status == 200 and (await again.json())["withdrawn_at"] == body["withdrawn_at"]
    await consent_all(client, tokens, ["medical_records"])
    rows = await Consent.filter(user_id=tokens["user"]["id"], purpose="medical_records").order_by("id")
    assert len(rows) == 2 and rows[0].withdrawn_at is not None and rows[1].withdrawn_at is None


def _newer_book(tmp_path: Path, *, change: str) -> DocumentBook:
    """The shipped notice plus a 2027-01 version in which only ``change``'s text differs."""
    shipped = DocumentBook.load("privacy_notice")
    current = shipped.versions[-1]
    lines = [(DEFAULT_CONFIG_DIR / "privacy_notice.toml").read_text(encoding="utf-8")]
    lines.append(
        '\n[[versions]]\nversion = "2027-01"\ntitle = "亲情医保个人信息保护告知书"\n'
        f"published_at = 2027-01-01T00:00:00+08:00\ntext = {_toml(current.text + '(2027年修订)')}\n"
    )
    for p in current.purposes:
        text = p.text + "(已更新)" if p.id == change else p.text
        lines.append(f'\n[[versions.purposes]]\nid = "{p.id}"\ntitle = "{p.title}"\ntext = {_toml(text)}\n')
    (tmp_path / "privacy_notice.toml").write_text("".join(lines), encoding="utf-8")
    return DocumentBook.load("privacy_notice", config_dir=tmp_path)


def _toml(text: str) -> str:
    return '"""' + text.replace("\\", "\\\\").replace('"""', '\\"""') + '"""'


async def test_a_new_version_asks_again_only_for_changed_purposes(
    client: TestClient, app: web.Application, tmp_path: Path
) -> None:
    tokens = await login(client, "alice", consent=False)
    await consent_all(client, tokens)
    service = app[keys.consents_key]
    service.book = _newer_book(tmp_path, change="face")
    service.clock = lambda: datetime(2027, 1, 2, tzinfo=UTC)

    status = await consents(client, tokens)
    assert status["version"] == "2026-12" and status["current_version"] == "2027-01"
    renew = {i["purpose"]: i["renewal_needed"] for i in status["items"]}
    assert renew == {"face": True, "id_documents": False, "medical_records": False, "notices": False}
    uid = tokens["user"]["id"]
    with pytest.raises(DomainError) as e:
        await service.require(uid, "face")
    assert status_of(e.value) == 403 and e.value.code == "CONSENT_REQUIRED"
    assert e.value.detail and e.value.detail["purpose"] == "face" and e.value.detail["renewal_needed"]
    await service.require(uid, "id_documents")  # unchanged text: the 2026-12 consent holds

    # the old version can no longer be accepted; the new one adds a row for face only
    old = await client.post(
        "/api/v1/privacy/consents",
        json={"version": "2026-12", "sha256": DocumentBook.load("privacy_notice").versions[-1].sha256,
              "purposes": ["face"]},
        headers=bearer(tokens),
    )
    assert old.status == 409 and (await error_of(old))["code"] == "PRIVACY_NOTICE_OUTDATED"
    body = await consent_all(client, tokens)
    assert body["version"] == "2027-01" and not any(i["renewal_needed"] for i in body["items"])
    rows = await Consent.filter(user_id=uid).order_by("id").values_list("purpose", "notice_version")
    assert rows[4:] == [("face", "2027-01")]
    await service.require(uid, "face")


async def test_opt_in_and_withdrawal_purposes(client: TestClient, app: web.Application) -> None:
    service = app[keys.consents_key]
    tokens = await login(client, "alice", consent=False)
    uid = tokens["user"]["id"]
    for purpose in ("face", "id_documents"):  # nothing granted: refused
        with pytest.raises(DomainError) as e:
            await service.require(uid, purpose)
        assert e.value.detail and e.value.detail == {
            "purpose": purpose,
            "renewal_needed": False,
            "fix": e.value.detail["fix"],
        }
    for purpose in ("medical_records", "notices"):  # never withdrawn: allowed
        await service.require(uid, purpose)
    await consent_all(client, tokens)
    await client.delete("/api/v1/privacy/consents/notices", headers=bearer(tokens))
    with pytest.raises(DomainError):
        await service.require(uid, "notices")
    assert await service.withdrawn([uid, uid + 1000], "notices") == {uid}


async def test_consent_rows_are_append_only_in_the_database(tmp_path: Path) -> None:
    """The migration's triggers: only withdrawn_at (once) and clearing ip / user agent."""
    from tortoise.context import TortoiseContext

    from server.db import migrate, tortoise_config
    from server.settings import Settings

    settings = Settings.load(
        "test.toml", env={}, overrides={"server.data_dir": str(tmp_path), "database.schema": "migrate"}
    )
    await migrate(settings)
    ctx = TortoiseContext()
    with ctx:
        await ctx.init(config=tortoise_config(settings))
        db = ctx.db()
        try:
            now = "2026-12-01 00:00:00+00:00"
            await db.execute_script(
                "INSERT INTO users (openid, realname_verified, created_at, updated_at) "
                f"VALUES ('o1', 0, '{now}', '{now}')"
            )
            await db.execute_script(
                "INSERT INTO privacy_consents (user_id, purpose, notice_version, notice_sha256, "
                f"purpose_sha256, accepted_at, ip, user_agent) VALUES (1, 'face', 'v', 'a', 'b', '{now}', "
                "'1.2.3.4', 'ua')"
            )
            for sql in (
                "UPDATE privacy_consents SET purpose = 'notices'",
                "UPDATE privacy_consents SET ip = '5.6.7.8'",
                "DELETE FROM privacy_consents",
            ):
                with pytest.raises(Exception, match="append-only"):
                    await db.execute_script(sql)
            later = (datetime(2026, 12, 2, tzinfo=UTC) + timedelta(hours=1)).isoformat(" ")
            await db.execute_script(f"UPDATE privacy_consents SET withdrawn_at = '{later}'")
            await db.execute_script("UPDATE privacy_consents SET ip = NULL, user_agent = NULL")
            with pytest.raises(Exception, match="append-only"):
                await db.execute_script("UPDATE privacy_consents SET withdrawn_at = NULL")
        finally:
            await ctx.close_connections()


async def test_postgres_triggers_keep_consents_append_only(client: TestClient) -> None:
    """PostgreSQL pass: the migration's PL/pgSQL guard, installed on the generated test
    schema, through the ORM (only withdrawn_at once and clearing ip / user agent pass)."""
    import importlib

    from tortoise import connections

    db = connections.get("default")
    if db.capabilities.dialect != "postgres":
        pytest.skip("PostgreSQL only (the SQLite triggers have their own test)")
    migration = importlib.import_module(f"server.migrations.{next(MIGRATIONS.glob('*_privacy.py')).stem}")

    class Editor:
        client = db

    await migration._append_only(None, Editor())
    try:
        tokens = await login(client, "alice")  # consents to every purpose
        c = await Consent.filter(user_id=tokens["user"]["id"]).first()
        assert c is not None
        for change in ({"purpose": "dna"}, {"ip": "9.9.9.9"}, {"accepted_at": datetime(2020, 1, 1, tzinfo=UTC)}):
            with pytest.raises(Exception, match="append-only"):
                await Consent.filter(id=c.id).update(**change)
        with pytest.raises(Exception, match="append-only"):
            await Consent.filter(id=c.id).delete()
        with pytest.raises(Exception, match="append-only"):
            await PrivacyNoticeAcceptance.filter(user_id=tokens["user"]["id"]).update(notice_version="x")
        await Consent.filter(id=c.id).update(withdrawn_at=datetime.now(UTC), ip=None, user_agent=None)
        with pytest.raises(Exception, match="append-only"):
            await Consent.filter(id=c.id).update(withdrawn_at=None)
    finally:
        await migration._drop_guard(None, Editor())
