"""The member's 医保支付密码 (issue 11 point 1) through HTTP: the binder sets it in the
mini-program, institutions verify a 医保码 with it where the member's region requires it
(a policy override turns the requirement on for Wuhan, 420100)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.clock import utc_now
from server.domain.models import VoucherPassword
from server.domain.policy import DEFAULT_POLICY_PATH
from server.domain.voucher_password import weak
from tests.factories import add_binding, add_person, bearer, error_of, post_signed, verified_user

WUHAN = "420100"  # requires the password in these tests
YICHANG = "420500"  # does not (the national default)
REQUIRE_IN_WUHAN = f"""

[[entry]]
region = "{WUHAN}"
effective_from = 2021-01-02
note = "test override: Wuhan asks for the 医保支付密码"

[entry.voucher_password_required]
value = true
source = "tests/money/test_voucher_password.py"
"""


@pytest.fixture
def settings(make_settings: Any, tmp_path: Path) -> Any:
    policy = tmp_path / "policy.toml"
    policy.write_text(DEFAULT_POLICY_PATH.read_text(encoding="utf-8") + REQUIRE_IN_WUHAN, encoding="utf-8")
    cheap_hash = {"console.argon2_time_cost": 1, "console.argon2_memory_kib": 1024, "console.argon2_parallelism": 1}
    return make_settings(**{"policy.file": str(policy), **cheap_hash})


@pytest.fixture
def who(institution: dict[str, str]) -> dict[str, str]:
    return {"code": institution["code"], "secret": institution["secret"]}


async def _family(client: TestClient, app: web.Application, region: str = WUHAN) -> tuple[dict[str, str], str, Any]:
    """张伟 (verified) holding his mother's binding: his headers, the binding id, the mother."""
    me = await add_person(app, "张伟", birth=date(1990, 3, 7))
    mother = await add_person(app, "李秀英", region=region, birth=date(1958, 6, 12))
    tokens = await verified_user(client, "alice", me)
    binding = await add_binding(tokens["user"]["id"], mother)
    return bearer(tokens), str(binding.id), mother


async def _set(client: TestClient, h: dict[str, str], binding_id: str, password: str, face: str | None = None) -> Any:
    body: dict[str, Any] = {"password": password}
    if face is not None:
        body["member_face_token"] = face
    return await client.put(f"/api/v1/family/members/{binding_id}/voucher-password", json=body, headers=h)


async def _qr(client: TestClient, h: dict[str, str], binding_id: str) -> str:
    resp = await client.get(f"/api/v1/family/members/{binding_id}/voucher", headers=h)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["qr_token"])


async def _verify(client: TestClient, who: dict[str, str], qr: str, password: str | None = None) -> Any:
    body = {"qr_token": qr} if password is None else {"qr_token": qr, "password": password}
    return await post_signed(client, "/vouchers/verify", body, **who)


async def _refused(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    err = await error_of(resp)
    assert err["code"] == code, err
    return err


def test_weak_passwords() -> None:
    for pw in ("000000", "777777", "123456", "654321", "890123", "580612", "061258", "120658"):
        assert weak(pw, birth="19580612"), pw
    for pw in ("135790", "201684", "580613"):
        assert not weak(pw, birth="19580612"), pw


async def test_required_where_the_policy_says(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    h, binding_id, _ = await _family(client, app)
    qr = await _qr(client, h, binding_id)
    # nothing set yet: the binder is told to set one; the 医保码 is not used up
    err = await _refused(await _verify(client, who, qr), 409, "VOUCHER_PASSWORD_NOT_SET")
    assert "设置" in err["message"]
    assert (await _set(client, h, binding_id, "135790")).status == 204
    await _refused(await _verify(client, who, qr), 422, "VOUCHER_PASSWORD_REQUIRED")
    err = await _refused(await _verify(client, who, qr, "135791"), 403, "VOUCHER_PASSWORD_WRONG")
    assert err["attempts_left"] == 4
    resp = await _verify(client, who, qr, "135790")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["name"] == "李秀英"
    # ... and the 医保码 is used now
    await _refused(await _verify(client, who, qr, "135790"), 409, "VOUCHER_INVALID")
    # a malformed password is refused at the edge (not counted as a try)
    resp = await _verify(client, who, await _qr(client, h, binding_id), "12345")
    err = await _refused(resp, 422, "VALIDATION_FAILED")
    assert err["fields"] == {"password": "INVALID_FORMAT"}


async def test_not_required_elsewhere(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    h, binding_id, _ = await _family(client, app, region=YICHANG)
    assert (await _verify(client, who, await _qr(client, h, binding_id))).status == 200
    # a password given where none is set is nothing to compare
    assert (await _verify(client, who, await _qr(client, h, binding_id), "135790")).status == 200
    assert (await _set(client, h, binding_id, "135790")).status == 204
    assert (await _verify(client, who, await _qr(client, h, binding_id))).status == 200
    # but one given is checked when one is set
    qr = await _qr(client, h, binding_id)
    await _refused(await _verify(client, who, qr, "000001"), 403, "VOUCHER_PASSWORD_WRONG")
    assert (await _verify(client, who, qr, "135790")).status == 200


async def test_five_wrong_tries_lock_it(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    h, binding_id, mother = await _family(client, app)
    assert (await _set(client, h, binding_id, "135790")).status == 204
    qr = await _qr(client, h, binding_id)
    for left in (4, 3, 2, 1):
        err = await _refused(await _verify(client, who, qr, "999990"), 403, "VOUCHER_PASSWORD_WRONG")
        assert err["attempts_left"] == left
    resp = await _verify(client, who, qr, "999990")
    await _refused(resp, 423, "VOUCHER_PASSWORD_LOCKED")
    assert resp.headers["Retry-After"] == str(30 * 60)
    # locked: the right password too, with the time left
    resp = await _verify(client, who, qr, "135790")
    await _refused(resp, 423, "VOUCHER_PASSWORD_LOCKED")
    assert 0 < int(resp.headers["Retry-After"]) <= 30 * 60
    # 30 minutes later (the policy's lock_minutes) the right one works, and tries start over
    service = app[keys.voucher_passwords_key]
    service.clock = lambda: utc_now() + timedelta(minutes=31)
    err = await _refused(await _verify(client, who, qr, "999990"), 403, "VOUCHER_PASSWORD_WRONG")
    assert err["attempts_left"] == 4
    assert (await _verify(client, who, qr, "135790")).status == 200
    row = await VoucherPassword.get(person_id=mother.id)
    assert row.failed_count == 0 and row.locked_until is None


async def test_concurrent_guesses_get_no_more_tries(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    import asyncio

    h, binding_id, _ = await _family(client, app)
    assert (await _set(client, h, binding_id, "135790")).status == 204
    qr = await _qr(client, h, binding_id)
    guesses = [f"{n:06d}" for n in range(200001, 200011)]
    answers = await asyncio.gather(*(_verify(client, who, qr, g) for g in guesses))
    codes = sorted([(await error_of(r))["code"] for r in answers])
    assert codes.count("VOUCHER_PASSWORD_WRONG") <= 4
    assert codes.count("VOUCHER_PASSWORD_WRONG") + codes.count("VOUCHER_PASSWORD_LOCKED") == 10
    await _refused(await _verify(client, who, qr, "135790"), 423, "VOUCHER_PASSWORD_LOCKED")


async def test_changing_it_needs_the_members_face(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    h, binding_id, mother = await _family(client, app)
    assert (await _set(client, h, binding_id, "135790")).status == 204
    first = await VoucherPassword.get(person_id=mother.id)
    err = await _refused(await _set(client, h, binding_id, "246801"), 422, "FACE_CHECK_FAILED")
    assert err["fields"] == {"member_face_token": "FACE_CHECK_FAILED"}
    await _refused(await _set(client, h, binding_id, "246801", face="bad-1"), 422, "FACE_CHECK_FAILED")
    assert (await VoucherPassword.get(person_id=mother.id)).password_hash == first.password_hash
    assert (await _set(client, h, binding_id, "246801", face="ok-change")).status == 204
    row = await VoucherPassword.get(person_id=mother.id)
    assert row.password_hash != first.password_hash and row.set_at >= first.set_at
    assert row.set_by_id is not None
    assert "246801" not in row.password_hash and "$argon2id$" in row.password_hash
    await _refused(await _verify(client, who, await _qr(client, h, binding_id), "135790"), 403, "VOUCHER_PASSWORD_WRONG")
    assert (await _verify(client, who, await _qr(client, h, binding_id), "246801")).status == 200


async def test_a_change_clears_the_lock(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    h, binding_id, _ = await _family(client, app)
    assert (await _set(client, h, binding_id, "135790")).status == 204
    qr = await _qr(client, h, binding_id)
    for _ in range(5):
        await _verify(client, who, qr, "999990")
    await _refused(await _verify(client, who, qr, "135790"), 423, "VOUCHER_PASSWORD_LOCKED")
    assert (await _set(client, h, binding_id, "246801", face="ok-unlock")).status == 204
    assert (await _verify(client, who, qr, "246801")).status == 200


async def test_who_may_set_it_and_what(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    h, binding_id, _ = await _family(client, app)
    err = await _refused(await _set(client, h, binding_id, "123456"), 422, "VOUCHER_PASSWORD_WEAK")
    assert err["fields"] == {"password": "VOUCHER_PASSWORD_WEAK"}
    await _refused(await _set(client, h, binding_id, "580612"), 422, "VOUCHER_PASSWORD_WEAK")  # her birthday
    err = await _refused(await _set(client, h, binding_id, "12ab56"), 422, "VALIDATION_FAILED")
    assert err["fields"] == {"password": "INVALID_FORMAT"}
    # someone else's binding, or none, is 404
    bob = await verified_user(client, "bob", await add_person(app, "周敏", birth=date(1995, 11, 11)))
    await _refused(await _set(client, bearer(bob), binding_id, "135790"), 404, "NOT_FOUND")
    await _refused(await _set(client, h, "not-a-binding", "135790"), 404, "NOT_FOUND")
    # an unbound binding too
    resp = await client.delete(f"/api/v1/family/members/{binding_id}", headers=h)
    assert resp.status == 204
    await _refused(await _set(client, h, binding_id, "135790"), 404, "NOT_FOUND")


async def test_the_password_stays_out_of_logs(
    client: TestClient, app: web.Application, who: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    h, binding_id, _ = await _family(client, app)
    with caplog.at_level(logging.DEBUG):
        assert (await _set(client, h, binding_id, "135790")).status == 204
        qr = await _qr(client, h, binding_id)
        await _verify(client, who, qr, "864209")
        assert (await _verify(client, who, qr, "135790")).status == 200
    assert "135790" not in caplog.text and "864209" not in caplog.text


async def test_a_settlement_by_the_qr_code_asks_for_the_password_too(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    """A 2207 by ``qr_token`` must not pay where the 医保码's verify would be refused:
    the same password check first, a refusal leaves the 医保码 unused, and the password
    is no part of what a retry is compared on."""
    from server.domain.models import Settlement
    from tests.money.conftest import settlement_body

    h, binding_id, _ = await _family(client, app)
    assert (await _set(client, h, binding_id, "135790")).status == 204
    qr = await _qr(client, h, binding_id)
    body = settlement_body("S-PW-1", "30.00", qr_token=qr)

    await _refused(await post_signed(client, "/settlements", body, **who), 422, "VOUCHER_PASSWORD_REQUIRED")
    await _refused(await post_signed(client, "/settlements", {**body, "password": "135791"}, **who),
                   403, "VOUCHER_PASSWORD_WRONG")
    assert not await Settlement.filter(setl_id="S-PW-1").exists()
    first = await post_signed(client, "/settlements", {**body, "password": "135790"}, **who)
    assert first.status == 201, await first.text()
    # the retry (its 医保码 used by the first attempt) is answered from the stored result
    again = await post_signed(client, "/settlements", {**body, "password": "135790"}, **who)
    assert again.status == 200 and await again.json() == await first.json()
    stored = await Settlement.get(setl_id="S-PW-1")
    assert "135790" not in str(stored.__dict__)
    # the previous wrong try was forgotten by the right one
    assert (await VoucherPassword.get(person_id=(await _member(binding_id)))).failed_count == 0


async def test_no_password_asked_where_none_is_required(
    client: TestClient, app: web.Application, who: dict[str, str]
) -> None:
    from tests.money.conftest import settlement_body

    h, binding_id, _ = await _family(client, app, region=YICHANG)
    body = settlement_body("S-PW-2", "10.00", qr_token=await _qr(client, h, binding_id))
    resp = await post_signed(client, "/settlements", body, **who)
    assert resp.status == 201, await resp.text()


async def _member(binding_id: str) -> int:
    from server.domain.models import Binding

    return int((await Binding.get(id=binding_id)).member_id)
