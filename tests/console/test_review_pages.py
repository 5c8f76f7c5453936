"""The review queue through HTTP: roles, regions, masking and audited unmasking, materials,
claims between two reviewers, decisions, search by blind index."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.clock import utc_now
from server.domain.models import Application, ApplicationEvent, Material, StaffAuditEntry
from tests.console.conftest import Browser, add_staff, csrf_of, login, pending


async def test_roles_decide_which_pages_open(console: TestClient, capp: web.Application, other_browser: Browser) -> None:
    clerk = await add_staff(capp, "clerk", "counter", "420100")
    reviewer = await add_staff(capp, "rev", "reviewer", "420100")
    await login(console, "clerk", clerk)
    for path in ("/review/queue", "/review/admin/audit", "/review/admin/analytics.json", "/review/admin/notices"):
        assert (await console.get(path)).status == 403, path
    assert (await console.get("/review/counter")).status == 200
    resp = await console.get("/review/", allow_redirects=False)
    assert resp.headers["Location"] == "/review/counter"

    b = other_browser
    page = await b.get("/review/login")
    await b.post("/review/login", data={"csrf": csrf_of(await page.text()), "name": "rev", "password": reviewer})
    assert (await b.get("/review/queue")).status == 200
    for path in ("/review/counter", "/review/admin/audit", "/review/admin/staff"):
        assert (await b.get(path)).status == 403, path


async def test_region_scoping_of_queue_detail_and_decisions(console: TestClient, capp: web.Application) -> None:
    ids = await pending(console, capp)
    hubei = await add_staff(capp, "hubei", "reviewer", "420000")  # province: covers 420100
    csrf = await login(console, "hubei", hubei)
    html = await (await console.get("/review/queue")).text()
    assert ids["hk"] in html and ids["minor"] in html and ids["far"] not in html
    # another region's application: 404 for the page, the material, the decision
    assert (await console.get(f"/review/applications/{ids['far']}")).status == 404
    far_material = await Material.filter(application_id=ids["far"]).first()
    assert far_material is not None
    resp = await console.get(f"/review/applications/{ids['far']}/materials/{far_material.id}")
    assert resp.status == 404
    resp = await console.post(f"/review/applications/{ids['far']}/decision", data={"csrf": csrf, "decision": "approve"})
    assert resp.status == 404
    assert (await Application.get(id=ids["far"])).state == "pending_review"
    # a filter to a region inside the scope narrows; one outside finds nothing
    html = await (await console.get("/review/queue?region=510100")).text()
    assert ids["far"] not in html and "没有符合条件" in html
    html = await (await console.get("/review/queue?id_type=hk_mo_travel_permit")).text()
    assert ids["hk"] in html and ids["minor"] not in html
    html = await (await console.get("/review/queue?relationship=child")).text()
    assert ids["minor"] in html and ids["hk"] not in html
    html = await (await console.get("/review/queue?waited_days=1")).text()
    assert "没有符合条件" in html


async def test_national_admin_sees_every_region(console: TestClient, capp: web.Application) -> None:
    ids = await pending(console, capp)
    pw = await add_staff(capp, "boss", "admin", "000000")
    await login(console, "boss", pw)
    html = await (await console.get("/review/queue")).text()
    assert all(i in html for i in ids.values())
    sichuan = await (await console.get("/review/queue?region=510000")).text()
    assert ids["far"] in sichuan and ids["hk"] not in sichuan


async def test_people_masked_until_an_audited_unmask(console: TestClient, capp: web.Application) -> None:
    ids = await pending(console, capp)
    pw = await add_staff(capp, "rev", "reviewer", "420100")
    csrf = await login(console, "rev", pw)
    url = f"/review/applications/{ids['minor']}"
    html = await (await console.get(url)).text()
    assert "张*明" in html and "张小明" not in html and "420102201805201131" not in html
    assert "周*" in html and "周敏" not in html  # the binder
    # the Chinese labels and why it is here
    assert "子女" in html and "居民身份证" in html and "出生医学证明" in html
    assert "绑定人不是户籍登记的监护人" in html
    assert "个人承诺书" in html and "版本" in html
    resp = await console.get(url)
    assert resp.headers["Cache-Control"] == "no-store"

    resp = await console.post(f"{url}/unmask", data={"csrf": csrf, "whom": "member"})
    html = await resp.text()
    assert resp.status == 200 and "张小明" in html and "420102201805201131" in html
    assert resp.headers["Cache-Control"] == "no-store"
    assert "周敏" not in html  # only the one asked for
    entry = await StaffAuditEntry.get(action="unmask")
    app_row = await Application.get(id=ids["minor"])
    assert entry.staff_name == "rev" and entry.target_id == ids["minor"]
    assert entry.person_ref == f"person:{app_row.member_id}" and entry.ip == "127.0.0.1"
    resp = await console.post(f"{url}/unmask", data={"csrf": csrf, "whom": "binder"})
    html = await resp.text()
    assert "周敏" in html and "420102199511112061" in html
    refs = await StaffAuditEntry.filter(action="unmask").order_by("id").values_list("person_ref", flat=True)
    assert refs == [f"person:{app_row.member_id}", f"user:{app_row.binder_id}"]
    # nothing in the log is clear text
    for row in await StaffAuditEntry.all():
        text = f"{row.staff_name} {row.target_id} {row.person_ref} {row.detail}"
        assert "张小明" not in text and "420102201805201131" not in text


async def test_materials_are_served_to_staff_audited_and_never_cached(console: TestClient, capp: web.Application) -> None:
    ids = await pending(console, capp)
    material = await Material.get(application_id=ids["hk"])
    url = f"/review/applications/{ids['hk']}/materials/{material.id}"
    assert (await console.get(url, allow_redirects=False)).status == 303  # no session
    pw = await add_staff(capp, "rev", "reviewer", "420100")
    await login(console, "rev", pw)
    resp = await console.get(url)
    assert resp.status == 200 and resp.content_type == "image/png"
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert resp.headers["Content-Security-Policy"].startswith("sandbox")
    entry = await StaffAuditEntry.get(action="view_material")
    assert entry.target_id == str(material.id) and entry.detail["kind"] == "travel_permit"
    detail = await (await console.get(f"/review/applications/{ids['hk']}")).text()
    assert f'<img src="{url}"' in detail and "通行证" in detail


async def test_two_reviewers_one_claim(console: TestClient, capp: web.Application, other_browser: Browser) -> None:
    ids = await pending(console, capp)
    ann = await add_staff(capp, "ann", "reviewer", "420100")
    bob = await add_staff(capp, "bob", "reviewer", "420000")
    csrf_ann = await login(console, "ann", ann)
    url = f"/review/applications/{ids['hk']}"
    resp = await console.post(f"{url}/claim", data={"csrf": csrf_ann})
    assert resp.status == 200 and "您已领取该申请" in await resp.text()

    b = other_browser
    page = await b.get("/review/login")
    await b.post("/review/login", data={"csrf": csrf_of(await page.text()), "name": "bob", "password": bob})
    html = await (await b.get(url)).text()
    assert "该申请已由 <strong>ann</strong>" in html
    assert "ann 处理中" in await (await b.get("/review/queue")).text()
    csrf_bob = csrf_of(html)
    resp = await b.post(f"{url}/decision", data={"csrf": csrf_bob, "decision": "approve"})
    assert resp.status == 409 and "已由 ann" in await resp.text()
    resp = await b.post(f"{url}/claim", data={"csrf": csrf_bob})
    assert resp.status == 409
    assert (await Application.get(id=ids["hk"])).state == "pending_review"

    # the claim expires: bob may take it then
    claims = capp[keys.review_desk_key].claims
    seconds = capp[keys.settings_key].console.claim_seconds
    start = utc_now()
    claims.clock = lambda: start + timedelta(seconds=seconds + 1)
    try:
        resp = await b.post(f"{url}/decision", data={"csrf": csrf_bob, "decision": "reject", "reason_code": "UNCLEAR",
                                                     "note": "照片反光"})
        assert resp.status == 200 and resp.url.path == "/review/queue" and "已驳回" in await resp.text()
    finally:
        claims.clock = utc_now
    row = await Application.get(id=ids["hk"])
    assert row.state == "failed" and row.failure_code == "MATERIALS_REJECTED"
    assert "材料不清晰" in row.failure_message and "照片反光" in row.failure_message
    # ann, too late: the application is decided
    resp = await console.post(f"{url}/decision", data={"csrf": csrf_ann, "decision": "approve"})
    assert resp.status == 409
    actions = await StaffAuditEntry.filter(target_id=ids["hk"]).order_by("id").values_list("staff_name", "action")
    assert ("ann", "claim") in actions and ("bob", "reject") in actions
    assert ("bob", "approve") not in actions and ("ann", "approve") not in actions


async def test_release_lets_another_reviewer_decide(console: TestClient, capp: web.Application, other_browser: Browser) -> None:
    ids = await pending(console, capp)
    ann = await add_staff(capp, "ann", "reviewer", "420100")
    bob = await add_staff(capp, "bob", "reviewer", "420100")
    csrf = await login(console, "ann", ann)
    url = f"/review/applications/{ids['minor']}"
    await console.post(f"{url}/claim", data={"csrf": csrf})
    resp = await console.post(f"{url}/release", data={"csrf": csrf})
    assert "已释放" in await resp.text()
    b = other_browser
    page = await b.get("/review/login")
    await b.post("/review/login", data={"csrf": csrf_of(await page.text()), "name": "bob", "password": bob})
    html = await (await b.get(url)).text()
    resp = await b.post(f"{url}/decision", data={"csrf": csrf_of(html), "decision": "approve"})
    assert resp.status == 200 and "已通过" in await resp.text()
    assert (await Application.get(id=ids["minor"])).state == "active"
    event = await ApplicationEvent.filter(application_id=ids["minor"], to_state="active").first()
    assert event is not None and event.actor == "reviewer:bob"


async def test_reject_needs_a_reason_from_the_list(console: TestClient, capp: web.Application) -> None:
    ids = await pending(console, capp)
    pw = await add_staff(capp, "rev", "reviewer", "420100")
    csrf = await login(console, "rev", pw)
    url = f"/review/applications/{ids['hk']}/decision"
    for data in ({"decision": "reject"}, {"decision": "reject", "reason_code": "MADE_UP"}):
        resp = await console.post(url, data={"csrf": csrf, **data})
        assert resp.status == 422 and "请选择理由" in await resp.text()
    resp = await console.post(url, data={"csrf": csrf, "decision": "correction", "note": "补传"})
    assert resp.status == 409 and "暂不可用" in await resp.text()
    assert (await Application.get(id=ids["hk"])).state == "pending_review"


async def test_search_by_exact_id_number_or_name_posted_not_in_the_url(console: TestClient, capp: web.Application) -> None:
    ids = await pending(console, capp)
    pw = await add_staff(capp, "rev", "reviewer", "000000")
    csrf = await login(console, "rev", pw)
    resp = await console.post("/review/queue", data={"csrf": csrf, "id_number": "h12345678"})
    html = await resp.text()
    assert ids["hk"] in html and ids["far"] in html and ids["minor"] not in html
    assert "h12345678" not in str(resp.url).lower()
    html = await (await console.post("/review/queue", data={"csrf": csrf, "name": "张小明"})).text()
    assert ids["minor"] in html and ids["hk"] not in html
    # the binder's ID finds their applications too
    html = await (await console.post("/review/queue", data={"csrf": csrf, "id_number": "510104196002140882"})).text()
    assert ids["far"] in html and ids["hk"] not in html
    html = await (await console.post("/review/queue", data={"csrf": csrf, "name": "张小"})).text()
    assert "没有符合条件" in html  # exact match only: a blind index finds no prefixes
    searches = await StaffAuditEntry.filter(action="search").values_list("detail", flat=True)
    assert [d["by"] for d in searches] == ["id_number", "name", "id_number", "name"]
