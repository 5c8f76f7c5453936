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

from server.settings import Network, parse_networks

__all__ = ["parse_networks", "real_client_address"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]




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
