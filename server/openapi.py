"""Endpoint declarations: one decorator validates input with pydantic and feeds OpenAPI.

    @endpoint(summary="登录", body=LoginIn, response=TokenOut, auth=False)
    async def login(request: web.Request, body: LoginIn) -> web.Response: ...

The same pydantic models that validate requests generate ``/api/openapi.json``, so the
contract is written once. Auth (``auth=True``, default) resolves the bearer token before
the handler runs and sets ``request[keys.user_id_key]``.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server import keys
from server.consttime import same
from server.domain.errors import DomainError
from server.http_errors import Unauthenticated
from server.write_limits import ENDPOINT_LIMIT, LIMIT_ATTR
from server.write_limits import spend as spend_write_budget

M = TypeVar("M", bound=BaseModel)


@dataclass
class EndpointSpec:
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    # True: mini-program user (JWT), "reviewer": reviewer token, "institution": signed by
    # institution_api's middleware (documented here, checked there), False: none
    auth: bool | str = True
    tags: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    content_type: str | None = None  # e.g. "multipart/form-data" for uploads (not parsed here)
    extra: dict[str, Any] = field(default_factory=dict)


SPEC_ATTR = "__endpoint_spec__"


def endpoint(
    *,
    summary: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    auth: bool | str = True,
    tags: tuple[str, ...] = (),
    errors: tuple[str, ...] = (),
    content_type: str | None = None,
) -> Callable[[Callable[..., Awaitable[web.StreamResponse]]], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    spec = EndpointSpec(summary, body, query, response, status, auth, tags, errors, content_type)

    def decorate(fn: Callable[..., Awaitable[web.StreamResponse]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(fn)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if spec.auth == "reviewer":
                await authenticate_reviewer(request)
            elif spec.auth is True:
                await authenticate(request)
            await spend_write_budget(request)  # writes only: server.write_limits
            kwargs: dict[str, Any] = {}
            if spec.body is not None:
                kwargs["body"] = await parse_json(request, spec.body)
            if spec.query is not None:
                kwargs["query"] = validate(spec.query, dict(request.query))
            return await fn(request, **kwargs)

        setattr(wrapper, SPEC_ATTR, spec)
        setattr(wrapper, LIMIT_ATTR, ENDPOINT_LIMIT)
        return wrapper

    return decorate


async def authenticate(request: web.Request) -> int:
    """Resolve ``Authorization: Bearer`` into ``request[keys.user_id_key]`` or answer 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("UNAUTHORIZED", "请先登录", challenge="Bearer")
    auth = request.config_dict[keys.auth_key]
    user_id = await auth.verify_access(token.strip())
    request[keys.user_id_key] = user_id
    return user_id


REVIEWER_FAILURES_PER_WINDOW = 10
REVIEWER_FAILURE_WINDOW_SECONDS = 600


async def authenticate_reviewer(request: web.Request) -> str:
    """Reviewer console calls carry ``Authorization: Bearer <reviewer token>`` (config [review]).

    Wrong tokens are counted per client address: after ``REVIEWER_FAILURES_PER_WINDOW`` in
    a window every attempt from that address is 429 until it ends, right token or not
    (issue #17 finding 12: 1,000 guesses in 0.7 s)."""
    redis = request.config_dict[keys.redis_key]
    window = int(time.time() // REVIEWER_FAILURE_WINDOW_SECONDS)
    fails_key = f"rl:review-auth-fail:{request.remote or '-'}:{window}"
    failures = int(await redis.get(fails_key) or 0)
    if failures >= REVIEWER_FAILURES_PER_WINDOW:
        retry = (window + 1) * REVIEWER_FAILURE_WINDOW_SECONDS - int(time.time())
        raise DomainError(
            "RATE_LIMITED", "尝试次数过多,请稍后再试", retry_after=max(1, retry)
        )
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    reviewers = request.config_dict[keys.settings_key].review.reviewers
    for name, expected in reviewers.items():
        if scheme.lower() == "bearer" and token and same(token.strip(), str(expected)):
            request[keys.reviewer_key] = name
            return name
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(fails_key)
        pipe.expire(fails_key, REVIEWER_FAILURE_WINDOW_SECONDS + 1)
        await pipe.execute()
    raise Unauthenticated("UNAUTHORIZED", "请使用审核员凭证登录", challenge="Bearer")


async def parse_json(request: web.Request, model: type[M]) -> M:
    limit = request.config_dict[keys.settings_key].server.max_body_bytes
    if (request.content_length or 0) > limit:
        raise DomainError("PAYLOAD_TOO_LARGE", f"请求内容过大(上限 {limit // 1024} KB)")
    raw = await request.read()
    if len(raw) > limit:
        raise DomainError("PAYLOAD_TOO_LARGE", f"请求内容过大(上限 {limit // 1024} KB)")
    if b"\\u0000" in raw:
        # PostgreSQL text cannot hold NUL: refused at the edge for every field (issue #17)
        raise DomainError(
            "VALIDATION_FAILED", "提交的内容含有非法字符", fields={"body": "INVALID_CHARACTER"}
        )
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):  # nested 100k deep: 400, not 500
        raise DomainError("MALFORMED_JSON", "请求体不是合法的 JSON") from None
    if not isinstance(data, dict):
        raise DomainError("MALFORMED_JSON", "请求体必须是 JSON 对象")
    return validate(model, data)


_FIELD_CODES = {
    "missing": "REQUIRED",
    "string_too_long": "TOO_LONG",
    "string_too_short": "TOO_SHORT",
    "string_pattern_mismatch": "INVALID_FORMAT",
    "literal_error": "INVALID_CHOICE",
    "enum": "INVALID_CHOICE",
    "extra_forbidden": "UNKNOWN_FIELD",
}


def validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for e in exc.errors(include_url=False, include_context=False, include_input=False):
            name = ".".join(str(p) for p in e["loc"]) or "body"
            fields.setdefault(name, _FIELD_CODES.get(e["type"], "INVALID"))
        raise DomainError("VALIDATION_FAILED", "提交的信息有误,请检查后重试", fields=fields) from None


# -- document -----------------------------------------------------------------------

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
}


def build_openapi(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    """Walk every route (sub-apps included) and describe the declared endpoints."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for route in _all_routes(app):
        handler = route.handler
        spec: EndpointSpec | None = getattr(handler, SPEC_ATTR, None)
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if spec is None or not path or route.method == "HEAD":
            continue
        op: dict[str, Any] = {"summary": spec.summary, "responses": {}}
        if spec.tags:
            op["tags"] = list(spec.tags)
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in _path_params(path)
        ]
        if spec.query is not None:
            qschema = spec.query.model_json_schema()
            for n, s in qschema.get("properties", {}).items():
                params.append(
                    {"name": n, "in": "query", "required": n in qschema.get("required", []), "schema": s}
                )
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(spec.body)}}}
        elif spec.content_type:
            op["requestBody"] = {"required": True, "content": {spec.content_type: {"schema": {"type": "object"}}}}
        ok: dict[str, Any] = {"description": "OK"}
        if spec.response is not None:
            ok["content"] = {"application/json": {"schema": ref(spec.response)}}
        op["responses"][str(spec.status)] = ok
        err = {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for code in ("400", "422") if (spec.body or spec.query) else ():
            op["responses"][code] = err
        if spec.auth == "institution":
            op["security"] = [{"institution": []}]
            params.extend(INSTITUTION_HEADERS)
            op["parameters"] = params
        elif spec.auth:
            op["security"] = [{"reviewer" if spec.auth == "reviewer" else "bearer": []}]
            op["responses"]["401"] = err
        if spec.errors:
            op["x-error-codes"] = list(spec.errors)
        if any(p["in"] == "path" for p in params):
            op["responses"].setdefault("404", err)
        # Any other status is an error in the API.md envelope: 403, 404, 409, 413, 429,
        # 503 with Retry-After when a dependency is down … (found by the contract fuzzer:
        # statuses the document did not declare)
        op["responses"]["default"] = err
        paths.setdefault(path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "reviewer": {"type": "http", "scheme": "bearer", "description": "reviewer token"},
                "institution": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Signature",
                    "description": "hex HMAC-SHA256(institution secret, timestamp + \"\\n\" + nonce "
                    "+ \"\\n\" + raw body), with X-Institution-Code, X-Timestamp (unix s, ±300 s) "
                    "and a single-use X-Nonce",
                },
            },
        },
    }


INSTITUTION_HEADERS = [
    {"name": "X-Institution-Code", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "X-Timestamp", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "unix seconds, within ±300 s"},
    {"name": "X-Nonce", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "single use"},
]


def _path_params(path: str) -> list[str]:
    import re

    return re.findall(r"{([^}:]+)", path)


def _all_routes(app: web.Application) -> list[web.AbstractRoute]:
    routes: list[web.AbstractRoute] = []
    for resource in app.router.resources():
        sub = getattr(resource, "_app", None)
        if isinstance(sub, web.Application):
            routes.extend(_all_routes(sub))
        else:
            routes.extend(resource)
    return routes
