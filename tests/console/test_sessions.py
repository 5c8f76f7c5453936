"""Staff sessions through HTTP: login, cookies, CSRF, fixation, idle timeout, throttling,
logout, disabled accounts, demo accounts in production, the CLI."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain import staff as staff_domain
from server.domain.clock import utc_now
from server.domain.errors import DomainError
from server.domain.models import Staff, StaffAuditEntry
from server.settings import ROOT, Settings
from tests.console.conftest import FAST_HASH, add_staff, csrf_of, login


async def _actions(name: str) -> list[str]:
    return list(await StaffAuditEntry.filter(staff_name=name).order_by("id").values_list("action", flat=True))


async def test_login_sets_a_strict_secure_http_only_cookie(console: TestClient, capp: web.Application) -> None:
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    page = await console.get("/review/login")
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    token = csrf_of(await page.text())
    resp = await console.post(
        "/review/login", data={"csrf": token, "name": "ann", "password": pw}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"] == "/review/queue"
    cookie = next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("qq_console="))
    attrs = {a.strip().lower() for a in cookie.split(";")}
    assert {"httponly", "secure", "samesite=strict", "path=/review"} <= attrs
    assert (await console.get("/review/queue")).status == 200
    assert await _actions("ann") == ["login"]
    entry = await StaffAuditEntry.get(staff_name="ann")
    assert entry.ip == "127.0.0.1" and entry.staff_id is not None


async def test_wrong_password_unknown_name_and_disabled_look_alike(console: TestClient, capp: web.Application) -> None:
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    await add_staff(capp, "old", "reviewer", "420100")
    await staff_domain.disable_staff("old")
    for name, password in (("ann", "wrong"), ("nobody", pw), ("old", pw)):
        page = await console.get("/review/login")
        resp = await console.post(
            "/review/login", data={"csrf": csrf_of(await page.text()), "name": name, "password": password}
        )
        assert resp.status == 401 and "用户名或密码错误" in await resp.text()
    assert await _actions("ann") == ["login_failed"]
    assert await _actions("nobody") == ["login_failed"]
    assert (await StaffAuditEntry.get(staff_name="nobody")).staff_id is None


async def test_pages_need_a_session(console: TestClient) -> None:
    for path in ("/review/queue", "/review/admin/audit", "/review/counter", "/review/applications/x"):
        resp = await console.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/review/login", path
    resp = await console.get("/review/admin/analytics.json")
    assert resp.status == 401
    # a POST without a session is refused before anything runs (no CSRF token to match)
    resp = await console.post("/review/applications/x/decision", data={"decision": "approve"})
    assert resp.status == 403


async def test_every_post_needs_the_session_csrf_token(console: TestClient, capp: web.Application) -> None:
    from tests.console.conftest import pending

    ids = await pending(console, capp)
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    csrf = await login(console, "ann", pw)
    url = f"/review/applications/{ids['hk']}/decision"
    for data in ({"decision": "approve"}, {"decision": "approve", "csrf": "forged"}, {"decision": "approve", "csrf": ""}):
        resp = await console.post(url, data=data)
        assert resp.status == 403 and "页面已过期" in await resp.text()
    app_row = await _state(ids["hk"])
    assert app_row == "pending_review"
    # logout is a POST too: a forged one does nothing
    assert (await console.post("/review/logout", data={"csrf": "x"})).status == 403
    assert (await console.get("/review/queue")).status == 200
    resp = await console.post(url, data={"decision": "approve", "csrf": csrf})
    assert resp.status == 200 and resp.url.path == "/review/queue"
    assert await _state(ids["hk"]) == "active"


async def _state(application_id: str) -> str:
    from server.domain.models import Application

    return (await Application.get(id=application_id)).state


async def test_login_form_needs_its_double_submit_token(console: TestClient, capp: web.Application) -> None:
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    await console.get("/review/login")  # sets the login cookie
    resp = await console.post("/review/login", data={"csrf": "guess", "name": "ann", "password": pw})
    assert resp.status == 403
    console.session.cookie_jar.clear()
    resp = await console.post("/review/login", data={"name": "ann", "password": pw})
    assert resp.status == 403
    assert await _actions("ann") == []


async def test_login_rotates_the_session_id(console: TestClient, capp: web.Application) -> None:
    """Session fixation: a session id planted before login is never the one logged in."""
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    planted = "attacker-chosen-session-id"
    console.session.cookie_jar.update_cookies({"qq_console": planted}, console.make_url("/review/"))
    await login(console, "ann", pw)
    cookies = {c.key: c.value for c in console.session.cookie_jar}
    assert cookies["qq_console"] != planted
    assert await capp[keys.staff_key].resolve(planted, ip=None) is None
    # logging in again (same browser) makes yet another id and ends the first session
    first = cookies["qq_console"]
    await login(console, "ann", pw)
    second = {c.key: c.value for c in console.session.cookie_jar}["qq_console"]
    assert second != first
    assert await capp[keys.staff_key].resolve(first, ip=None) is None
    assert await capp[keys.staff_key].resolve(second, ip=None) is not None


async def test_idle_timeout_ends_the_session(console: TestClient, capp: web.Application) -> None:
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    await login(console, "ann", pw)
    service = capp[keys.staff_key]
    idle = capp[keys.settings_key].console.idle_timeout_seconds
    start = utc_now()
    try:
        service.clock = lambda: start + timedelta(seconds=idle - 5)
        assert (await console.get("/review/queue", allow_redirects=False)).status == 200  # touched: timer restarts
        service.clock = lambda: start + timedelta(seconds=2 * idle - 10)
        assert (await console.get("/review/queue", allow_redirects=False)).status == 200
        service.clock = lambda: start + timedelta(seconds=3 * idle)
        resp = await console.get("/review/queue", allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/review/login"
    finally:
        service.clock = utc_now
    assert (await console.get("/review/queue", allow_redirects=False)).status == 303  # gone for good


async def test_login_throttled_per_name_and_per_address(console: TestClient, capp: web.Application) -> None:
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    limit = capp[keys.settings_key].console.login_failures_per_name
    for _ in range(limit):
        page = await console.get("/review/login")
        await console.post("/review/login", data={"csrf": csrf_of(await page.text()), "name": "ann", "password": "x"})
    page = await console.get("/review/login")
    resp = await console.post("/review/login", data={"csrf": csrf_of(await page.text()), "name": "ann", "password": pw})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert "登录失败次数过多" in await resp.text()
    assert (await _actions("ann"))[-1] == "login_throttled"
    # per address: many names from one address
    service = capp[keys.staff_key]
    per_ip = service.policy.failures_per_ip
    for i in range(per_ip):
        with pytest.raises(DomainError, match="LOGIN_FAILED"):
            await service.login(f"guess{i}", "x", ip="203.0.113.9")
    pw_bob = await add_staff(capp, "bob", "reviewer", "420100")
    with pytest.raises(DomainError, match="RATE_LIMITED"):
        await service.login("bob", pw_bob, ip="203.0.113.9")
    assert (await service.login("bob", pw_bob, ip="198.51.100.1")).principal.name == "bob"


async def test_logout_ends_the_session(console: TestClient, capp: web.Application) -> None:
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    csrf = await login(console, "ann", pw)
    cookie = {c.key: c.value for c in console.session.cookie_jar}["qq_console"]
    resp = await console.post("/review/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/review/login"
    assert await capp[keys.staff_key].resolve(cookie, ip=None) is None
    assert await _actions("ann") == ["login", "logout"]


async def test_disable_and_reset_end_sessions(console: TestClient, capp: web.Application) -> None:
    pw = await add_staff(capp, "ann", "reviewer", "420100")
    await login(console, "ann", pw)
    hasher = capp[keys.staff_key].hasher
    _, new = await staff_domain.reset_password("ann", hasher=hasher)
    assert (await console.get("/review/queue", allow_redirects=False)).status == 303
    await login(console, "ann", new)
    await staff_domain.disable_staff("ann")
    assert (await console.get("/review/queue", allow_redirects=False)).status == 303


async def test_demo_staff_refused_in_production(capp: web.Application) -> None:
    hasher = capp[keys.staff_key].hasher
    await staff_domain.ensure_demo_staff(hasher=hasher, password="demo-console-password")
    strict = staff_domain.StaffService(
        redis=capp[keys.redis_key], hasher=hasher,
        policy=staff_domain.SessionPolicy(900, 3600, 5, 30, 900, refuse_demo=True),
    )
    with pytest.raises(DomainError, match="LOGIN_FAILED"):
        await strict.login("demo-admin", "demo-console-password", ip="127.0.0.1")
    with pytest.raises(RuntimeError, match="demo staff"):
        await staff_domain.refuse_demo_staff()
    for name, _, _ in staff_domain.DEMO_STAFF:
        await staff_domain.disable_staff(name)
    await staff_domain.refuse_demo_staff()


def test_production_settings_refuse_weak_console_settings() -> None:
    from tests.unit.test_pii_settings import _key

    env = {
        "APP_ENV": "production", "DATABASE_URL": "postgres://u:p@db/qq", "REDIS_URL": "redis://r:6379/0",
        "WECHAT_API_BASE": "https://api.weixin.qq.com", "WECHAT_MP_SECRET": "s" * 32,
        "WECHAT_MP_APPID": "wx0123456789abcdef", "WECHAT_OA_APPID": "wxfedcba9876543210",
        "WECHAT_OA_SECRET": "t" * 32, "WECHAT_OA_TOKEN": "tok" * 8, "WECHAT_OA_ENCODING_AES_KEY": "A" * 43,
        "JWT_KEYS": "k1:" + "j" * 48, "PII_KEYS": "p1:" + _key(), "PII_HASH_KEY": "h" * 40, "DEMO_DATA": "false",
    }
    ok = {"institution.demo_secret": ""}
    assert Settings.load(env=env, overrides=ok).is_production
    for bad, match in (
        ({"console.secure_cookies": False}, "secure_cookies"),
        ({"console.argon2_memory_kib": 1024}, "argon2"),
        ({"console.idle_timeout_seconds": 86_400}, "idle_timeout"),
    ):
        with pytest.raises(ValueError, match=match):
            Settings.load(env=env, overrides={**ok, **bad})


async def test_the_static_tokens_answer_nothing_in_production(console_settings: Settings) -> None:
    from dataclasses import replace

    from server.app import create_app
    from tests.conftest import serving

    prod = replace(console_settings, server=replace(console_settings.server, env="production"))
    async with serving(create_app(prod)) as client:
        resp = await client.get("/api/v1/review/applications", headers={"Authorization": "Bearer demo-reviewer-token"})
        assert resp.status == 404
    async with serving(create_app(console_settings)) as client:
        resp = await client.get("/api/v1/review/applications", headers={"Authorization": "Bearer demo-reviewer-token"})
        assert resp.status == 200


def test_cli_adds_resets_and_disables_staff(tmp_path: Path) -> None:
    env = {"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "APP_ENV": "local"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        overrides = [f"--config={tmp_path / 'fast.toml'}"]
        return subprocess.run(
            [sys.executable, "-m", "server", *overrides, "staff", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )

    (tmp_path / "fast.toml").write_text(
        "[console]\n" + "".join(f"{k.split('.')[1]} = {v}\n" for k, v in FAST_HASH.items())
    )
    added = cli("add", "ann", "--role", "reviewer", "--region", "420000")
    assert added.returncode == 0, added.stderr
    line = next(x for x in added.stdout.splitlines() if "password" in x)
    password = line.split()[-1]
    assert len(password) >= 16
    assert cli("add", "ann", "--role", "reviewer", "--region", "420000").returncode == 2
    assert cli("add", "bob", "--role", "reviewer", "--region", "42").returncode == 2
    reset = cli("reset", "ann", "--region", "420100,110000")
    new = next(x for x in reset.stdout.splitlines() if "password" in x).split()[-1]
    assert new != password and "420100,110000" in reset.stdout
    disabled = cli("disable", "ann")
    assert disabled.returncode == 0 and "disabled" in disabled.stdout and "password" not in disabled.stdout


async def test_staff_rows_never_hold_a_clear_password(capp: web.Application) -> None:
    pw = await add_staff(capp, "ann", "admin", "000000")
    row = await Staff.get(name="ann")
    assert pw not in row.password_hash and row.password_hash.startswith("$argon2id$")
