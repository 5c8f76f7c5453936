"""Institution routes, one named line each (all signed: see institution_api.signing)."""

from __future__ import annotations

from aiohttp import web

from institution_api import handlers


def routes() -> list[web.RouteDef]:
    return [
        web.post("/vouchers/verify", handlers.verify_voucher, name="institution_voucher_verify"),
        web.post("/settlements", handlers.create_settlement, name="institution_settlements"),
        web.post(
            "/settlements/preview", handlers.preview_settlement, name="institution_preview"
        ),
        web.get("/reconciliation", handlers.reconcile, name="institution_reconciliation"),
        web.post(
            "/settlements/{setl_id}/reversal",
            handlers.reverse_settlement,
            name="institution_reversal",
        ),
    ]
