"""The custom menu CLI publishes through the gateway (the fake WeChat validates it)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

import pytest

from bot.menu import build_menu, menu_from_settings
from fakes.wechat import FakeWeChatState
from server.__main__ import build_parser, cmd_menu
from server.settings import Settings


async def test_menu_publish_cli(
    make_settings: Callable[..., Settings],
    wechat_state: FakeWeChatState,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings()
    args = build_parser().parse_args(["menu", "publish"])
    # The CLI runs its own event loop: in a thread, so the fake keeps serving on this one.
    assert await asyncio.to_thread(cmd_menu, args, settings) == 0
    assert wechat_state.menu == build_menu(
        miniprogram_appid="wxdemo_mp", miniprogram_path="pages/index/index"
    )
    assert "menu published" in capsys.readouterr().out


async def test_menu_publish_reports_wechat_refusal(
    make_settings: Callable[..., Settings],
    wechat_state: FakeWeChatState,
    capsys: pytest.CaptureFixture[str],
) -> None:
    wechat_state.inject("/cgi-bin/menu/create", 40017)
    args = argparse.Namespace(command="menu", action="publish")
    assert await asyncio.to_thread(cmd_menu, args, make_settings()) == 1
    assert "40017" in capsys.readouterr().err
    assert wechat_state.menu is None


async def test_menu_opens_the_configured_mini_program(
    make_settings: Callable[..., Settings],
    wechat_state: FakeWeChatState,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One source for the appid: WECHAT_MP_APPID (wechat.mp_appid), never a demo copy in
    [bot]; the page comes from [bot] miniprogram_path."""
    settings = make_settings(
        **{"wechat.mp_appid": "wx0123456789abcdef", "bot.miniprogram_path": "pages/home/home"}
    )
    args = build_parser().parse_args(["menu", "publish"])
    assert await asyncio.to_thread(cmd_menu, args, settings) == 0
    assert wechat_state.menu is not None
    entry = wechat_state.menu["button"][2]
    assert (entry["appid"], entry["pagepath"]) == ("wx0123456789abcdef", "pages/home/home")
    with pytest.raises(ValueError, match="unknown setting bot.miniprogram_appid"):
        menu_from_settings(make_settings(**{"bot.miniprogram_appid": "wxdemo_mp"}))


async def test_menu_publish_without_wechat_says_it_went_to_the_fake(
    make_settings: Callable[..., Settings],
    wechat_state: FakeWeChatState,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(**{"wechat.api_base": ""})
    args = build_parser().parse_args(["menu", "publish"])
    assert await asyncio.to_thread(cmd_menu, args, settings) == 0
    out = capsys.readouterr().out
    assert "embedded fake WeChat" in out and "nothing reached WeChat" in out
    assert "menu published" not in out
    assert wechat_state.menu is None  # the test's own fake (a configured WeChat) saw nothing
