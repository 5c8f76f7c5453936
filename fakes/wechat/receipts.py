"""Delivery receipts: WeChat reports each template message's fate to the official
account's server, later, as a TEMPLATESENDJOBFINISH event push.

With ``receipt_url`` set (:meth:`FakeWeChatState.configure` or ``/_fake/config``), every
accepted template message is followed, ``receipt_delay`` seconds later, by one such event
POSTed to that URL, signed (and in ``compat`` / ``safe`` mode encrypted) with the official
account's Token and EncodingAESKey exactly as WeChat pushes it
(:class:`fakes.wechat.simulator.WeChatSimulator`). Status is ``success``, or what
``receipt_failures`` says for the openid. A callback that fails is logged and counted in
``stats()["receipts"]``, never raised.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from fakes.wechat.simulator import WeChatSimulator, event_xml

if TYPE_CHECKING:
    from fakes.wechat.state import FakeWeChatState

__all__ = [
    "RECEIPTS_KEY",
    "RECEIPT_MODES",
    "RECEIPT_SUCCESS",
    "RECEIPT_SYSTEM_FAILED",
    "RECEIPT_USER_BLOCK",
    "ReceiptSender",
    "build_receipt_push",
    "receipts_ctx",
]

log = logging.getLogger(__name__)

# TEMPLATESENDJOBFINISH statuses (模板消息 事件推送: 送达成功 / 用户拒收 / 其他原因失败).
RECEIPT_SUCCESS = "success"
RECEIPT_USER_BLOCK = "failed:user block"
RECEIPT_SYSTEM_FAILED = "failed: system failed"
RECEIPT_MODES = ("plain", "compat", "safe")
# WeChatCrypto wants a key even when nothing is encrypted (plain mode): any valid one.
_UNUSED_AES_KEY = base64.b64encode(bytes(32)).decode()[:43]


def build_receipt_push(
    state: FakeWeChatState, *, openid: str, msgid: int
) -> tuple[str, dict[str, str], bytes]:
    """The signed TEMPLATESENDJOBFINISH push for one accepted template message:
    ``(url, query, body)``. Call only with ``receipt_url`` set."""
    assert state.receipt_url is not None
    status = state.receipt_failures.get(openid, RECEIPT_SUCCESS)
    xml = event_xml(
        "TEMPLATESENDJOBFINISH",
        openid=openid,
        extra={"MsgID": str(msgid), "Status": status},
    )
    simulator = WeChatSimulator(
        token=state.receipt_token,
        appid=state.credentials["oa"][0],
        encoding_aes_key=state.receipt_aes_key or _UNUSED_AES_KEY,
    )
    push = simulator.push(xml, state.receipt_mode)  # type: ignore[arg-type]  # a str the control API checks
    return state.receipt_url, push.query, push.body


class ReceiptSender:
    """Posts delivery receipts in the background, on the fake app's own ClientSession
    (opened at the first receipt, closed with the app, pending posts cancelled)."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def schedule(self, state: FakeWeChatState, *, openid: str, msgid: int) -> None:
        if state.receipt_url is None:
            return
        push = build_receipt_push(state, openid=openid, msgid=msgid)
        state.receipts["scheduled"] += 1
        task = asyncio.create_task(self._post(state, state.receipt_delay, *push))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _post(
        self, state: FakeWeChatState, delay: float, url: str, query: dict[str, str], body: bytes
    ) -> None:
        try:
            await asyncio.sleep(delay)
            if self.session is None:
                # WeChat gives the server 5 s to answer a push
                self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
            async with self.session.post(
                url, params=query, data=body, headers={"Content-Type": "text/xml"}
            ) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
        except asyncio.CancelledError:
            state.receipts["cancelled"] += 1
            raise
        except Exception as exc:  # a receipt that cannot be delivered never breaks sending
            state.receipts["failed"] += 1
            log.warning("fake WeChat: receipt POST to %s failed: %r", url, exc)
        else:
            state.receipts["posted"] += 1

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
            self.session = None


RECEIPTS_KEY = web.AppKey("fake_wechat_receipts", ReceiptSender)


async def receipts_ctx(app: web.Application) -> AsyncIterator[None]:
    """The fake app's cleanup: cancel pending receipts, close their session."""
    yield
    await app[RECEIPTS_KEY].close()
