"""The embedded demo: demo data (the registry CSV in config/, one demo hospital), the
demo's follower rule for the push worker, and the in-process fake WeChat that stands in
when no real ``WECHAT_API_BASE`` is configured.

This is the one production module that imports the test doubles in ``fakes/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import AsyncIterator

from aiohttp import web

from fakes.wechat import FakeWeChatState, start_fake_wechat
from server import keys
from server.bulk.registry_import import import_csv
from server.domain.institutions import add_institution
from server.settings import CONFIG_DIR, Settings, WeChatSettings

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
    persons = result.created + result.updated + result.unchanged
    log.info("demo data: %d insured persons (%d new), institution %s", persons, result.created, inst.demo_code)
    yield


class EmbeddedWeChat:
    """The fake WeChat running in this process on a free loopback port."""

    def __init__(self, runner: web.AppRunner, api_base: str, state: FakeWeChatState) -> None:
        self.api_base = api_base
        self.state = state
        self._runner = runner

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_embedded_wechat(
    wechat: WeChatSettings, *, receipts_to: str | None = None
) -> EmbeddedWeChat:
    """Start the fake WeChat with our app credentials (used when ``wechat.api_base`` is
    empty). With ``receipts_to`` (this server's base URL) it reports each template
    message's fate to our ``/wechat/official`` as WeChat does (TEMPLATESENDJOBFINISH), so
    the demo's notices reach ``delivered``."""
    state = FakeWeChatState(
        mp_appid=wechat.mp_appid,
        mp_secret=wechat.mp_secret,
        oa_appid=wechat.oa_appid,
        oa_secret=wechat.oa_secret,
    )
    if receipts_to:
        state.configure(
            receipt_url=f"{receipts_to.rstrip('/')}/wechat/official",
            receipt_token=wechat.oa_token,
            receipt_aes_key=wechat.oa_encoding_aes_key,
            # with a key our webhook takes only encrypted pushes (bot.allow_plain_mode)
            receipt_mode="safe" if wechat.oa_encoding_aes_key else "plain",
        )
    runner, api_base, _ = await start_fake_wechat(state=state)
    return EmbeddedWeChat(runner, api_base, state)


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
