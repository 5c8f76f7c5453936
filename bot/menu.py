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

__all__ = [
    "KB_PREFIX",
    "build_menu",
    "click_keys",
    "menu_from_settings",
    "publish_from_settings",
    "publish_menu",
]

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


def menu_from_settings(settings: Settings) -> dict[str, Any]:
    """The menu for these settings: the mini-program entry opens ``wechat.mp_appid``
    (``WECHAT_MP_APPID``) at ``[bot] miniprogram_path``."""
    return build_menu(
        miniprogram_appid=settings.wechat.mp_appid, miniprogram_path=settings.bot.miniprogram_path
    )


async def publish_from_settings(settings: Settings, *, api_base: str) -> dict[str, Any]:
    """The CLI's work: build the menu from the settings and publish it to the WeChat at
    ``api_base`` with the official account's stable token; returns the menu."""
    import aiohttp

    menu = menu_from_settings(settings)
    async with aiohttp.ClientSession() as session:
        gateway = WeChatGateway.from_settings(session, settings.wechat, api_base=api_base)
        token = await gateway.stable_token("oa")
        await publish_menu(gateway, token.token, menu)
    return menu
