"""Console routes, one named line each."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from review_console import admin, counter, legacy, pages

STATIC = Path(__file__).with_name("static")


def api_routes() -> list[web.RouteDef]:
    """DEMO ONLY: the static-token JSON API under /api/v1/review (review_console.legacy)."""
    return [
        web.get("/applications", legacy.list_applications, name="review_list"),
        web.get("/applications/{application_id}", legacy.get_application, name="review_get"),
        web.get(
            "/applications/{application_id}/materials/{material_id}",
            legacy.get_material,
            name="review_material",
        ),
        web.post("/applications/{application_id}/decision", legacy.decide, name="review_decide"),
        web.get("/notices/queue", legacy.notice_queue, name="review_queue"),
    ]


def page_routes() -> list[web.AbstractRouteDef]:
    """The console under /review."""
    return [
        web.get("/", pages.home, name="console_home"),
        web.get("/login", pages.login_page, name="console_login_page"),
        web.post("/login", pages.login, name="console_login"),
        web.post("/logout", pages.logout, name="console_logout"),
        web.get("/queue", pages.queue, name="console_queue"),
        web.post("/queue", pages.queue, name="console_queue_search"),
        web.get("/applications/{application_id}", pages.application, name="console_application"),
        web.post("/applications/{application_id}/unmask", pages.unmask, name="console_unmask"),
        web.post("/applications/{application_id}/claim", pages.claim, name="console_claim"),
        web.post("/applications/{application_id}/release", pages.release, name="console_release"),
        web.post("/applications/{application_id}/decision", pages.decide, name="console_decide"),
        web.get(
            "/applications/{application_id}/materials/{material_id}",
            pages.material,
            name="console_material",
        ),
        web.get("/counter", counter.counter_page, name="console_counter"),
        web.post("/counter/lookup", counter.counter_lookup, name="console_counter_lookup"),
        web.post("/counter/{person_id}/bind", counter.counter_bind, name="console_counter_bind"),
        web.post(
            "/counter/{person_id}/{action:unbind|activate|authorize|revoke}",
            counter.counter_action,
            name="console_counter_action",
        ),
        web.get("/admin/audit", admin.audit_page, name="console_audit"),
        web.get("/admin/audit.csv", admin.audit_csv, name="console_audit_csv"),
        web.get("/admin/analytics", admin.analytics_page, name="console_analytics"),
        web.get("/admin/analytics.json", admin.analytics_json, name="console_analytics_json"),
        web.get("/admin/analytics.csv", admin.analytics_csv, name="console_analytics_csv"),
        web.get("/admin/notices", admin.notices_page, name="console_notices"),
        web.post("/admin/notices/{notice_id}/retry", admin.notice_retry, name="console_notice_retry"),
        web.get("/admin/staff", admin.staff_page, name="console_staff"),
        web.post("/admin/staff/{action}", admin.staff_action, name="console_staff_action"),
        web.static("/static", STATIC, name="console_static", append_version=True),
    ]
