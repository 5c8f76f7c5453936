"""The baseline: a minimal aiohttp app answering a small JSON, served like our server.

Same event loop (uvloop), one worker process, no access log. ``python -m bench.bare_app --port P``.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from server.__main__ import new_loop

PAYLOAD = {"status": "ok", "id": 1, "realname_verified": False}


async def hello(request: web.Request) -> web.Response:
    return web.json_response(PAYLOAD)


def main() -> None:
    p = argparse.ArgumentParser(description="bare aiohttp JSON endpoint (bench baseline)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/healthz", hello)
    web.run_app(app, host=args.host, port=args.port, print=None, loop=new_loop(), access_log=None)


if __name__ == "__main__":
    main()
