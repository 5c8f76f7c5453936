"""The embedded demo's wiring: the registry CSV in config/, one demo hospital, and the
demo's follower rule for the push worker."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import AsyncIterator

from aiohttp import web

from server import keys
from server.domain.institutions import add_institution
from server.domain.registry import import_csv
from server.settings import CONFIG_DIR, Settings

log = logging.getLogger(__name__)

DEMO_REGISTRY = CONFIG_DIR / "demo_registry.csv"


async def demo_data_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings_key]
    pii = app[keys.pii_key]
    result = await import_csv(DEMO_REGISTRY, pii=pii)
    inst = settings.institution
    await add_institution(
        code=inst.demo_code, name=inst.demo_name, region_code=inst.demo_region, pii=pii, secret=inst.demo_secret
    )
    log.info("demo data: %d insured persons (%d new), institution %s", result.created + result.updated, result.created, inst.demo_code)
    yield


def demo_follower(unionid: str) -> str | None:
    """The fake WeChat's convention (API.md "Demo mode"): the official-account openid
    ``oa-<user>`` follows with unionid ``union-<user>``, even before the bot has seen its
    subscribe event — so the demo's notices arrive as template messages."""
    if unionid.startswith("union-"):
        return "oa-" + unionid.removeprefix("union-")
    return None


def push_follower_fallback(settings: Settings) -> Callable[[str], str | None] | None:
    """The push worker's follower rule beyond our table: the demo's, only with demo data
    and the in-process fake WeChat (no ``WECHAT_API_BASE``); None otherwise — always in
    production, which refuses to start without a real WeChat base URL."""
    if settings.server.demo_data and not settings.wechat.api_base:
        return demo_follower
    return None
