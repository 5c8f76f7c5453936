"""The HTTP side of /wechat/official: GET URL verification and POSTed pushes.

The protocol itself (signature, timestamp window, AES, XML) is ``bot.codec``; the answer
is ``bot.service.BotService.answer``. Handlers stay thin: open, answer, seal.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.codec import Refused
from server import keys

__all__ = ["official_get", "official_post"]

log = logging.getLogger(__name__)


def _no_reply(status: int) -> web.Response:
    # WeChat shows nothing to the follower for a non-200 or an empty body.
    return web.Response(status=status, text="", content_type="text/plain")


async def official_get(request: web.Request) -> web.Response:
    """URL verification: WeChat sends signature, timestamp, nonce, echostr."""
    bot = request.config_dict[keys.bot_key]
    try:
        echostr = bot.codec.echo(request.query)
    except Refused as refused:
        log.info("official-account GET refused: %s", refused.why)
        return _no_reply(refused.status)
    return web.Response(text=echostr, content_type="text/plain")


async def official_post(request: web.Request) -> web.Response:
    """A message or event: answered once, within WeChat's 5 s, passive reply in the body.

    A request is refused (403, no reply) when: the signature is wrong, the timestamp is
    outside the window, msg_signature is wrong, it is plain while safe mode is configured,
    or (plain mode) its signed nonce already carried another body. It is refused with 400 when the body is
    too large, not UTF-8, not decryptable with either AES key, or not a WeChat message.
    """
    bot = request.config_dict[keys.bot_key]
    if request.content_length is not None and request.content_length > bot.config.max_body_bytes:
        return _no_reply(413)
    body = await request.read()  # chunked bodies are capped by client_max_size
    if len(body) > bot.config.max_body_bytes:
        return _no_reply(413)
    try:
        inbound = bot.codec.open(request.query, body)
        reply_xml = await bot.answer(inbound.message, inbound.binding)
    except Refused as refused:
        # the reason only: never the body, the openid or the query
        log.info("official-account POST refused: %s", refused.why)
        return _no_reply(refused.status)
    if not reply_xml:
        return web.Response(text="success", content_type="text/plain")
    return web.Response(
        text=bot.codec.seal(reply_xml, inbound), content_type="application/xml"
    )
