"""Build and start the fake WeChat as a real aiohttp application on loopback."""

from __future__ import annotations

from aiohttp import web

from fakes.wechat.api import add_api_routes
from fakes.wechat.control import add_control_routes
from fakes.wechat.receipts import RECEIPTS_KEY, ReceiptSender, receipts_ctx
from fakes.wechat.state import FAKE_STATE_KEY, FakeWeChatState

__all__ = ["create_fake_wechat_app", "start_fake_wechat"]


def create_fake_wechat_app(state: FakeWeChatState | None = None) -> web.Application:
    """Build the fake WeChat application; its state is ``app[FAKE_STATE_KEY]``."""
    app = web.Application()
    app[FAKE_STATE_KEY] = state if state is not None else FakeWeChatState()
    app[RECEIPTS_KEY] = ReceiptSender()
    app.cleanup_ctx.append(receipts_ctx)
    add_api_routes(app)
    add_control_routes(app)
    return app


async def start_fake_wechat(
    host: str = "127.0.0.1", port: int = 0, state: FakeWeChatState | None = None
) -> tuple[web.AppRunner, str, FakeWeChatState]:
    """Start the fake on ``host:port`` (0: any free port).

    Returns ``(runner, base_url, state)``; the caller must ``await runner.cleanup()``.
    Handlers are cancelled when the client goes away, so a stalled call does not hold
    up shutdown after the client timed out.
    """
    state = state if state is not None else FakeWeChatState()
    app = create_fake_wechat_app(state)
    runner = web.AppRunner(
        app, handler_cancellation=True, shutdown_timeout=2.0, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = runner.addresses[0][1]
    return runner, f"http://{host}:{bound_port}", state
