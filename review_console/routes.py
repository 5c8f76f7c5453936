"""Reviewer routes, one named line each."""

from __future__ import annotations

from aiohttp import web

from review_console import handlers


def api_routes() -> list[web.RouteDef]:
    return [
        web.get("/applications", handlers.list_applications, name="review_list"),
        web.get("/applications/{application_id}", handlers.get_application, name="review_get"),
        web.get(
            "/applications/{application_id}/materials/{material_id}",
            handlers.get_material,
            name="review_material",
        ),
        web.post("/applications/{application_id}/decision", handlers.decide, name="review_decide"),
        web.get("/notices/queue", handlers.notice_queue, name="review_queue"),
    ]


def page_routes() -> list[web.RouteDef]:
    return [web.get("/", handlers.console_page, name="review_page")]
