"""Decorator dispatch for the bot, knowing nothing of HTTP (WeRoBot's idea, without its
module-global robot and bare excepts).

    router = Router()

    @router.text
    async def answer(message, ctx): ...

    @router.event("subscribe")
    async def welcome(message, ctx): ...

    @router.click("TOPICS")
    async def topics(message, ctx): ...

``await router.get_reply(message, ctx)`` returns the reply text, or None for no reply.
Tests feed it wechatpy messages parsed from XML, without a server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from wechatpy.messages import BaseMessage

__all__ = ["Handler", "Router", "is_event"]

# A handler gets the parsed message and the bot context; answers text or None.
Handler = Callable[[BaseMessage, Any], Awaitable[str | None]]
H = TypeVar("H", bound=Handler)


def is_event(message: BaseMessage) -> bool:
    """True for an event push, including event types wechatpy does not know."""
    return str(getattr(message, "_data", {}).get("MsgType", message.type)).lower() == "event"


class Router:
    """Dispatch table keyed by message type, event type and menu key."""

    def __init__(self) -> None:
        self._types: dict[str, Handler] = {}
        self._events: dict[str, Handler] = {}
        self._clicks: dict[str, Handler] = {}
        self._click_prefixes: list[tuple[str, Handler]] = []
        self._default: Handler | None = None

    # ---- registration ----------------------------------------------------------------

    def message(self, msg_type: str) -> Callable[[H], H]:
        """Handle a message type: ``text``, ``image``, ``voice``, ``location``, ..."""

        def register(handler: H) -> H:
            self._types[msg_type.lower()] = handler
            return handler

        return register

    def text(self, handler: H) -> H:
        return self.message("text")(handler)

    def event(self, event_type: str) -> Callable[[H], H]:
        """Handle an event: ``subscribe``, ``unsubscribe``, ``view``, ``templatesendjobfinish``."""

        def register(handler: H) -> H:
            self._events[event_type.lower()] = handler
            return handler

        return register

    def click(self, key: str, *, prefix: bool = False) -> Callable[[H], H]:
        """Handle a menu CLICK with this EventKey (or every key starting with it)."""

        def register(handler: H) -> H:
            if prefix:
                self._click_prefixes.append((key, handler))
            else:
                self._clicks[key] = handler
            return handler

        return register

    def default(self, handler: H) -> H:
        """Anything no other handler takes."""
        self._default = handler
        return handler

    # ---- dispatch --------------------------------------------------------------------

    def resolve(self, message: BaseMessage) -> Handler | None:
        """The handler for a message, or None."""
        if is_event(message):
            event = str(getattr(message, "event", "")).lower()
            if event == "click":
                key = str(getattr(message, "key", "") or "")
                handler = self._clicks.get(key)
                if handler is None:
                    handler = next(
                        (h for p, h in self._click_prefixes if key.startswith(p)), None
                    )
                if handler is not None:
                    return handler
            if event.startswith("subscribe"):  # subscribe_scan: a QR code with a scene
                event = "subscribe" if event not in self._events else event
            handler = self._events.get(event)
        else:
            handler = self._types.get(message.type)
        return handler if handler is not None else self._default

    async def get_reply(self, message: BaseMessage, ctx: Any) -> str | None:
        """The reply text for ``message`` (None: no reply)."""
        handler = self.resolve(message)
        if handler is None:
            return None
        return await handler(message, ctx)
