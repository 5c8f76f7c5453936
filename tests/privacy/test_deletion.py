"""DELETE /api/v1/me: withdraw everything and delete the account (PIPL art. 15, 47; issue
#12) — through the HTTP API, then the database searched for what is left of the person."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.clock import SHANGHAI
from server.domain.models import (
    Account,
    AccountDeletion,
    Application,
    Authorization,
    Binding,
    CommitmentSignature,
    Consent,
    LedgerEntry,
    Material,
    MaterialPurge,
    Notice,
    OfficialFollower,
    Settlement,
    SubscriptionGrant,
    User,
)
from server.domain.registry import id_hash, name_hash
from tests.factories import (
    add_person,
    authorize,
    bearer,
    demo_code,
    error_of,
    post_signed,
    verified_user,
)
from tests.family.helpers import (
    ALICE,
    MOTHER,
    WIFE,
    create,
    load_registry,
    png,
    sign,
    submit,
    upload,
)
from tests.money.conftest import settlement_body
from tests.privacy import scan

ALICE_PHONE = "13812345678"
MOTHER_PHONE = "13987654321"
CHENGDU, YICHANG = "510100", "420500"  # cross-province 共济 (tests/money/test_authorizations.py)


async def bind_via_api(
    client: TestClient, h: dict[str, str], person: tuple[str, str, str], relationship: str, *, phone: str
) -> dict[str, Any]:
    """The whole binding flow with a 户口本 page and a signature image; the application."""
    import base64

    app = await create(client, h, person, relationship, phone=phone)
    assert (await upload(client, h, app["id"], data=png(text=b"owner"))).status == 201
    image = "data:image/png;base64," + base64.b64encode(png()).decode()
    assert (await sign(client, h, app["id"], signature_image=image)).status == 201
    resp = await submit(client, h, app["id"])
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["state"] == "active", out
    return out


async def settle(client: TestClient, institution: dict[str, str], setl_id: str, certno: str, amount: str) -> None:
    later = (datetime.now(SHANGHAI) + timedelta(minutes=1)).isoformat(timespec="seconds")
    body = settlement_body(setl_id, amount, certno=certno, setl_time=later)
    resp = await post_signed(client, "/settlements", body, code=institution["code"], secret=institution["secret"])
    assert resp.status == 201, await resp.text()


def uploaded_files(app: web.Application) -> list[Path]:
    root = Path(app[keys.storage_key].root)
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def alice_journey(client: TestClient, app: web.Application, institution: dict[str, str]) -> dict[str, Any]:
    """张伟 (alice) binds his mother, is bound by his wife, authorizes his mother's 共济,
    follows the official account: every table gets a row about him."""
    await load_registry(app)
    alice = await verified_user(client, "alice", ALICE)
    wife = await verified_user(client, "wangfang", WIFE)
    await bind_via_api(client, bearer(alice), MOTHER, "parent", phone=MOTHER_PHONE)
    await bind_via_api(client, bearer(wife), ALICE, "spouse", phone=ALICE_PHONE)
    mother_person = (await Binding.get(binder_id=alice["user"]["id"]).prefetch_related("member")).member
    mother_person.name, mother_person.id_number = MOTHER[0], MOTHER[2]
    assert (await authorize(client, alice, mother_person)).status == 201
    # a refused 共济 request (kept for the bot), a subscription grant, the OA follower
    assert (await authorize(client, alice, mother_person)).status == 409
    await SubscriptionGrant.create(user_id=alice["user"]["id"], template_id="tpl-1", remaining=2)
    await OfficialFollower.create(oa_openid="oa-alice", unionid="union-alice")
    # the mother's visit is paid from alice's account: notices to alice wait (pending)
    await settle(client, institution, "S1", MOTHER[2], "3000.00")
    await settle(client, institution, "S2", ALICE[2], "20.00")  # alice's own visit
    uid = alice["user"]["id"]
    # binder, 共济, own visit, and "your wife bound you" (member_bound)
    assert await Notice.filter(recipient_id=uid, state="pending").count() == 4
    assert len(uploaded_files(app)) == 4  # two 户口本 pages, two signatures
    return alice


def needles(app: web.Application) -> tuple[list[str], list[str]]:
    """alice in clear, and the blind indexes that would re-identify her."""
    pii = app[keys.pii_key]
    clear = [ALICE[0], ALICE[2], ALICE_PHONE, "demo-alice", "union-alice", "oa-alice"]
    hashes = [
        id_hash(pii, "resident_id", ALICE[2]),
        name_hash(pii, ALICE[0]),
        pii.blind_index(ALICE_PHONE, purpose="phone"),
    ]
    return clear, hashes


async def assert_nothing_identifying(app: web.Application) -> None:
    clear, hashes = needles(app)
    assert await scan.find(clear) == []
    # the registry (参保登记) is the bureau's record, not the account's: it keeps its own
    # blind index of the person; nothing else may
    assert await scan.find(hashes, skip_tables={"insured_persons"}) == []
    assert {"users", "applications", "notices", "privacy_consents", "official_followers"} <= scan.tables()


async def test_deleting_an_account_leaves_nothing_identifying(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    alice = await alice_journey(client, app, institution)
    uid = alice["user"]["id"]
    clear, hashes = needles(app)
    assert await scan.find(["demo-alice", "union-alice"])  # the search finds her before
    assert await scan.find(hashes, skip_tables={"insured_persons"})
    ledger_before = await LedgerEntry.all().order_by("id").values_list("id", "amount_fen", "balance_after_fen")
    settlements_before = await Settlement.all().order_by("id").values_list("setl_id", "acct_pay_fen", "member_id")

    resp = await client.delete("/api/v1/me", headers=bearer(alice))
    assert resp.status == 202, await resp.text()
    out = await resp.json()
    assert out["state"] == "done" and out["message"] == "账户已注销。" and out["finished_at"]
    assert [d["what"] for d in out["done"]] == [
        "sessions", "bindings", "authorizations", "files", "applications", "notices", "consents",
        "followers", "profile",
    ]
    bindings_line = next(d["text"] for d in out["done"] if d["what"] == "bindings")
    assert "2 个" in bindings_line
    kept = {k["what"]: k for k in out["kept"]}
    assert "settlements" in kept and "第四十七条" in kept["settlements"]["why"]

    # sessions and refresh tokens died at once
    me = await client.get("/api/v1/me", headers=bearer(alice))
    assert me.status == 401 and (await error_of(me))["code"] == "SESSION_REVOKED"
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": alice["refresh_token"]})
    assert again.status == 401

    # bindings both ways ended, the 共济 authorization too (nothing active is left)
    assert await Binding.filter(state="active").count() == 0
    assert await Authorization.filter(state="active").count() == 0
    assert await Notice.filter(recipient_id=uid, state="pending").count() == 0
    assert await Notice.filter(recipient_id=uid, state="cancelled").count() == 4
    assert await Notice.filter(recipient_id=uid).exclude(data={}).count() == 0
    # files gone from disk (the wife's own 承诺书 signature stays: hers, not alice's data),
    # each material purge logged
    (left,) = await CommitmentSignature.filter(signature_image_key__isnull=False)
    assert uploaded_files(app) == [app[keys.storage_key].path_of(left.signature_image_key)]
    assert await Material.all().count() == 0
    assert await MaterialPurge.filter(reason="account_deleted").count() == 2
    assert await CommitmentSignature.filter(user_id=uid, signature_image_key__isnull=False).count() == 0
    # consents withdrawn (kept as a record, without address)
    assert await Consent.filter(user_id=uid, withdrawn_at__isnull=True).count() == 0
    assert await Consent.filter(user_id=uid, ip__isnull=False).count() == 0
    # settlements and the ledger stay as they were (linked to registry persons only)
    assert await LedgerEntry.all().order_by("id").values_list("id", "amount_fen", "balance_after_fen") == ledger_before
    after = await Settlement.all().order_by("id").values_list("setl_id", "acct_pay_fen", "member_id")
    assert after == settlements_before and len(after) == 2
    assert await Application.filter(state="active").count() == 0
    assert (await AccountDeletion.get(user_id=uid)).state == "done"

    await assert_nothing_identifying(app)

    # the same WeChat user starts again with a new, empty account
    fresh = await client.post("/api/v1/auth/login", json={"code": demo_code("alice")})
    assert fresh.status == 200
    assert (await fresh.json())["user"]["id"] != uid


async def test_the_quota_returns_and_the_unbind_lock_does_not_hold_a_deletion(
    client: TestClient, app: web.Application
) -> None:
    me = await add_person(app, "陈静", region=CHENGDU, birth=date(1960, 2, 14), balance_fen=100_000)
    tokens = await verified_user(client, "chen", me)
    member = await add_person(app, "陈母", region=YICHANG, birth=date(1935, 1, 1))
    resp = await authorize(client, tokens, member, quota_fen=30_000)
    assert resp.status == 201, await resp.text()
    assert (await Account.get(person_id=me.id)).balance_fen == 70_000
    assert (await client.delete("/api/v1/me", headers=bearer(tokens))).status == 202
    assert (await Account.get(person_id=me.id)).balance_fen == 100_000
    assert (await Authorization.get(authorizer_person_id=me.id)).state == "revoked"


async def test_a_crash_half_way_is_finished_on_retry(
    client: TestClient, app: web.Application, institution: dict[str, str]
) -> None:
    alice = await alice_journey(client, app, institution)
    uid = alice["user"]["id"]
    service = app[keys.deletion_key]
    real = service.steps["notices"]

    async def crash(run: Any) -> int:
        raise ConnectionResetError("the database went away")

    service.steps["notices"] = crash
    resp = await client.delete("/api/v1/me", headers=bearer(alice))
    assert resp.status == 202
    out = await resp.json()
    assert out["state"] == "in_progress" and out["finished_at"] is None
    d = await AccountDeletion.get(user_id=uid)
    assert d.state == "started"
    assert d.steps_done == ["sessions", "bindings", "authorizations", "files", "applications"]
    # half-way: the login door and the sessions are already closed
    assert (await client.get("/api/v1/me", headers=bearer(alice))).status == 401
    assert (await User.get(id=uid)).openid.startswith("deleted:")
    # binder, 共济, own visit, and "your wife bound you" (member_bound)
    assert await Notice.filter(recipient_id=uid, state="pending").count() == 4

    service.steps["notices"] = real
    assert await service.resume(older_than_seconds=3600) == 0  # too recent for the job
    assert await service.resume(older_than_seconds=0) == 1
    d = await AccountDeletion.get(user_id=uid)
    assert d.state == "done" and d.attempts == 2
    assert d.steps_done[-4:] == ["notices", "consents", "followers", "profile"]
    await assert_nothing_identifying(app)
    # running again changes nothing (idempotent)
    assert (await service.delete_account(uid))["state"] == "done"
    assert await service.resume(older_than_seconds=0) == 0


@pytest.mark.parametrize("step", ["sessions", "bindings", "authorizations", "files", "applications", "consents"])
async def test_every_step_can_be_repeated(
    client: TestClient, app: web.Application, institution: dict[str, str], step: str
) -> None:
    """A step that did its work and crashed before recording it runs again harmlessly."""
    alice = await alice_journey(client, app, institution)
    service = app[keys.deletion_key]
    real = service.steps[step]
    calls = 0

    async def twice(run: Any) -> int:
        nonlocal calls
        calls += 1
        n = await real(run)
        if calls == 1:
            raise TimeoutError("crashed after the work, before recording it")
        return n

    service.steps[step] = twice
    assert (await (await client.delete("/api/v1/me", headers=bearer(alice))).json())["state"] == "in_progress"
    assert await service.resume(older_than_seconds=0) == 1
    assert calls == 2
    await assert_nothing_identifying(app)


async def test_an_account_never_verified_is_deleted_too(client: TestClient) -> None:
    from tests.factories import login

    tokens = await login(client, "newbie")
    resp = await client.delete("/api/v1/me", headers=bearer(tokens))
    assert resp.status == 202 and (await resp.json())["state"] == "done"
    user = await User.get(id=tokens["user"]["id"])
    assert user.openid.startswith("deleted:") and user.unionid is None
    assert await Consent.filter(user_id=user.id, withdrawn_at__isnull=True).count() == 0
    assert await scan.find(["demo-newbie", "union-newbie"]) == []
