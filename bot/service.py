"""The bot's use case: answer each WeChat push once, in time, to the right person.

Order of work for one push (``BotService.answer``):

1. one Redis command (a Lua script, batched with concurrent requests' commands): claim
   the message (``SET NX`` on its dedupe key), count it for the follower's rate limit,
   open the customer-service window, and read the follower's dialogue state;
2. a retry of a claimed message waits (≤ ``retry_wait_seconds``) for the first answer
   and returns the same reply — WeChat retries after 5 s, 3 times, and the retries may
   reach another process;
3. the router computes the reply within ``reply_budget_seconds``; past it we answer
   "success" and the reply goes out later as a customer-service message;
4. the rendered reply is stored under the dedupe key for later retries (queued, not
   awaited: it leaves with the next batch, before any later command).

The reply path never calls WeChat: learning a follower's unionid and customer-service
sends run as background tasks on the app's shared ClientSession.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError, RedisError
from wechatpy.messages import BaseMessage

from bot import diagnosis
from bot.batching import Coalescer, RedisBatcher
from bot.codec import Codec, Refused, reply_xml
from bot.customer_service import WINDOW_SECONDS, CustomerService
from bot.dialogue import NOT_READ, Dialogue, NotRead
from bot.followers import FollowerBudget
from bot.nlu import KnowledgeBase
from bot.router import Router, is_event
from server.domain.pii import PiiCipher
from server.feature_settings import BotSettings as BotConfig
from server.gateways.token_cache import TokenCache
from server.gateways.wechat import WeChatGateway
from server.redis_client import tag
from server.settings import Settings

__all__ = ["BotConfig", "BotService", "Turn", "dedupe_key"]

log = logging.getLogger(__name__)

# Stored under the dedupe key: P = being answered, R<xml> = this reply, E = no reply.
_PENDING, _REPLY, _EMPTY = b"P", b"R", b"E"
# Events a follower makes (they open the customer-service window and count for the
# rate limit); the rest (unsubscribe, VIEW, TEMPLATESENDJOBFINISH) come from WeChat.
_USER_EVENTS = frozenset({"subscribe", "subscribe_scan", "scan", "click"})
_REDIS_DOWN = "系统繁忙,请稍后再试。"
# Messages that are questions: typed, or spoken (WeChat's Recognition text).
_QUESTION_TYPES = frozenset({"text", "voice"})

# Step 1 in one command (fewer round trips and far less client work than five):
# KEYS dedupe, rate-limit counter, customer-service window, dialogue state, nonce binding;
# ARGV dedupe TTL, user-made (0/1), open the window (0/1), is text (0/1), window seconds,
# body digest ("" unless plain mode), nonce binding TTL.
# Returns {claimed 0/1, messages this minute, dialogue question id or ""}, or {-1, 0, ""}
# when the signed nonce already carried another body (a forgery: nothing else is done);
# a retry (not claimed) counts for nothing.
_CLAIM = """
if ARGV[6] ~= '' and not redis.call('SET', KEYS[5], ARGV[6], 'NX', 'EX', ARGV[7]) then
  if redis.call('GET', KEYS[5]) ~= ARGV[6] then
    return {-1, 0, ''}
  end
end
if not redis.call('SET', KEYS[1], 'P', 'NX', 'EX', ARGV[1]) then
  return {0, 0, ''}
end
local count = 0
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], 0, 'NX', 'EX', 60)
  count = redis.call('INCR', KEYS[2])
end
if ARGV[3] == '1' then
  redis.call('SET', KEYS[3], 0, 'EX', ARGV[5])
end
local node = ''
if ARGV[4] == '1' then
  node = redis.call('GET', KEYS[4]) or ''
end
return {1, count, node}
"""
_CLAIM_SHA = hashlib.sha1(_CLAIM.encode()).hexdigest()
# The claim's first step alone (a Redis Cluster: the nonce is in another slot than the
# follower's keys). KEYS nonce binding; ARGV body digest, TTL. -1: another body (forgery).
_BIND = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return -1
  end
end
return 1
"""


@dataclass(frozen=True)
class Turn:
    """What a handler gets besides the message: the bot, and state read ahead for it."""

    bot: BotService
    dialogue_node: str | None | NotRead = NOT_READ


def _log_store_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("storing a bot reply for retries failed: %r", future.exception())


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _release_when_done(waiter: asyncio.Future[None], _done: asyncio.Future[Any]) -> None:
    _release(waiter)


def dedupe_key(message: BaseMessage) -> str:
    """Messages by FromUserName + MsgId (bare MsgIds have collided under load); events by
    FromUserName + CreateTime + Event + EventKey (SPEC.md "The bot"), plus the MsgID an
    event carries (TEMPLATESENDJOBFINISH): two receipts in one second are two events."""
    raw = getattr(message, "_data", {})
    if is_event(message):
        return (
            f"bot:seen:e:{tag(message.source)}:{message.time}:"
            f"{raw.get('Event', '')}:{raw.get('EventKey', '')}:{raw.get('MsgID', '')}"
        )
    # WeChat's documentation spells a voice message's id "MsgID" in places and "MsgId" in
    # its examples: take either, and never let a missing id (0) merge distinct messages.
    msg_id = raw.get("MsgId") or raw.get("MsgID")
    if not msg_id:
        msg_id = f"t{message.time}:{raw.get('MediaId', '')}"
    return f"bot:seen:m:{tag(message.source)}:{msg_id}"


class BotService:
    """Everything the webhook needs; built once per app (see ``bot.app.bot_ctx``)."""

    def __init__(
        self,
        *,
        config: BotConfig,
        codec: Codec,
        kb: KnowledgeBase,
        router: Router,
        redis: Any,
        pii: PiiCipher,
        wechat: WeChatGateway | None = None,
        batch_redis: Any = None,
    ) -> None:
        self.config = config
        self.codec = codec
        self.kb = kb
        self.router = router
        self.redis = redis
        self.pii = pii
        self.wechat = wechat
        # Followers ask the same questions over and over ("你好", "怎么解绑"): matching is
        # pure, so its result is cached per exact text.
        self.match = functools.lru_cache(maxsize=4096)(kb.match)
        # the official account's token is shared with the push workers (one per app, in
        # Redis, forced refreshes budgeted): this process never forces a refresh itself
        self.tokens = TokenCache(redis, wechat, "oa") if wechat is not None else None
        self.customer_service = (
            CustomerService(redis, wechat, self.tokens) if wechat is not None and self.tokens else None
        )
        # the reply path's commands go through the batcher, on its own client when given
        self._batch_redis = batch_redis
        self.batch = RedisBatcher(batch_redis if batch_redis is not None else redis)
        self.dialogue = Dialogue(self.batch.run, kb, ttl_seconds=config.dialogue_ttl_seconds)
        self._claim_cached = False  # whether Redis has _CLAIM in its script cache
        # personal diagnosis reads the database: concurrent followers share the queries
        self.diagnoses: Coalescer[str, diagnosis.Diagnosis] = Coalescer(self._diagnose)
        self.links = diagnosis.Links()
        self.budget = FollowerBudget(redis, config)
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        kb: KnowledgeBase,
        router: Router,
        redis: Any,
        pii: PiiCipher,
        wechat: WeChatGateway | None,
    ) -> BotService:
        config = settings.bot
        codec = Codec(
            token=settings.wechat.oa_token,
            appid=settings.wechat.oa_appid,
            encoding_aes_key=settings.wechat.oa_encoding_aes_key,
            previous_encoding_aes_key=settings.wechat.oa_previous_encoding_aes_key,
            window_seconds=config.timestamp_window_seconds,
            allow_plain_mode=config.allow_plain_mode,
        )
        return cls(
            config=config, codec=codec, kb=kb, router=router, redis=redis, pii=pii, wechat=wechat,
            batch_redis=RedisBatcher.dedicated_client(settings.redis.url) if settings.redis.url else None,
        )

    # ---- the reply path --------------------------------------------------------------

    async def answer(
        self, message: BaseMessage, binding: tuple[str, bytes] | None = None
    ) -> str | None:
        """The passive reply XML for a push (None: answer "success", no message).

        ``binding`` (plain mode): the signed "timestamp:nonce" and the body's digest. The
        first body a nonce carried is remembered for as long as the timestamp is valid; a
        retry with the same body is answered as usual, another body is ``Refused``."""
        key = dedupe_key(message)
        openid = message.source
        user_made = not is_event(message) or str(getattr(message, "event", "")) in _USER_EVENTS
        ttl = self.config.dedupe_ttl_seconds
        # a typed or spoken question may answer an open troubleshooting dialogue
        is_text = message.type in _QUESTION_TYPES
        open_window = user_made and self.customer_service is not None
        nonce, digest = binding if binding is not None else ("", b"")
        # a timestamp is accepted from window seconds before it was made to window seconds
        # after: the binding must outlive every moment the signature is still accepted
        binding_ttl = 2 * self.config.timestamp_window_seconds
        nonce_key = f"bot:nonce:{nonce}"
        split = bool(digest) and self.batch.cluster
        # One follower's keys share a hash tag (one Redis Cluster slot). The nonce's binding
        # is global, so on a cluster it is checked first, by itself (a gate: nothing in the
        # claim depends on it); when the claim does not bind (split, or no digest: an
        # encrypted push) it gets an unused key of the follower's slot in its place.
        claim_keys = [
            key, f"bot:rl:{tag(openid)}", CustomerService.key(openid), Dialogue.key(openid),
            nonce_key if digest and not split else key,
        ]
        claim_args: list[int | bytes] = [
            ttl, int(user_made), int(open_window), int(is_text), WINDOW_SECONDS,
            b"" if split else digest, binding_ttl,
        ]

        # One budget for the whole answer, the claim included: a Redis that accepts
        # connections but does not answer (frozen, a network black hole) must cost the
        # follower "系统繁忙", not WeChat's 5-second timeout (issue #15, found by the
        # frozen-Redis fault test: 5.0 s with the batcher's own 5 s deadline)
        deadline = self.batch.loop().time() + self.config.reply_budget_seconds
        try:
            if split:  # a cluster: the nonce's key is in another slot, its own script first
                bound = await self.batch.run("EVAL", _BIND, 1, nonce_key, digest, binding_ttl)
                if bound == -1:
                    raise Refused(403, "nonce reused with another body")
            try:
                claimed, count, node = await self._claim(claim_keys, claim_args, deadline)
            except NoScriptError:  # Redis restarted or its script cache was flushed
                self._claim_cached = False
                claimed, count, node = await self._claim(claim_keys, claim_args, deadline)
            self._claim_cached = True
        except (RedisError, OSError) as exc:  # OSError: TimeoutError too
            # Without Redis we cannot tell a retry from a first delivery: say so briefly
            # rather than risk answering twice or failing with a 500 WeChat retries.
            log.error("bot cannot reach Redis: %r", exc)
            return reply_xml(_REDIS_DOWN, message)
        if claimed == -1:
            raise Refused(403, "nonce reused with another body")
        if not claimed:
            return await self._first_answer(key)
        turn = Turn(self, Dialogue.decode(node or None) if is_text else NOT_READ)

        if user_made and count > self.config.rate_limit_per_minute:
            # Flooding: one warning, then silence until the minute is over.
            text: str | None = (
                "您发送消息太频繁了,请稍等一分钟再试。"
                if count == self.config.rate_limit_per_minute + 1
                else None
            )
        else:
            text = await self._within_budget(message, turn, deadline)
        reply = reply_xml(text, message) if text else ""
        stored = _REPLY + reply.encode() if reply else _EMPTY

        # Not awaited: the reply goes out now; the store follows in the next batch, ahead
        # of any retry's read (batches leave in order).
        self.batch.submit("SET", key, stored, "EX", ttl).add_done_callback(_log_store_failure)
        return reply or None

    async def _claim(
        self, claim_keys: list[str], claim_args: list[int | bytes], deadline: float
    ) -> list[Any]:
        # EVALSHA once Redis has the script (an EVAL put it in its cache): the script's
        # 500 bytes are not sent and hashed again for every push
        if self._claim_cached:
            command: tuple[Any, ...] = ("EVALSHA", _CLAIM_SHA)
        else:
            command = ("EVAL", _CLAIM)
        future = self.batch.submit(*command, len(claim_keys), *claim_keys, *claim_args)
        loop = self.batch.loop()
        if not future.done():
            # asyncio.wait_for's work without its getpid() syscalls (see _within_budget)
            waiter = loop.create_future()
            timer = loop.call_at(deadline, _release, waiter)
            future.add_done_callback(functools.partial(_release_when_done, waiter))
            try:
                await waiter
            finally:
                timer.cancel()
        if not future.done():
            future.cancel()  # the batcher skips a cancelled caller's reply
            raise TimeoutError("Redis did not answer the claim within the reply budget")
        return future.result()  # type: ignore[no-any-return]

    async def _within_budget(self, message: BaseMessage, turn: Turn, deadline: float) -> str | None:
        # What asyncio.wait({task}, timeout=budget) does, on the loop the batcher already
        # knows: ensure_future and wait each ask get_running_loop(), a getpid() syscall
        # that costs several µs on this VM, for every push.
        loop = self.batch.loop()
        task = loop.create_task(self.get_reply(message, turn))
        waiter = loop.create_future()
        timer = loop.call_at(deadline, _release, waiter)
        task.add_done_callback(functools.partial(_release_when_done, waiter))
        try:
            await waiter
        finally:
            timer.cancel()
        if task.done():
            return task.result()
        # Too slow for a passive reply: say nothing now, send it when it is ready.
        log.warning("bot reply over budget: finishing through customer service")
        openid = message.source
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._late_reply(t, openid))
        return None

    def _late_reply(self, task: asyncio.Task[str | None], openid: str) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        text = task.result()
        if text and self.customer_service is not None:
            self.spawn(self.customer_service.send(openid, text))

    async def get_reply(self, message: BaseMessage, turn: Turn | None = None) -> str | None:
        """The router's answer; an error in a handler becomes an apology, never a crash."""
        try:
            return await self.router.get_reply(message, turn or Turn(self))
        except Exception:  # noqa: BLE001 — the follower must get an answer whatever broke
            log.exception("bot handler failed for a %s message", message.type)
            return "抱歉,系统开小差了,请稍后再试。"

    async def _first_answer(self, key: str) -> str | None:
        """A retry: the reply of the first delivery (waiting while it is being computed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.retry_wait_seconds
        delay = 0.02
        while True:
            raw = await self.batch.run("GET", key)
            if raw is None or raw[:1] == _EMPTY:
                return None
            if raw[:1] == _REPLY:
                return bytes(raw[1:]).decode()
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _diagnose(self, openids: list[str]) -> dict[str, diagnosis.Diagnosis]:
        return await diagnosis.diagnose(
            openids, pii=self.pii, days=self.config.diagnosis_days, links=self.links
        )

    # ---- background work (never on the reply path) -----------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; kept referenced, errors logged, cancelled on stop."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bot background task failed", exc_info=task.exception())

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for background tasks (tests, and shutdown before cancelling)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        # Cancelled again until they stop: a library may swallow one cancellation (redis-py
        # does when it lands as a command's reply arrives) and go on to its next await.
        pending = set(self._tasks)
        for _ in range(50):
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        if pending:
            log.warning("%d bot background tasks ignored cancellation", len(pending))
        await self.batch.close()
        if self._batch_redis is not None:
            await self._batch_redis.aclose()
        await self.diagnoses.close()
        if self.tokens is not None:
            await self.tokens.close()

    async def access_token(self) -> str:
        """The official account's access token (the shared TokenCache)."""
        if self.tokens is None:
            raise RuntimeError("no WeChat gateway configured")
        return await self.tokens.get()
