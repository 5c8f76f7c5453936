"""The family service's common part: its dependencies, its clock, its limits, and the
look-ups every room of the service uses (the user's own application, the binder)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Literal

from server.domain.clock import Clock, cn_today, parse_uuid, utc_now
from server.domain.errors import DomainError
from server.domain.family import queries
from server.domain.family.states import EDITABLE, state_conflict
from server.domain.guessing import GuessBudget
from server.domain.models import Application
from server.ratelimit import hit

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from server.domain.documents import DocumentBook
    from server.domain.face_check import FaceService
    from server.domain.pii import PiiCipher
    from server.domain.policy import PolicyEngine
    from server.domain.registry import Registry
    from server.gateways.storage import Storage
    from server.privacy.consent import ConsentService


@dataclass(frozen=True)
class Limits:
    """Per-user abuse limits (count per window, seconds); from ``[family]`` in config."""

    applications: tuple[int, int] = (30, 3600)
    submits: tuple[int, int] = (60, 3600)
    vouchers: tuple[int, int] = (30, 60)
    max_material_bytes: int = 8_388_608
    # disk-fill limits (issue #17 finding 6; server.domain.family.quota)
    max_materials_per_application: int = 12
    max_materials_per_kind: int = 4
    single_material_kinds: frozenset[str] = frozenset(
        {"id_card_front", "id_card_back", "birth_certificate"}
    )
    max_signatures_per_application: int = 10
    upload_budget_bytes: int = 104_857_600
    uploads_per_hour: int = 60


def material_kinds(value: tuple[str, ...]) -> frozenset[str]:
    """``[family] single_material_kinds``: material kinds of API.md, nothing else."""
    from server.domain.policy_data import MATERIAL_KINDS

    kinds = frozenset(value)
    if isinstance(value, str) or not kinds <= set(MATERIAL_KINDS):
        raise ValueError(f"family.single_material_kinds must be a list of {MATERIAL_KINDS}")
    return kinds


@dataclass(frozen=True)
class Binder:
    """What the rules need to know about the binder."""

    id: int
    realname_verified: bool
    id_hash: str | None
    region_code: str | None  # their insurance region, once verified


def not_found(what: str = "申请") -> DomainError:
    return DomainError("NOT_FOUND", f"{what}不存在")


def actor_of(user_id: int, staff: str | None = None) -> str:
    """Who an application event names: the user, or the staff member doing it for them at
    the counter (窗口代办: ``staff:<name>``; the audit log says for whom)."""
    return f"staff:{staff}"[:64] if staff else f"user:{user_id}"


def uuid_or_404(value: str, what: str) -> uuid.UUID:
    """A path id; one that cannot exist is a 404 like one that does not."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise not_found(what)
    return parsed


class FamilyBase:
    """Resources injected once per app (``server.lifecycle.family_ctx``); tests move
    ``clock`` (a new month, a new commitment version)."""

    def __init__(
        self,
        *,
        policy: PolicyEngine,
        registry: Registry,
        face: FaceService,
        pii: PiiCipher,
        redis: Redis,
        storage: Storage | None,
        documents: DocumentBook | None,
        limits: Limits | None = None,
        guesses: GuessBudget | None = None,
        clock: Clock | None = None,
        consents: ConsentService | None = None,
    ) -> None:
        from server.privacy.consent import ConsentService

        self.policy = policy
        self.registry = registry
        self.face = face
        self.pii = pii
        self.redis = redis
        self.storage = storage
        self.documents = documents
        self.limits = limits or Limits()
        self.guesses = guesses or GuessBudget()
        self.clock: Clock = clock or utc_now
        # separate consents per purpose (PIPL art. 29; server.privacy.consent): without
        # one injected, the shipped privacy notice on the wall clock — never no check
        self.consents = consents or ConsentService()

    def today(self, now: datetime | None = None) -> date:
        """The Asia/Shanghai calendar day of ``now`` (default: the service's clock)."""
        return cn_today(now or self.clock())

    async def _limit(
        self, user_id: int, what: Literal["applications", "submits", "vouchers"]
    ) -> None:
        limit, window = getattr(self.limits, what)
        await hit(self.redis, f"family:{what}:{user_id}", limit=limit, per_seconds=window)

    async def _owned(self, user_id: int, application_id: str) -> Application:
        """The user's own application; someone else's is indistinguishable from none (404)."""
        app = await queries.owned_application(uuid_or_404(application_id, "申请"), user_id)
        if app is None:
            raise not_found()
        return app

    async def _editable(self, user_id: int, application_id: str, action: str) -> Application:
        """The user's own application, still before submit (409 otherwise)."""
        app = await self._owned(user_id, application_id)
        if app.state not in EDITABLE:
            raise state_conflict(app, action)
        return app

    @staticmethod
    async def _binder(user_id: int) -> Binder:
        r = await queries.binder(user_id)
        if r is None:
            raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录")
        return Binder(
            id=r["id"],
            realname_verified=bool(r["realname_verified"]),
            id_hash=r["id_hash"],
            region_code=r["person__region_code"] if r["person_id"] is not None else None,
        )

    def _storage(self) -> Storage:
        if self.storage is None:
            raise DomainError("SERVICE_UNAVAILABLE", "材料存储暂不可用")
        return self.storage
