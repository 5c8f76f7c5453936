"""Resources opened and closed with the app: each one cleanup_ctx under a typed AppKey.

cleanup_ctx runs the part after ``yield`` iff the part before it finished, in reverse
order, so a failed start never leaves a half-open resource behind.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
from aiohttp import web

from server import keys
from server.db import open_orm

log = logging.getLogger(__name__)


async def orm_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings_key]
    ctx = await open_orm(settings)
    app[keys.orm_key] = ctx
    log.info("database ready: %s", settings.database_url.split("@")[-1])
    yield
    await ctx.close_connections()


# One Redis command's reply (our commands are O(1) or short scripts: sub-millisecond).
REDIS_TIMEOUT_SECONDS = 2.0


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Real Redis (one server or a cluster) when REDIS_URL is set; otherwise the embedded
    in-process store."""
    settings = app[keys.settings_key]
    if settings.redis.url:
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        from server.redis_client import connect

        # A pooled connection that died (Redis restarted) fails when a command is sent on
        # it: reconnect and send again, twice at most, then the request fails clean (503).
        # A Redis that does not answer (frozen, a black hole) is not retried: each try
        # would wait the whole timeout again (issue #15: 15 s to a 503 with redis-py's
        # defaults, 3 tries of 5 s); after REDIS_TIMEOUT_SECONDS the request is a 503.
        # A redis+cluster:// URL gives a RedisCluster client (server/redis_client.py).
        client: Any = connect(
            settings.redis.url,
            health_check_interval=30,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(
                ExponentialBackoff(cap=0.2, base=0.01), 2, supported_errors=(RedisConnectionError,)
            ),
            retry_on_error=[RedisConnectionError],
        )
    else:
        from fakeredis import FakeAsyncRedis

        client = FakeAsyncRedis()
        log.info("REDIS_URL unset: using the embedded in-process store (single process only)")
    app[keys.redis_key] = client
    yield
    await client.aclose()


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """One ClientSession for the server's whole life (aiohttp FAQ)."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, ttl_dns_cache=300),
        timeout=aiohttp.ClientTimeout(total=10),
    )
    app[keys.http_key] = session
    yield
    await session.close()


async def gateways_ctx(app: web.Application) -> AsyncIterator[None]:
    """The WeChat gateway (also the face service: 人脸核身); in embedded mode the fake
    WeChat runs in-process.

    When the server knows its own URL (``keys.self_url_key``, set by ``serve``), the
    embedded fake posts template delivery receipts to this server's ``/wechat/official``.
    """
    from server.gateways.wechat import WeChatGateway

    settings = app[keys.settings_key]
    embedded = None
    api_base = settings.wechat.api_base
    if not api_base:
        from server.demo import start_embedded_wechat

        embedded = await start_embedded_wechat(
            settings.wechat, receipts_to=app.get(keys.self_url_key)
        )
        api_base = embedded.api_base
        app[keys.fake_wechat_key] = embedded.state
        log.info(
            "WECHAT_API_BASE unset: fake WeChat API serving at %s (receipts to %s)",
            api_base,
            embedded.state.receipt_url or "nowhere",
        )
    session = app[keys.http_key]
    app[keys.wechat_key] = WeChatGateway.from_settings(
        session, settings.wechat, api_base=api_base
    )
    yield
    if embedded is not None:
        await embedded.close()


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Domain services that need the resources above."""
    from server.domain.auth import AuthService
    from server.domain.policy import DEFAULT_POLICY_PATH, PolicyEngine
    from server.privacy.consent import ConsentService

    settings = app[keys.settings_key]
    # the one policy engine (config/policy.toml, or [policy] file): 共济 and binding rules
    policy_file = settings.policy.file or DEFAULT_POLICY_PATH
    app[keys.policy_key] = PolicyEngine.from_file(policy_file)
    app[keys.auth_key] = AuthService(
        jwt_settings=settings.jwt,
        redis=app[keys.redis_key],
        wechat=app[keys.wechat_key],
        pii=app[keys.pii_key],
        revocation_cache_seconds=settings.auth.revocation_cache_seconds,
        logins_per_ip_per_minute=settings.auth.logins_per_ip_per_minute,
    )
    # consents per purpose (the privacy notice in force): every use of a purpose asks it
    app[keys.consents_key] = ConsentService()
    yield


async def family_ctx(app: web.Application) -> AsyncIterator[None]:
    """亲情账户: registry, material storage, 个人承诺书, real-name verification, the family service."""
    from server.domain.documents import DocumentBook
    from server.domain.face_check import FaceLimits, FaceService
    from server.domain.family import FamilyService, Limits
    from server.domain.family.base import material_kinds
    from server.domain.guessing import GuessBudget
    from server.domain.realname import RealnameService
    from server.domain.registry import LocalRegistry
    from server.domain.staff import hasher_for
    from server.domain.voucher_password import VoucherPasswords
    from server.gateways.storage import LocalStorage
    from server.gateways.token_cache import TokenCache

    settings = app[keys.settings_key]
    # WeChat 人脸核身 on the mini-program's access token (shared through Redis)
    face = FaceService(
        wechat=app[keys.wechat_key],
        tokens=TokenCache(app[keys.redis_key], app[keys.wechat_key], "mp"),
        redis=app[keys.redis_key],
        pii=app[keys.pii_key],
        limits=FaceLimits(
            max_age_seconds=settings.face.max_age_seconds,
            sessions_per_window=settings.face.sessions_per_window,
            sessions_window_seconds=settings.face.sessions_window_seconds,
        ),
    )
    app[keys.face_key] = face
    app[keys.registry_key] = LocalRegistry(app[keys.pii_key])
    family = settings.family
    storage = LocalStorage(
        Path(family.upload_dir or settings.data_path / "uploads"), keys=app[keys.pii_key]
    )
    documents = DocumentBook.load("commitment")
    guesses = GuessBudget(
        per_user=family.identity_checks_per_user,
        per_ip=family.identity_checks_per_ip,
        window_seconds=family.identity_checks_window_seconds,
    )
    app[keys.storage_key] = storage
    app[keys.family_key] = FamilyService(
        policy=app[keys.policy_key],
        registry=app[keys.registry_key],
        face=face,
        pii=app[keys.pii_key],
        redis=app[keys.redis_key],
        storage=storage,
        documents=documents,
        limits=Limits(
            applications=(family.applications_per_window, family.applications_window_seconds),
            submits=(family.submits_per_window, family.submits_window_seconds),
            vouchers=(family.vouchers_per_window, family.vouchers_window_seconds),
            max_material_bytes=family.max_material_bytes,
            max_materials_per_application=family.max_materials_per_application,
            max_materials_per_kind=family.max_materials_per_kind,
            single_material_kinds=material_kinds(family.single_material_kinds),
            max_signatures_per_application=family.max_signatures_per_application,
            upload_budget_bytes=family.upload_budget_bytes,
            uploads_per_hour=family.uploads_per_hour,
        ),
        guesses=guesses,
        consents=app[keys.consents_key],
    )
    app[keys.realname_key] = RealnameService(
        registry=app[keys.registry_key],
        face=face,
        pii=app[keys.pii_key],
        redis=app[keys.redis_key],
        guesses=guesses,
        consents=app[keys.consents_key],
    )
    console = settings.console  # the project's one argon2id cost profile
    app[keys.voucher_passwords_key] = VoucherPasswords(
        face=face,
        policy=app[keys.policy_key],
        pii=app[keys.pii_key],
        redis=app[keys.redis_key],
        hasher=hasher_for(console.argon2_time_cost, console.argon2_memory_kib, console.argon2_parallelism),
    )
    yield
    await face.close()


def core_contexts() -> list[Callable[[web.Application], AsyncIterator[None]]]:
    """The resources every process of ours opens, in order: the server and the worker."""
    return [orm_ctx, redis_ctx, http_ctx, gateways_ctx]
