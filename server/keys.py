"""Every typed application key, in one place (aiohttp AppKey; no string keys).

Each key carries the type of its value (``app[keys.pii_key]`` is a ``PiiCipher`` to the
type checker); the classes are imported for the checker only, so this module imports no
service at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from tortoise.context import TortoiseContext

    from bot.service import BotService
    from server.domain.auth import AuthService
    from server.domain.counter_desk import CounterDesk
    from server.domain.face_check import FaceService
    from server.domain.family import FamilyService
    from server.domain.institutions import InstitutionDirectory, InstitutionInfo
    from server.domain.pii import PiiCipher
    from server.domain.policy import PolicyEngine
    from server.domain.realname import RealnameService
    from server.domain.registry import Registry
    from server.domain.review import ReviewDesk
    from server.domain.staff import StaffService, StaffSession
    from server.domain.voucher_password import VoucherPasswords
    from server.gateways.storage import Storage
    from server.gateways.wechat import WeChatGateway
    from server.metrics import Metrics
    from server.privacy.config import PrivacyConfig
    from server.privacy.consent import ConsentService
    from server.privacy.deletion import DeletionService
    from server.privacy.job import PrivacyJob
    from server.privacy.links import LinkSigner
    from server.push.worker import Worker
    from server.settings import Settings

settings_key: web.AppKey[Settings] = web.AppKey("settings")
redis_key: web.AppKey[Redis] = web.AppKey("redis")
http_key = web.AppKey("http", aiohttp.ClientSession)
orm_key: web.AppKey[TortoiseContext] = web.AppKey("orm")
wechat_key: web.AppKey[WeChatGateway] = web.AppKey("wechat")
face_key: web.AppKey[FaceService] = web.AppKey("face")  # WeChat 人脸核身 (server/domain/face_check.py)
pii_key: web.AppKey[PiiCipher] = web.AppKey("pii")
auth_key: web.AppKey[AuthService] = web.AppKey("auth")
metrics_key: web.AppKey[Metrics] = web.AppKey("metrics")
# FakeWeChatState when running embedded (fakes/: production code does not import it)
fake_wechat_key = web.AppKey("fake_wechat", object)
push_worker_key: web.AppKey[Worker] = web.AppKey("push_worker")  # the delivery loop (embedded / worker process)
policy_key: web.AppKey[PolicyEngine] = web.AppKey("policy")  # config/policy.toml, loaded once
# institution webhook: rows (short TTL) and decrypted secrets by (code, secret_enc), per process
institution_directory_key: web.AppKey[InstitutionDirectory] = web.AppKey("institution_directory")
bot_key: web.AppKey[BotService] = web.AppKey("bot")  # the official-account bot (on the /wechat sub-app)
# 亲情账户 (issue #3)
registry_key: web.AppKey[Registry] = web.AppKey("registry")
storage_key: web.AppKey[Storage] = web.AppKey("storage")
family_key: web.AppKey[FamilyService] = web.AppKey("family")
realname_key: web.AppKey[RealnameService] = web.AppKey("realname")
voucher_passwords_key: web.AppKey[VoucherPasswords] = web.AppKey("voucher_passwords")  # 医保支付密码
# the bureau's console (issue #14): staff sessions and the review desk
staff_key: web.AppKey[StaffService] = web.AppKey("staff")
review_desk_key: web.AppKey[ReviewDesk] = web.AppKey("review_desk")
counter_desk_key: web.AppKey[CounterDesk] = web.AppKey("counter_desk")  # 窗口代办 (server/domain/counter_desk.py)
# personal information (issue #12): consents per purpose, the [privacy] settings
consents_key: web.AppKey[ConsentService] = web.AppKey("consents")
privacy_config_key: web.AppKey[PrivacyConfig] = web.AppKey("privacy_config")
links_key: web.AppKey[LinkSigner] = web.AppKey("links")  # short-lived signed download links (export)
deletion_key: web.AppKey[DeletionService] = web.AppKey("deletion")  # DELETE /api/v1/me
privacy_job_key: web.AppKey[PrivacyJob] = web.AppKey("privacy_job")  # retention purge, unfinished deletions
# this server's base URL as seen from this machine (set by ``python -m server serve``):
# the embedded fake WeChat posts template delivery receipts to <it>/wechat/official
self_url_key = web.AppKey("self_url", str)

# per-request storage
request_id_key = web.RequestKey("request_id", str)
user_id_key = web.RequestKey("user_id", int)
reviewer_key = web.RequestKey("reviewer", str)
staff_session_key: web.RequestKey[StaffSession] = web.RequestKey("staff_session")  # the console's
institution_key: web.RequestKey[InstitutionInfo] = web.RequestKey("institution")  # the signed caller

__all__ = [
    "auth_key",
    "bot_key",
    "consents_key",
    "counter_desk_key",
    "deletion_key",
    "face_key",
    "family_key",
    "fake_wechat_key",
    "http_key",
    "institution_directory_key",
    "institution_key",
    "links_key",
    "metrics_key",
    "orm_key",
    "pii_key",
    "push_worker_key",
    "policy_key",
    "privacy_config_key",
    "privacy_job_key",
    "realname_key",
    "redis_key",
    "registry_key",
    "request_id_key",
    "self_url_key",
    "reviewer_key",
    "review_desk_key",
    "settings_key",
    "staff_key",
    "staff_session_key",
    "storage_key",
    "user_id_key",
    "voucher_passwords_key",
    "wechat_key",
]
