"""The client's address behind our reverse proxy (deploy/nginx/qinqing.conf).

Behind nginx every request comes from the proxy's address, so the per-address limits
(logins per minute, the identity-guessing budget, the console's failed logins) would
count every citizen as one client — one abuser would lock everybody out, and a busy
morning would trip them for all. ``[server] trusted_proxies`` (``TRUSTED_PROXIES``,
comma-separated addresses or networks) names the proxies; a request whose peer is one of
them is taken to come from its ``X-Real-IP`` header, which our nginx config overwrites
with the address it saw. From any other peer the header is ignored (anyone can send it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

__all__ = ["parse_networks", "real_client_address"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` → networks; a ValueError names a bad entry."""
    out: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"server.trusted_proxies: {item!r} is no address or network") from None
    return tuple(out)


def _trusted(peer: str | None, networks: tuple[Network, ...]) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in networks)


def real_client_address(networks: tuple[Network, ...]) -> Middleware:
    """A middleware: ``request.remote`` becomes the proxy's ``X-Real-IP`` for requests
    from a trusted proxy."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        real = request.headers.get("X-Real-IP", "").strip()
        if real and _trusted(request.remote, networks):
            try:
                ipaddress.ip_address(real)
            except ValueError:
                return await handler(request)  # a proxy that sends garbage: keep its own
            return await handler(request.clone(remote=real))
        return await handler(request)

    return middleware
