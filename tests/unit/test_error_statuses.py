"""The HTTP status of every error code is decided in one table (server/http_errors.py):
every code production code raises is in it, and domain errors carry no HTTP status."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

from server.domain.errors import DomainError
from server.domain.reasons import REASONS
from server.http_errors import STATUS, Unauthenticated, headers_of, status_of

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("server", "miniapp_api", "institution_api", "bot", "review_console")
# functions whose first argument is an error code (the constructors and their helpers)
RAISERS = {"DomainError", "Unauthenticated", "_unauthorized", "_refuse"}


def _raised_codes() -> dict[str, str]:
    codes: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if name in RAISERS and node.args and isinstance(node.args[0], ast.Constant):
                    codes[node.args[0].value] = where
                for kw in node.keywords:  # CSV readers: error_code="REGISTRY_CSV_INVALID"
                    if kw.arg == "error_code" and isinstance(kw.value, ast.Constant):
                        codes[kw.value.value] = where
    return codes


def test_every_raised_code_has_a_status() -> None:
    codes = _raised_codes()
    assert len(codes) > 60  # the scan sees the code base
    missing = {code: where for code, where in codes.items() if code not in STATUS}
    assert missing == {}
    assert set(REASONS) <= set(STATUS)


def test_domain_errors_know_no_http() -> None:
    params = inspect.signature(DomainError).parameters
    assert not {"status", "headers"} & set(params)
    err = DomainError("RATE_LIMITED", "操作过于频繁", retry_after=7)
    assert status_of(err) == 429 and headers_of(err) == {"Retry-After": "7"}
    assert status_of(DomainError("TOKEN_EXPIRED", "登录已过期")) == 401
    assert headers_of(DomainError("TOKEN_EXPIRED", "登录已过期")) == {"WWW-Authenticate": "Bearer"}
    refused = Unauthenticated("SIGNATURE_INVALID", "签名校验失败", challenge="HMAC-SHA256")
    assert (status_of(refused), headers_of(refused)) == (401, {"WWW-Authenticate": "HMAC-SHA256"})
    # a code no table knows answers 400, as DomainError's old default did
    assert status_of(DomainError("SOMETHING_NEW", "新的错误")) == 400


async def test_a_gateway_error_no_use_case_translated_is_mapped_in_the_middleware(
    aiohttp_client: Any,
) -> None:
    from aiohttp import web

    from server.gateways.storage import ObjectNotFound
    from server.gateways.wechat import WeChatError, WeChatUnavailable
    from server.middlewares import error_envelope

    raised: list[Exception] = [
        WeChatUnavailable("timeout"),
        ObjectNotFound("k"),
        WeChatError(40001, "invalid credential"),
    ]

    async def failing(request: web.Request) -> web.Response:
        raise raised.pop(0)

    app = web.Application(middlewares=[error_envelope])
    app.router.add_get("/x", failing)
    client = await aiohttp_client(app)
    down = await client.get("/x")
    assert down.status == 503 and down.headers["Retry-After"] == "5"
    assert (await down.json())["error"]["code"] == "WECHAT_UNAVAILABLE"
    gone = await client.get("/x")
    assert gone.status == 404 and (await gone.json())["error"]["code"] == "MATERIAL_NOT_FOUND"
    refused = await client.get("/x")
    assert refused.status == 503 and "Retry-After" not in refused.headers
