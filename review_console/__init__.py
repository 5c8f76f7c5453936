"""The bureau's console for 医保经办 staff (issue #14, docs/console.md): staff accounts
and sessions, the review queue, 窗口代办 at the counter, failure analytics, the push
queue and the audit log — server-rendered pages under /review, plus the demo-only
static-token JSON API under /api/v1/review."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp_jinja2
import jinja2
from aiohttp import web

from review_console.routes import api_routes, page_routes
from review_console.session import console_middleware

log = logging.getLogger(__name__)


def create_api_subapp() -> web.Application:
    """DEMO ONLY: JSON API under /api/v1/review (static reviewer tokens; 404 in production)."""
    app = web.Application()
    app.add_routes(api_routes())
    return app


def create_page_subapp() -> web.Application:
    """The console's pages under /review (sessions, CSRF and headers in one middleware)."""
    app = web.Application(middlewares=[console_middleware])
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("review_console", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals["static"] = lambda path: app.router["console_static"].url_for(filename=path)
    app.add_routes(page_routes())
    return app


async def console_ctx(app: web.Application) -> AsyncIterator[None]:
    """The staff service and the review desk; in production, refuse demo staff; in demo
    mode, create them (docs/console.md)."""
    from server import keys
    from server.domain import staff as staff_domain
    from server.domain.claims import Claims
    from server.domain.counter_desk import CounterDesk
    from server.domain.review import ReviewDesk

    settings = app[keys.settings_key]
    c = settings.console
    hasher = staff_domain.hasher_for(c.argon2_time_cost, c.argon2_memory_kib, c.argon2_parallelism)
    app[keys.staff_key] = staff_domain.StaffService(
        redis=app[keys.redis_key],
        hasher=hasher,
        policy=staff_domain.SessionPolicy(
            idle_seconds=c.idle_timeout_seconds,
            max_seconds=c.session_max_seconds,
            failures_per_name=c.login_failures_per_name,
            failures_per_ip=c.login_failures_per_ip,
            failure_window_seconds=c.login_failure_window_seconds,
            refuse_demo=settings.is_production,
        ),
    )
    app[keys.review_desk_key] = ReviewDesk(
        pii=app[keys.pii_key],
        policy=app[keys.policy_key],
        claims=Claims(app[keys.redis_key], seconds=c.claim_seconds),
        binding=app[keys.family_key],
    )
    app[keys.counter_desk_key] = CounterDesk(family=app[keys.family_key])
    if settings.is_production:
        await staff_domain.refuse_demo_staff()
    elif settings.server.demo_data:
        names = await staff_domain.ensure_demo_staff(hasher=hasher, password=c.demo_staff_password)
        log.warning(
            "DEMO staff for the console at /review/: %s, password %r (demo only; "
            "production refuses them)", ", ".join(names), c.demo_staff_password,
        )
    yield
