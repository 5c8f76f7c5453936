"""Admin pages through HTTP: the append-only audit log (filter, CSV), failure analytics
(JSON, CSV), the push queue and its retry, staff accounts; the counter's look-up."""

from __future__ import annotations

import csv
import inspect
import io
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain import audit
from server.domain.models import Application, Notice, Staff, StaffAuditEntry
from server.settings import Settings
from tests.console.conftest import add_staff, login, pending
from tests.factories import bearer, verified_user
from tests.family.helpers import ALICE, GRANDMA, MOTHER, WIFE, prepare, submit


async def _admin(console: TestClient, capp: web.Application, regions: str = "000000") -> str:
    pw = await add_staff(capp, "boss", "admin", regions)
    return await login(console, "boss", pw)


# -- the audit log ----------------------------------------------------------------------


def test_the_audit_service_offers_no_update_or_delete() -> None:
    public = {n for n, v in vars(audit).items() if inspect.isfunction(v) and v.__module__ == audit.__name__}
    assert public == {"record", "search", "view", "csv_chunks", "_query", "_csv_safe"}
    source = inspect.getsource(audit)
    for verb in (".update(", ".delete(", ".save(", "bulk_update", "select_for_update"):
        assert verb not in source, verb


async def test_the_database_refuses_changes_to_the_audit_log(tmp_path: Path) -> None:
    """The migration's triggers (SQLite here; the same migration adds a PL/pgSQL trigger
    on PostgreSQL)."""
    from server.db import migrate

    settings = Settings.load("test.toml", env={}, overrides={"server.data_dir": str(tmp_path), "database.schema": "migrate"})
    await migrate(settings)
    db = sqlite3.connect(tmp_path / "qinqing.sqlite3")
    try:
        db.execute(
            "INSERT INTO staff_audit_entries (staff_name, action, target_kind, detail, at) "
            "VALUES ('ann', 'login', 'session', '{}', '2026-12-01 08:00:00')"
        )
        db.commit()
        for sql in ("UPDATE staff_audit_entries SET action = 'logout'", "DELETE FROM staff_audit_entries"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(sql)
        assert db.execute("SELECT action FROM staff_audit_entries").fetchall() == [("login",)]
    finally:
        db.close()


async def test_audit_page_filters_and_exports(console: TestClient, capp: web.Application) -> None:
    ids = await pending(console, capp)
    rev = await add_staff(capp, "rev", "reviewer", "420100")
    csrf = await login(console, "rev", rev)
    await console.post(f"/review/applications/{ids['hk']}/unmask", data={"csrf": csrf, "whom": "member"})
    await console.post(f"/review/applications/{ids['hk']}/decision", data={"csrf": csrf, "decision": "approve"})
    await _admin(console, capp)
    html = await (await console.get("/review/admin/audit?staff_name=rev")).text()
    assert "查看完整身份信息" in html and "审核通过" in html and "登录" in html
    html = await (await console.get("/review/admin/audit?action=unmask")).text()
    assert "审核通过" not in html.split("audit-table")[1]
    resp = await console.get("/review/admin/audit.csv?staff_name=rev")
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert rows[0] == list(audit.CSV_HEADER)
    actions = [r[4] for r in rows[1:]]
    assert actions[:1] == ["login"] and "unmask" in actions and "approve" in actions
    assert all(r[3] == "rev" for r in rows[1:])
    # the export itself is audited
    assert await StaffAuditEntry.filter(staff_name="boss", action="audit_export").count() == 1
    resp = await console.get("/review/admin/audit?since=2026-13-01")
    assert resp.status == 422


async def test_csv_cells_cannot_become_formulas() -> None:
    assert audit._csv_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert audit._csv_safe("@x") == "'@x" and audit._csv_safe("ann") == "ann"


# -- analytics ----------------------------------------------------------------------------


async def _failures(console: TestClient, capp: web.Application) -> dict[str, str]:
    """Real failures through the mini-program: a member not activated is fine (代激活),
    a missing material is MATERIALS_MISSING, a rejection MATERIALS_REJECTED, …"""
    ids = await pending(console, capp)
    wife = bearer(await verified_user(console, "wife", WIFE))
    no_material = await prepare(console, wife, MOTHER, "parent", kinds=())
    await submit(console, wife, no_material)  # MATERIALS_MISSING
    no_face = await prepare(console, wife, GRANDMA, "grandparent")
    await submit(console, wife, no_face, face="bad")  # relationship or face: a failure code either way
    return ids


async def test_analytics_json_counts_real_failures(console: TestClient, capp: web.Application) -> None:
    ids = await _failures(console, capp)
    csrf = await _admin(console, capp)
    await console.post(f"/review/applications/{ids['far']}/decision",
                       data={"csrf": csrf, "decision": "reject", "reason_code": "MISMATCH"})
    await console.post(f"/review/applications/{ids['hk']}/decision", data={"csrf": csrf, "decision": "approve"})
    await Notice.create(kind="family_settlement", dedupe_key="n1", title="家人就医结算通知", state="failed", errcode=43101)
    await Notice.create(kind="family_settlement", dedupe_key="n2", title="家人就医结算通知", state="delivered")
    data = await (await console.get("/review/admin/analytics.json?days=7")).json()
    f = data["failures"]
    failed = await Application.filter(state="failed").values_list("failure_code", flat=True)
    assert f["total"] == len(failed) >= 3
    assert set(f["share"]) == set(failed) and "MATERIALS_REJECTED" in f["share"]
    assert len(f["days"]) == 7 and sum(sum(v) for v in f["by_day"].values()) == f["total"]
    assert set(f["regions"]) == {"420100", "510100"}
    assert sum(f["by_region"]["MATERIALS_REJECTED"]) == 1
    t = data["decision_times"]
    assert sum(t["review"]) == 2 and sum(t["auto"]) >= 2 and t["median_hours"]["review"] is not None
    states = {s["state"]: s["count"] for s in data["push"]["states"]}
    assert states["failed"] == 1 and states["delivered"] == 1
    assert data["push"]["errcodes"][0]["errcode"] == 43101
    # the same figures as CSV (a national admin: both regions)
    csv_resp = await console.get("/review/admin/analytics.csv?table=failures_by_region&days=7")
    rows = list(csv.reader(io.StringIO((await csv_resp.read()).decode("utf-8-sig"))))
    assert rows[0] == ["region", "code", "label", "count"] and any(r[0] == "510100" for r in rows[1:])
    assert (await console.get("/review/admin/analytics.csv?table=nope")).status == 404
    page = await (await console.get("/review/admin/analytics")).text()
    assert "vendor/chart.umd.js" in page and "cdn" not in page.lower()


async def test_analytics_are_scoped_to_the_admins_regions(console: TestClient, capp: web.Application) -> None:
    ids = await pending(console, capp)
    boss = await add_staff(capp, "root", "admin", "000000")
    csrf = await login(console, "root", boss)
    await console.post(f"/review/applications/{ids['far']}/decision",
                       data={"csrf": csrf, "decision": "reject", "reason_code": "MISMATCH"})
    hubei = await add_staff(capp, "hubei", "admin", "420000")
    await login(console, "hubei", hubei)
    data = await (await console.get("/review/admin/analytics.json")).json()
    assert data["failures"]["total"] == 0 and data["failures"]["regions"] == []


async def test_vendored_chart_library_is_served_from_the_package(console: TestClient) -> None:
    resp = await console.get("/review/static/vendor/chart.umd.js")
    assert resp.status == 200 and "Chart.js v4" in (await resp.text())[:200]


# -- the push queue -------------------------------------------------------------------------


async def test_push_queue_and_retry_of_a_failed_notice(console: TestClient, capp: web.Application) -> None:
    failed = await Notice.create(kind="family_settlement", dedupe_key="f", title="家人就医结算通知", state="failed",
                                 errcode=43101, reason="用户拒收", attempts=3)
    gone = await Notice.create(kind="member_settlement", dedupe_key="u", title="就医结算通知", state="undeliverable")
    await Notice.create(kind="member_settlement", dedupe_key="p", title="就医结算通知", state="pending")
    csrf = await _admin(console, capp)
    html = await (await console.get("/review/admin/notices")).text()
    assert "43101 用户拒收或未订阅" in html and "无法送达" in html and "member_settlement" in html
    resp = await console.post(f"/review/admin/notices/{failed.id}/retry", data={"csrf": csrf})
    assert resp.status == 200 and "已重新排队" in await resp.text()
    await failed.refresh_from_db()
    assert failed.state == "pending" and failed.attempts == 0 and failed.next_attempt_at is not None
    resp = await console.post(f"/review/admin/notices/{gone.id}/retry", data={"csrf": csrf})
    assert resp.status == 409
    resp = await console.post(f"/review/admin/notices/{failed.id}/retry", data={"csrf": csrf})
    assert resp.status == 409  # pending now: nothing to retry
    assert await StaffAuditEntry.filter(action="notice_retry", target_id=str(failed.id)).count() == 1


async def test_reviewers_cannot_retry_notices(console: TestClient, capp: web.Application) -> None:
    failed = await Notice.create(kind="family_settlement", dedupe_key="f", title="t", state="failed")
    pw = await add_staff(capp, "rev", "reviewer", "000000")
    csrf = await login(console, "rev", pw)
    assert (await console.post(f"/review/admin/notices/{failed.id}/retry", data={"csrf": csrf})).status == 403
    await failed.refresh_from_db()
    assert failed.state == "failed"


# -- staff accounts -------------------------------------------------------------------------


async def test_admin_adds_resets_and_disables_staff(console: TestClient, capp: web.Application) -> None:
    csrf = await _admin(console, capp)
    resp = await console.post("/review/admin/staff/add",
                              data={"csrf": csrf, "name": "clerk1", "role": "counter", "regions": "420102"})
    html = await resp.text()
    assert "clerk1" in html and "只显示这一次" in html
    password = html.split('<code class="mono">')[1].split("<")[0]
    row = await Staff.get(name="clerk1")
    assert row.role == "counter" and row.regions == "420102" and password not in row.password_hash
    resp = await console.post("/review/admin/staff/add", data={"csrf": csrf, "name": "x y", "role": "counter", "regions": "1"})
    assert "name" in await resp.text() and not await Staff.filter(name="x y").exists()
    resp = await console.post("/review/admin/staff/disable", data={"csrf": csrf, "name": "boss"})
    assert "不能停用自己" in await resp.text()
    await console.post("/review/admin/staff/disable", data={"csrf": csrf, "name": "clerk1"})
    assert not (await Staff.get(name="clerk1")).active
    actions = await StaffAuditEntry.filter(staff_name="boss", target_kind="staff").values_list("action", flat=True)
    assert sorted(actions) == ["staff_add", "staff_disable"]


# -- the counter ------------------------------------------------------------------------------


async def test_counter_looks_a_person_up_in_its_region(console: TestClient, capp: web.Application) -> None:
    from tests.family.helpers import load_registry

    await load_registry(capp)
    alice = bearer(await verified_user(console, "alice", ALICE))
    app_id = await prepare(console, alice, MOTHER, "parent")
    assert (await (await submit(console, alice, app_id)).json())["state"] == "active"
    pw = await add_staff(capp, "clerk", "counter", "420100")
    csrf = await login(console, "clerk", pw)
    name, id_type, number = MOTHER
    resp = await console.post("/review/counter/lookup",
                              data={"csrf": csrf, "id_type": id_type, "id_number": number, "name": name})
    html = await resp.text()
    assert resp.status == 200 and "李*英" in html and "4201**********2242" in html
    assert number not in html and name not in html
    assert "张*(父母" in html and "职工医保" in html
    entry = await StaffAuditEntry.get(action="counter_lookup")
    assert entry.person_ref.startswith("person:") and entry.detail == {"found": True}
    # a wrong name and a person of another region answer alike
    resp = await console.post("/review/counter/lookup",
                              data={"csrf": csrf, "id_type": id_type, "id_number": number, "name": "李秀"})
    assert resp.status == 404 and "未找到该参保人" in await resp.text()
    resp = await console.post("/review/counter/lookup",
                              data={"csrf": csrf, "id_type": "resident_id", "id_number": "510104196002140882", "name": "陈静"})
    assert resp.status == 404 and "未找到该参保人" in await resp.text()
    resp = await console.post("/review/counter/lookup",
                              data={"csrf": csrf, "id_type": "resident_id", "id_number": "123", "name": "x"})
    assert resp.status == 422
    refs = await StaffAuditEntry.filter(action="counter_lookup").values_list("person_ref", flat=True)
    assert len(refs) == 3 and all(r.startswith(("person:", "idx:")) for r in refs)


async def test_postgres_trigger_refuses_changes_to_the_audit_log(capp: web.Application) -> None:
    """PostgreSQL pass: the migration's PL/pgSQL trigger, installed on the test schema
    (the suite generates its tables), refuses UPDATE and DELETE."""
    import importlib

    from tortoise import connections

    client = connections.get("default")
    if client.capabilities.dialect != "postgres":
        pytest.skip("PostgreSQL only (the SQLite trigger has its own test)")
    module = next((ROOT_MIGRATIONS).glob("*_staff.py")).stem
    migration = importlib.import_module(f"server.migrations.{module}")

    class Editor:
        pass

    editor = Editor()
    editor.client = client  # type: ignore[attr-defined]
    await migration._append_only(None, editor)
    try:
        entry = await StaffAuditEntry.create(staff_name="ann", action="login", target_kind="session")
        with pytest.raises(Exception, match="append-only"):
            await StaffAuditEntry.filter(id=entry.id).update(action="logout")
        with pytest.raises(Exception, match="append-only"):
            await StaffAuditEntry.filter(id=entry.id).delete()
        assert (await StaffAuditEntry.get(id=entry.id)).action == "login"
    finally:
        await migration._drop_guard(None, editor)


ROOT_MIGRATIONS = Path(__file__).resolve().parents[2] / "server" / "migrations"
