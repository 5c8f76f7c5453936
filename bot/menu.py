"""The official account's custom menu, and publishing it through our WeChat gateway.

CLICK keys: ``TROUBLESHOOT`` (personal diagnosis or guided troubleshooting), ``TOPICS``
(the numbered topic list), ``KB:<intent id>`` (that knowledge-base answer).

    python -m server menu publish      # replaces the menu (menu/create)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from server.gateways.wechat import WeChatGateway
from server.settings import Settings

__all__ = ["build_menu", "click_keys", "publish_menu", "publish_from_settings", "KB_PREFIX"]

KB_PREFIX = "KB:"


def build_menu(*, miniprogram_appid: str, miniprogram_path: str) -> dict[str, Any]:
    """At most 3 buttons of at most 5 entries; names ≤ 4 / 8 Chinese characters."""
    return {
        "button": [
            {
                "name": "绑定帮助",
                "sub_button": [
                    {"type": "click", "name": "绑定失败排查", "key": "TROUBLESHOOT"},
                    {"type": "click", "name": "怎么绑定", "key": KB_PREFIX + "how_to_bind"},
                    {"type": "click", "name": "给孩子绑定", "key": KB_PREFIX + "minor_child"},
                    {"type": "click", "name": "怎么解绑", "key": KB_PREFIX + "how_to_unbind"},
                ],
            },
            {
                "name": "常见问题",
                "sub_button": [
                    {"type": "click", "name": "亲情账户与共济", "key": KB_PREFIX + "qinqing_vs_gongji"},
                    {"type": "click", "name": "花的是谁的钱", "key": KB_PREFIX + "whose_money"},
                    {"type": "click", "name": "异地能用吗", "key": KB_PREFIX + "cross_province"},
                    {"type": "click", "name": "全部问题", "key": "TOPICS"},
                ],
            },
            {
                "type": "miniprogram",
                "name": "打开小程序",
                # Old WeChat clients without mini-program support open this page instead.
                "url": "https://mp.weixin.qq.com",
                "appid": miniprogram_appid,
                "pagepath": miniprogram_path,
            },
        ]
    }


def click_keys(menu: dict[str, Any]) -> Iterator[str]:
    """Every CLICK key of a menu (the router must handle each)."""
    for button in menu["button"]:
        for entry in button.get("sub_button") or [button]:
            if entry.get("type") == "click":
                yield entry["key"]


async def publish_menu(gateway: WeChatGateway, access_token: str, menu: dict[str, Any]) -> None:
    """Replace the official account's menu (WeChatError on refusal)."""
    await gateway.create_menu(access_token, menu)


async def publish_from_settings(settings: Settings) -> dict[str, Any]:
    """The CLI's work: build the menu from ``[bot]`` settings and publish it with the
    official account's stable token (the in-process fake WeChat when api_base is empty)."""
    import aiohttp

    from server.gateways.fake_wechat import FakeWeChatState, start_fake_wechat

    section = settings.section("bot")
    menu = build_menu(
        miniprogram_appid=str(section.get("miniprogram_appid") or settings.wechat.mp_appid),
        miniprogram_path=str(section.get("miniprogram_path") or "pages/index/index"),
    )
    runner = None
    api_base = settings.wechat.api_base
    if not api_base:
        state = FakeWeChatState(
            oa_appid=settings.wechat.oa_appid, oa_secret=settings.wechat.oa_secret
        )
        runner, api_base, _ = await start_fake_wechat(state=state)
    try:
        async with aiohttp.ClientSession() as session:
            gateway = WeChatGateway.from_settings(session, settings.wechat, api_base=api_base)
            token = await gateway.stable_token("oa")
            await publish_menu(gateway, token.token, menu)
    finally:
        if runner is not None:
            await runner.cleanup()
    return menu
