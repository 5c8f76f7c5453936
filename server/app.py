"""The app factory: settings in, a ready ``web.Application`` out (no import-time globals)."""

from __future__ import annotations

import logging

from aiohttp import web

from server import keys, lifecycle
from server.domain.pii import PiiCipher
from server.metrics import Metrics
from server.middlewares import error_envelope, request_context
from server.ops import ops_routes
from server.serving import body_deadline
from server.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> web.Application:
    """Build the whole service: resources, middlewares, and the sub-apps of each client."""
    from bot.app import bot_ctx
    from bot.app import create_subapp as create_bot
    from institution_api import create_subapp as create_institution
    from miniapp_api import create_subapp as create_miniapp
    from review_console import console_ctx
    from review_console import create_api_subapp as create_review_api
    from review_console import create_page_subapp as create_review_page
    from server.privacy.context import privacy_ctx
    from server.proxy import parse_networks, real_client_address

    proxies = parse_networks(settings.server.trusted_proxies)
    # behind nginx: the client's address from X-Real-IP (trusted proxies only), first
    outer = [real_client_address(proxies)] if proxies else []
    app = web.Application(
        # the body deadline innermost: its 408 goes through the error envelope
        middlewares=[*outer, request_context, error_envelope, body_deadline(settings.server.body_timeout_s)],
        client_max_size=max(settings.server.max_body_bytes, settings.server.max_upload_bytes),
    )
    app[keys.settings_key] = settings
    app[keys.metrics_key] = Metrics()
    app[keys.pii_key] = PiiCipher(settings.pii.keys, settings.pii.current_kid, settings.pii.hash_key)

    # Order matters: later contexts use earlier resources; cleanup runs in reverse.
    app.cleanup_ctx.extend(
        [
            *lifecycle.core_contexts(),
            lifecycle.services_ctx,
            bot_ctx,
            lifecycle.family_ctx,
            console_ctx,
            privacy_ctx,
        ]
    )
    followers = None  # the push worker's followers beyond our table: the demo's rule only
    if settings.server.demo_data:
        from server.demo import demo_data_ctx, push_follower_fallback

        app.cleanup_ctx.append(demo_data_ctx)
        followers = push_follower_fallback(settings)
    if settings.server.run_worker:
        from server.privacy.job import privacy_job_ctx
        from server.push.worker import worker_ctx_factory

        # notice delivery in-process (README "Push delivery"), and the privacy job
        app.cleanup_ctx.append(worker_ctx_factory(follower_fallback=followers))
        app.cleanup_ctx.append(privacy_job_ctx)

    app.add_routes(ops_routes())
    # The institution sub-app is registered before the mini-program one: its prefix is
    # the longer of the two and must win.
    app.add_subapp("/api/v1/institution", create_institution())
    app.add_subapp("/api/v1/review", create_review_api())
    app.add_subapp("/api/v1", create_miniapp())
    app.add_subapp("/wechat", create_bot())
    app.add_subapp("/review", create_review_page())
    return app
