"""Every time staff see a material or a person unmasked, an append-only audit row says
who, what, which person, when and from where (PIPL art. 51; issue #12). The console
(issue #14) writes them (server/domain/audit.py, tests/console/ for the pages); here the
privacy duty is checked across every way staff reach a material or a person in full."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import Material, StaffAuditEntry
from tests.console.conftest import add_staff, login, pending
from tests.factories import bearer, verified_user
from tests.family.helpers import ALICE, HK, load_registry, prepare, submit

REVIEWER = {"Authorization": "Bearer demo-reviewer-token"}


async def test_staff_views_of_materials_and_people_are_all_audited(
    console: TestClient, capp: web.Application
) -> None:
    ids = await pending(console, capp)
    pw = await add_staff(capp, "rev", "reviewer", "420100")
    csrf = await login(console, "rev", pw)
    app_url = f"/review/applications/{ids['hk']}"
    material = await Material.get(application_id=ids["hk"])
    before = await StaffAuditEntry.all().count()
    # 1 the material, streamed from its sealed file
    resp = await console.get(f"{app_url}/materials/{material.id}")
    assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG")
    # 2, 3 both people in full
    for whom in ("member", "binder"):
        assert (await console.post(f"{app_url}/unmask", data={"csrf": csrf, "whom": whom})).status == 200
    rows = await StaffAuditEntry.filter(id__gt=before, action__in=["view_material", "unmask"]).order_by("id")
    assert [r.action for r in rows] == ["view_material", "unmask", "unmask"]
    for r in rows:
        # who, what, which person (never in clear), when, from where
        assert r.staff_name == "rev" and r.staff_id is not None
        assert r.target_id in (ids["hk"], str(material.id)) and r.at is not None and r.ip == "127.0.0.1"
    assert [r.person_ref.split(":")[0] for r in rows[1:] if r.person_ref] == ["person", "user"]
    # staff cannot change or remove a row (the database refuses; tests/console test it on
    # both backends) and only an admin reads the log
    assert (await console.get("/review/admin/audit", allow_redirects=False)).status in (302, 303, 403)


async def test_the_demo_token_api_is_audited_too(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, HK, "spouse", kinds=("travel_permit",))
    assert (await (await submit(client, h, app_id)).json())["state"] == "pending_review"
    material = await Material.get(application_id=app_id)
    blob = await client.get(f"/api/v1/review/applications/{app_id}/materials/{material.id}", headers=REVIEWER)
    assert blob.status == 200
    entry = await StaffAuditEntry.get(action="view_material")
    assert entry.target_id == str(material.id) and entry.staff_name and entry.ip == "127.0.0.1"
