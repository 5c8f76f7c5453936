"""The custom menu CLI publishes through the gateway (the fake WeChat validates it)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

import pytest

from bot.menu import build_menu
from server.__main__ import build_parser, cmd_menu
from server.gateways.fake_wechat import FakeWeChatState
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
