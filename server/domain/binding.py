"""亲情账户 use cases: applications as a state machine, materials, the 个人承诺书, submit
with atomic limits, members, unbind, the dynamic 医保码 and the member's spending.

States of an application (SPEC.md 亲情账户 binding, issue #3)::

    draft ─upload─▶ materials ─sign─▶ commitment_signed ─submit─▶ submitted
      │  └──────────────sign──────────────▲                       │
      └──────────────────submit (any of the three)───────────────▶│
    submitted ─▶ active | pending_review | failed
    pending_review ─reviewer─▶ active | failed (MATERIALS_REJECTED)
    active ─unbind─▶ unbound

Every change of state is an ``ApplicationEvent`` (from, to, actor, code, time); an
illegal one is a 409 ``APPLICATION_STATE_CONFLICT`` and changes nothing. A failed
application keeps its failure code and message for the bot.

Every rule is the policy engine's (``PolicyEngine.check_binding``): the precheck, the
submit and the bot ask the same question. This module only gathers the facts — and on
submit gathers them under row locks so the limits hold under concurrent submits from
several processes (PostgreSQL): the member's registry row first, then the binder's user
row, always in that order (no lock cycle), then it counts and decides.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from server.domain import reasons, vouchers
from server.domain.errors import DomainError
from server.domain.guessing import GuessBudget
from server.domain.identity import IdDocument, parse_id
from server.domain.models import (
    Application,
    ApplicationEvent,
    Binding,
    CommitmentSignature,
    InsuredPerson,
    Material,
    User,
)
from server.domain.pii import PiiCipher, mask_id, mask_name
from server.domain.policy import (
    MATERIAL_KINDS,
    MATERIAL_LABELS,
    NATIONAL,
    RELATIONSHIP_LABELS,
    BindingContext,
    BindingDecision,
    PolicyEngine,
    blocker,
    requirement_label,
)
from server.domain.queries import S_INT as _S_INT
from server.domain.queries import S_UUID as _S_UUID
from server.domain.queries import Compiled
from server.domain.registry import id_hash, name_hash
from server.gateways.face import FaceGateway
from server.gateways.registry import Match, RegistryGateway, RegistryRecord, match
from server.ratelimit import hit as _hit

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from server.domain.documents import DocumentBook, LegalText
    from server.gateways.storage import LocalStorage, StoredObject

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_REASON = (
    "为了方便家人代办医保业务"  # SPEC.md application reason, "医保亲情账号申请原因怎么填写"
)

# Application states and the only moves between them.
EDITABLE: frozenset[str] = frozenset({"draft", "materials", "commitment_signed"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"materials", "commitment_signed", "submitted"}),
    "materials": frozenset({"commitment_signed", "submitted"}),
    "commitment_signed": frozenset({"submitted"}),
    "submitted": frozenset({"active", "pending_review", "failed"}),
    "pending_review": frozenset({"active", "failed"}),
    "active": frozenset({"unbound"}),
    "failed": frozenset(),
    "unbound": frozenset(),
}
STATES: tuple[str, ...] = tuple(TRANSITIONS)

MATERIAL_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png", "application/pdf"})
SIGNATURE_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png"})
MAX_SIGNATURE_BYTES = 512 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-user abuse limits (count per window, seconds); from ``[family]`` in config."""

    applications: tuple[int, int] = (30, 3600)
    submits: tuple[int, int] = (60, 3600)
    vouchers: tuple[int, int] = (30, 60)
    max_material_bytes: int = 8_388_608

    @classmethod
    def from_section(cls, section: Any) -> Limits:
        d = cls()

        def pair(name: str, default: tuple[int, int]) -> tuple[int, int]:
            return (
                int(section.get(f"{name}_per_window", default[0])),
                int(section.get(f"{name}_window_seconds", default[1])),
            )

        return cls(
            applications=pair("applications", d.applications),
            submits=pair("submits", d.submits),
            vouchers=pair("vouchers", d.vouchers),
            max_material_bytes=int(section.get("max_material_bytes", d.max_material_bytes)),
        )


def iso(dt: datetime | None) -> str | None:
    """API.md times: ISO 8601 with the +08:00 offset."""
    return None if dt is None else dt.astimezone(SHANGHAI).isoformat(timespec="seconds")


def month_bounds(now: datetime) -> tuple[datetime, datetime]:
    """The natural month (Asia/Shanghai calendar) containing ``now``, as UTC instants."""
    local = now.astimezone(SHANGHAI)
    start = datetime(local.year, local.month, 1, tzinfo=SHANGHAI)
    end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=SHANGHAI)
    return start.astimezone(UTC), end.astimezone(UTC)


_OWNED_APPLICATION = Compiled(
    lambda app_id, binder_id: Application.filter(id=app_id, binder_id=binder_id).limit(1),
    _S_UUID,
    _S_INT,
)
_BINDER = Compiled(
    lambda user_id: User.filter(id=user_id).values(
        "id", "realname_verified", "id_hash", "person_id", "person__region_code"
    ),
    _S_INT,
)
_MATERIALS = Compiled(
    lambda app_id: Material.filter(application_id=app_id).order_by("created_at"), _S_UUID
)
_LATEST_SIGNATURE = Compiled(
    lambda app_id: CommitmentSignature.filter(application_id=app_id).order_by("-id").limit(1),
    _S_UUID,
)


@dataclass(frozen=True)
class Binder:
    """What the rules need to know about the binder."""

    id: int
    realname_verified: bool
    id_hash: str | None
    region_code: str | None  # their insurance region, once verified


def _not_found(what: str = "申请") -> DomainError:
    return DomainError("NOT_FOUND", f"{what}不存在", 404)


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        raise _not_found(what) from None


def _state_conflict(app: Application, action: str) -> DomainError:
    return DomainError(
        "APPLICATION_STATE_CONFLICT",
        f"申请当前状态为「{STATE_LABELS.get(app.state, app.state)}」,不能{action}。",
        409,
        detail={"state": app.state},
    )


STATE_LABELS: dict[str, str] = {
    "draft": "草稿",
    "materials": "已上传材料",
    "commitment_signed": "已签署承诺书",
    "submitted": "已提交",
    "active": "已绑定",
    "pending_review": "审核中",
    "failed": "绑定失败",
    "unbound": "已解绑",
}


def step(
    app: Application, to: str, *, actor: str, code: str | None = None, note: str | None = None
) -> ApplicationEvent:
    """Move ``app`` to ``to`` in memory and return the (unsaved) event recording it; 409 if
    the state machine forbids the move. The caller saves both in one transaction."""
    if to not in TRANSITIONS[app.state]:
        raise _state_conflict(app, f"变为「{STATE_LABELS.get(to, to)}」")
    event = ApplicationEvent(
        application_id=app.id, from_state=app.state, to_state=to, actor=actor, code=code, note=note
    )
    app.state = to
    return event


async def transition(
    app: Application, to: str, *, actor: str, code: str | None = None, note: str | None = None
) -> None:
    """``step`` and save the event; the caller saves ``app`` (same transaction)."""
    await step(app, to, actor=actor, code=code, note=note).save()


@dataclass(frozen=True)
class _Counts:
    """The limit facts about one attempt (see ``BindingContext``)."""

    binder_count: int  # the binder's active or pending members
    month: frozenset[str]  # binders with an effective binding to the member this month
    current: frozenset[str]  # binders holding one now (and the binder's own pending one)
    guardians: frozenset[str] = frozenset()  # those of ``month`` the registry names guardians


class BindingService:
    """The 亲情账户 use cases; one per app (services_ctx), resources injected."""

    def __init__(
        self,
        *,
        policy: PolicyEngine,
        registry: RegistryGateway,
        face: FaceGateway,
        pii: PiiCipher,
        redis: Redis,
        storage: LocalStorage | None,
        documents: DocumentBook | None,
        limits: Limits | None = None,
        guesses: GuessBudget | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.policy = policy
        self.registry = registry
        self.face = face
        self.pii = pii
        self.redis = redis
        self.storage = storage
        self.documents = documents
        self.limits = limits or Limits()
        self.guesses = guesses or GuessBudget()
        # Tests move the clock (a new month, a new commitment version); production: now.
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

    # -- helpers -------------------------------------------------------------------

    def today(self, now: datetime | None = None) -> date:
        return (now or self.clock()).astimezone(SHANGHAI).date()

    async def _limit(
        self, user_id: int, what: Literal["applications", "submits", "vouchers"]
    ) -> None:
        limit, window = getattr(self.limits, what)
        await _hit(self.redis, f"family:{what}:{user_id}", limit=limit, per_seconds=window)

    async def _owned(self, user_id: int, application_id: str) -> Application:
        """The user's own application; someone else's is indistinguishable from none (404)."""
        rows = await _OWNED_APPLICATION.rows(_uuid(application_id, "申请"), user_id)
        if not rows:
            raise _not_found()
        return Application._init_from_db(**rows[0])

    async def _editable(self, user_id: int, application_id: str, action: str) -> Application:
        """The user's own application, still before submit (409 otherwise)."""
        app = await self._owned(user_id, application_id)
        if app.state not in EDITABLE:
            raise _state_conflict(app, action)
        return app

    async def _owned_binding(
        self, user_id: int, binding_id: str, *, active: bool = True
    ) -> Binding:
        q = Binding.filter(id=_uuid(binding_id, "家庭成员"), binder_id=user_id)
        if active:
            q = q.filter(state="active")
        binding = await q.select_related("member").first()
        if binding is None:
            raise _not_found("家庭成员")
        return binding

    def _commitment(self, now: datetime) -> LegalText:
        if self.documents is None:
            raise DomainError("SERVICE_UNAVAILABLE", "承诺书暂不可用", 503)
        return self.documents.current(now)

    @staticmethod
    def _region(binder: Binder, record: RegistryRecord | None) -> str:
        """The policy region: the binder's insurance region, else the member's, else national."""
        if binder.region_code:
            return binder.region_code
        return record.region_code if record is not None else NATIONAL

    async def _counts(
        self,
        *,
        binder_id: int,
        member_id: int | None,
        now: datetime,
        exclude: uuid.UUID | None,
        guardian_hashes: frozenset[str] = frozenset(),
    ) -> _Counts:
        """The limit facts, in two or three queries (inside the submit's transaction).

        Effective bindings in the natural month (Asia/Shanghai): bound before the month
        ends and not unbound before it began (SPEC.md binders per member) — except a
        binding the member ended themselves: the member removing a binder they did not
        want frees that slot at once (slot squatting, issue #17).
        A ``pending_review`` application holds a slot of its binder's five, but not one of
        the member's monthly slots: strangers' applications waiting for a reviewer must
        not lock the member's real family out; the approval checks the member's limit
        again (``decide_review``). The binder's own pending application for the member
        counts as already bound.
        """
        start, end = month_bounds(now)
        wanted = Q(binder_id=binder_id, state="active")
        held = Q(binder_id=binder_id)
        if member_id is not None:
            wanted |= Q(member_id=member_id, bound_at__lt=end) & (
                Q(unbound_at__isnull=True) | Q(unbound_at__gte=start)
            )
        rows = await Binding.filter(wanted).values_list(
            "binder_id", "member_id", "state", "unbound_by"
        )
        pending_q = Application.filter(held, state="pending_review")
        if exclude is not None:
            pending_q = pending_q.exclude(id=exclude)
        pending = await pending_q.values_list("binder_id", "member_id")
        count = sum(1 for b, _, s, _u in rows if b == binder_id and s == "active")
        count += len(pending)
        if member_id is None:
            return _Counts(count, frozenset(), frozenset())
        mine_pending = {str(binder_id)} if any(m == member_id for _, m in pending) else set()
        month = frozenset(
            str(b)
            for b, m, s, by in rows
            if m == member_id and not (s == "unbound" and (by or "").startswith("member:"))
        )
        current = frozenset(
            {str(b) for b, m, s, _u in rows if m == member_id and s == "active"} | mine_pending
        )
        guardians: frozenset[str] = frozenset()
        if guardian_hashes and month:
            users = await User.filter(id__in=[int(b) for b in month]).values_list("id", "id_hash")
            guardians = frozenset(str(u) for u, h in users if h in guardian_hashes)
        return _Counts(count, month, current, guardians)

    def _context(
        self,
        binder: Binder,
        *,
        doc: IdDocument | None,
        relationship: str,
        now: datetime,
        found: tuple[Match, RegistryRecord | None],
        counts: _Counts | None = None,
        stage: Literal["precheck", "submit"] = "precheck",
        materials: frozenset[str] = frozenset(),
        commitment: Literal["missing", "current", "outdated"] = "missing",
        face_passed: bool | None = None,
    ) -> BindingContext:
        result, record = found
        counts = counts or _Counts(0, frozenset(), frozenset())
        is_guardian = bool(
            result == "match"
            and record is not None
            and binder.id_hash
            and binder.id_hash in record.guardian_hashes
        )
        return BindingContext(
            today=self.today(now),
            binder_id=str(binder.id),
            binder_verified=binder.realname_verified,
            binder_region=self._region(binder, record),
            member_doc=doc,
            relationship=relationship,
            registry_match=result,
            member_voucher_activated=bool(record and record.voucher_activated),
            member_status=record.status if record is not None else "active",
            binder_active_or_pending_count=counts.binder_count,
            member_binders_this_month=counts.month,
            already_bound=str(binder.id) in counts.current,
            materials=materials,
            commitment=commitment,
            stage=stage,
            member_face_passed=face_passed,
            member_binders_now=counts.current,
            binder_is_guardian=is_guardian,
            member_guardian_binders=counts.guardians,
        )

    async def _found(
        self, doc: IdDocument | None, name: str
    ) -> tuple[Match, RegistryRecord | None]:
        if doc is None:
            return "not_found", None
        return await match(self.registry, id_type=doc.id_type, id_number=doc.id_number, name=name)

    @staticmethod
    def _guardians(found: tuple[Match, RegistryRecord | None]) -> frozenset[str]:
        result, record = found
        return record.guardian_hashes if record is not None and result == "match" else frozenset()

    def _decorate(self, decision: BindingDecision) -> dict[str, Any]:
        return {
            "ok": decision.ok,
            "blocking": [
                {"code": b.code, "message": b.message, "fix": b.fix} for b in decision.blocking
            ],
            "required_materials": [
                {"kinds": r.split("|"), "label": requirement_label(r)}
                for r in decision.required_materials
            ],
            "face_check_required": decision.face_check_required,
            "review_required": decision.review_required,
        }

    def _self_check(self, binder: Binder, doc: IdDocument) -> None:
        """A user cannot bind themselves (SPEC.md: a binder helps *other* family members)."""
        if binder.id_hash and binder.id_hash == id_hash(self.pii, doc.id_type, doc.id_number):
            raise DomainError(
                "SELF_NOT_ALLOWED",
                "不能把自己添加为家庭成员。",
                422,
                fields={"id_number": "SELF_NOT_ALLOWED"},
                detail={"fix": "您本人就医时直接使用本人的医保电子凭证;请填写要添加的家人的信息。"},
            )

    @staticmethod
    async def _binder(user_id: int) -> Binder:
        rows = await _BINDER.rows(user_id)
        if not rows:
            raise DomainError("UNAUTHORIZED", "用户不存在,请重新登录", 401)
        r = rows[0]
        return Binder(
            id=r["id"],
            realname_verified=bool(r["realname_verified"]),
            id_hash=r["id_hash"],
            region_code=r["person__region_code"] if r["person_id"] is not None else None,
        )

    # -- precheck ------------------------------------------------------------------

    async def precheck(
        self,
        user_id: int,
        *,
        name: str,
        id_type: str,
        id_number: str,
        relationship: str,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """Would this binding work? The policy's answer at the precheck stage; nothing stored.

        Only a real-name verified binder learns anything about the member: an unverified
        one is told that, and nothing is looked up (the registry is no oracle — issue #17);
        every look-up spends the identity-guessing budget (``GuessBudget``)."""
        now = self.clock()
        binder = await self._binder(user_id)
        if not binder.realname_verified:
            return self._decorate(
                BindingDecision(
                    ok=False,
                    blocking=(blocker("BINDER_NOT_VERIFIED"),),
                    required_materials=(),
                    face_check_required=False,
                    review_required=False,
                    minor=False,
                    policy_sources={},
                )
            )
        await self.guesses.spend(self.redis, user_id=user_id, ip=ip)
        try:
            doc: IdDocument | None = parse_id(id_type, id_number, today=self.today(now))
        except DomainError as err:
            if err.code != "INVALID_ID_NUMBER":
                raise
            doc = None
        if doc is not None:
            self._self_check(binder, doc)
        found = await self._found(doc, name)
        member_id = found[1].person_id if found[1] is not None and found[0] == "match" else None
        counts = await self._counts(
            binder_id=binder.id,
            member_id=member_id,
            now=now,
            exclude=None,
            guardian_hashes=self._guardians(found),
        )
        ctx = self._context(
            binder, doc=doc, relationship=relationship, now=now, found=found, counts=counts
        )
        return self._decorate(self.policy.check_binding(ctx))

    # -- applications --------------------------------------------------------------

    async def create_application(
        self,
        user_id: int,
        *,
        name: str,
        id_type: str,
        id_number: str,
        relationship: str,
        phone: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """A new draft. Only the document's format is refused here (422); every other rule
        is the submit's, so that a failure is recorded where the bot can find it."""
        await self._limit(user_id, "applications")
        binder = await self._binder(user_id)
        doc = parse_id(id_type, id_number, today=self.today())
        self._self_check(binder, doc)
        async with in_transaction():
            app = await Application.create(
                binder_id=user_id,
                member_name_enc=self.pii.encrypt(name, purpose="name"),
                member_name_hash=name_hash(self.pii, name),
                id_type=doc.id_type,
                id_number_enc=self.pii.encrypt(doc.id_number, purpose="id_number"),
                id_hash=id_hash(self.pii, doc.id_type, doc.id_number),
                relationship=relationship,
                phone_enc=self.pii.encrypt(phone, purpose="phone") if phone else None,
                reason=reason or DEFAULT_REASON,
                state="draft",
            )
            await ApplicationEvent.create(
                application_id=app.id, from_state=None, to_state="draft", actor=f"user:{user_id}"
            )
        return await self.application_view(app, materials=[], signature=None)

    async def get_application(self, user_id: int, application_id: str) -> dict[str, Any]:
        return await self.application_view(await self._owned(user_id, application_id))

    async def list_applications(self, user_id: int) -> list[dict[str, Any]]:
        apps = await Application.filter(binder_id=user_id).order_by("-created_at").limit(50)
        return [await self.application_view(a, brief=True) for a in apps]

    async def application_view(
        self,
        app: Application,
        *,
        brief: bool = False,
        materials: list[Material] | None = None,
        signature: CommitmentSignature | None | Literal[False] = False,
        binding: Binding | None | Literal[False] = False,
    ) -> dict[str, Any]:
        """API output: masked member, failure with its fix, materials, the signature.

        Parts the caller already holds are passed in (``False``: not known, fetch it).
        """
        out: dict[str, Any] = {
            "id": str(app.id),
            "state": app.state,
            "relationship": app.relationship,
            "relationship_label": RELATIONSHIP_LABELS.get(app.relationship, app.relationship),
            "member": {
                "name": mask_name(self.pii.decrypt(app.member_name_enc, purpose="name")),
                "id_type": app.id_type,
                "id_number": mask_id(self.pii.decrypt(app.id_number_enc, purpose="id_number")),
            },
            "reason": app.reason,
            "created_at": iso(app.created_at),
            "submitted_at": iso(app.submitted_at),
            "decided_at": iso(app.decided_at),
        }
        if app.failure_code:
            try:
                fix = reasons.reason(app.failure_code).fix
            except KeyError:
                fix = ""
            out["failure"] = {"code": app.failure_code, "message": app.failure_message, "fix": fix}
        if brief:
            return out
        if materials is None:
            materials = await Material.filter(application_id=app.id).order_by("created_at")
        out["materials"] = [self.material_view(m) for m in materials]
        if signature is False:
            signature = await self._signature(app)
        out["commitment"] = None if signature is None else self.signature_view(signature)
        if app.state == "active":
            if binding is False:
                binding = await Binding.filter(application_id=app.id).first()
            out["binding_id"] = str(binding.id) if binding else None
        return out

    @staticmethod
    async def _signature(app: Application) -> CommitmentSignature | None:
        """The latest signature of the application (signing again adds one)."""
        rows = await _LATEST_SIGNATURE.rows(app.id)
        return CommitmentSignature._init_from_db(**rows[0]) if rows else None

    # -- materials -----------------------------------------------------------------

    @staticmethod
    def material_view(m: Material) -> dict[str, Any]:
        return {
            "id": str(m.id),
            "kind": m.kind,
            "label": MATERIAL_LABELS.get(m.kind, m.kind),
            "content_type": m.content_type,
            "size": m.size,
            "sha256": m.sha256,
            "created_at": iso(m.created_at),
        }

    def _storage(self) -> LocalStorage:
        if self.storage is None:
            raise DomainError("SERVICE_UNAVAILABLE", "材料存储暂不可用", 503)
        return self.storage

    async def store_upload(self, user_id: int, application_id: str, source: Any) -> StoredObject:
        """Stream one uploaded file to storage once the application is known to be the
        user's and still editable (sniffed type, size cap: 415 / 413, nothing kept)."""
        await self._editable(user_id, application_id, "上传材料")
        return await self._storage().save_stream(
            source, max_bytes=self.limits.max_material_bytes, allowed_types=MATERIAL_TYPES
        )

    async def discard_upload(self, stored: StoredObject) -> None:
        await self._storage().delete(stored.key)

    async def attach_material(
        self, user_id: int, application_id: str, *, kind: str | None, stored: StoredObject
    ) -> dict[str, Any]:
        """Record a stored upload as a material of the application (the file is removed
        again when the kind is unknown or the application moved on meanwhile)."""
        try:
            if kind not in MATERIAL_KINDS:
                raise DomainError(
                    "VALIDATION_FAILED",
                    "材料类型无效",
                    422,
                    fields={"kind": "REQUIRED" if not kind else "INVALID_CHOICE"},
                )
            async with in_transaction():
                app = await self._editable(user_id, application_id, "上传材料")
                material = await Material.create(
                    application_id=app.id,
                    kind=kind,
                    content_type=stored.content_type,
                    size=stored.size,
                    sha256=stored.sha256,
                    storage_key=stored.key,
                )
                if app.state == "draft":
                    await transition(app, "materials", actor=f"user:{user_id}")
                    await app.save(update_fields=["state", "updated_at"])
        except BaseException:
            await self._storage().delete(stored.key)
            raise
        return self.material_view(material)

    async def read_material(
        self, user_id: int, application_id: str, material_id: str
    ) -> tuple[bytes, str]:
        """The owner's material, metadata (EXIF…) stripped by the storage."""
        app = await self._owned(user_id, application_id)
        material = await Material.get_or_none(id=_uuid(material_id, "材料"), application_id=app.id)
        if material is None:
            raise _not_found("材料")
        return await self._storage().read_clean(material.storage_key)

    # -- the 个人承诺书 ------------------------------------------------------------------

    def current_commitment(self) -> dict[str, Any]:
        text = self._commitment(self.clock())
        return {
            "version": text.version,
            "title": text.title,
            "text": text.text,
            "sha256": text.sha256,
            "published_at": iso(text.published_at),
        }

    @staticmethod
    def signature_view(sig: CommitmentSignature) -> dict[str, Any]:
        return {
            "version": sig.version,
            "sha256": sig.text_sha256,
            "signed_at": iso(sig.signed_at),
            "signature_image": sig.signature_image_key is not None,
        }

    async def sign_commitment(
        self,
        user_id: int,
        application_id: str,
        *,
        version: str,
        sha256: str,
        signature_image: str | None,
        ip: str | None,
        user_agent: str | None,
    ) -> dict[str, Any]:
        """Sign the current 个人承诺书 for this application (SPEC.md commitment).

        The client echoes the version and SHA-256 of the text it showed; signing anything
        but the current text is refused (an older version: ``COMMITMENT_OUTDATED``). The
        record — version, text hash, time, user, IP, user agent, optional signature image —
        is never changed afterwards; signing again adds a new record.
        """
        now = self.clock()
        image_key: str | None = None
        if signature_image:
            # someone else's application: 404 before anything else is looked at, and
            # before the image is stored
            await self._editable(user_id, application_id, "签署承诺书")
            current = self._signed_text(version, sha256, now)
            image_key = await self._store_signature(signature_image)
        try:
            async with in_transaction():
                # without an image the one read is this one (same order of refusals: 404 /
                # 409, then the text; nothing is written before they pass)
                app = await self._editable(user_id, application_id, "签署承诺书")
                if image_key is None:
                    current = self._signed_text(version, sha256, now)
                sig = await CommitmentSignature.create(
                    application_id=app.id,
                    user_id=user_id,
                    version=current.version,
                    text_sha256=current.sha256,
                    ip=(ip or "")[:64] or None,
                    user_agent=(user_agent or "")[:512] or None,
                    signature_image_key=image_key,
                )
                if app.state != "commitment_signed":
                    await transition(app, "commitment_signed", actor=f"user:{user_id}")
                    await app.save(update_fields=["state", "updated_at"])
        except BaseException:
            if image_key is not None:
                await self._storage().delete(image_key)
            raise
        return self.signature_view(sig)

    def _signed_text(self, version: str, sha256: str, now: datetime) -> LegalText:
        """The current commitment, when the client signed exactly it (422 otherwise)."""
        current = self._commitment(now)
        status = self.documents.check_signed(version=version, sha256=sha256, now=now)  # type: ignore[union-attr]
        if status == "outdated":
            raise reasons.error("COMMITMENT_OUTDATED")
        if status != "current":
            raise DomainError(
                "COMMITMENT_MISMATCH",
                "签署的承诺书版本或内容与服务器上的不一致,请重新打开承诺书阅读后签署。",
                422,
                fields={"sha256": "COMMITMENT_MISMATCH"},
            )
        return current

    async def _store_signature(self, data: str) -> str:
        payload = data.split(",", 1)[1] if data.startswith("data:") else data
        try:
            raw = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise DomainError(
                "VALIDATION_FAILED",
                "签名图片应为 base64 编码的 PNG 或 JPEG",
                422,
                fields={"signature_image": "INVALID_FORMAT"},
            ) from None

        async def chunks() -> AsyncIterator[bytes]:
            yield raw

        stored = await self._storage().save_stream(
            chunks(), max_bytes=MAX_SIGNATURE_BYTES, allowed_types=SIGNATURE_TYPES
        )
        return stored.key

    def _commitment_status(
        self, sig: CommitmentSignature | None, now: datetime
    ) -> Literal["missing", "current", "outdated"]:
        if sig is None:
            return "missing"
        self._commitment(now)  # 503 when the texts are not configured
        status = self.documents.check_signed(version=sig.version, sha256=sig.text_sha256, now=now)  # type: ignore[union-attr]
        return "current" if status == "current" else "outdated"

    @staticmethod
    def _row_locks() -> bool:
        """Whether ``select_for_update`` means anything: on SQLite every transaction runs
        alone on the one connection already (Tortoise serializes them), so skip the query."""
        from tortoise import connections

        return connections.get("default").capabilities.dialect != "sqlite"

    # -- submit --------------------------------------------------------------------

    async def submit(
        self,
        user_id: int,
        application_id: str,
        *,
        member_face_token: str | None,
        ip: str | None = None,
    ) -> dict[str, Any]:
        """Submit: the policy decides with every fact, the limits counted under locks.

        ``active`` at once when nothing blocks; ``pending_review`` where the policy wants
        a person to look; otherwise ``failed`` with the first blocking reason kept on the
        application, and a 409 carrying that code (SPEC.md failure reasons).
        The member's face check (a network call) runs before the transaction; a face
        service that is down is 503 ``SYSTEM_BUSY`` and changes nothing.
        """
        await self._limit(user_id, "submits")
        app = await self._editable(user_id, application_id, "提交")
        await self.guesses.spend(self.redis, user_id=user_id, ip=ip)
        actor = f"user:{user_id}"
        now = self.clock()
        name = self.pii.decrypt(app.member_name_enc, purpose="name")
        try:
            doc: IdDocument | None = parse_id(
                app.id_type,
                self.pii.decrypt(app.id_number_enc, purpose="id_number"),
                today=self.today(now),
            )
        except DomainError:
            doc = None
        found = await self._found(doc, name)

        # Does the policy want the member's face? It does not depend on any count.
        binder = await self._binder(user_id)
        preview = self._context(
            binder, doc=doc, relationship=app.relationship, now=now, found=found
        )
        face_passed: bool | None = None
        if self.policy.check_binding(preview).face_check_required and doc is not None:
            face_passed = False
            if member_face_token:
                try:
                    face_passed = await self.face.verify(
                        member_face_token, id_number=doc.id_number, name=name
                    )
                except DomainError as err:
                    await ApplicationEvent.create(
                        application_id=app.id,
                        from_state=app.state,
                        to_state=app.state,
                        actor="system",
                        code=err.code,
                        note="face gateway unavailable",
                    )
                    raise
        result, record = found
        member_id = record.person_id if record is not None and result == "match" else None
        materials = [Material._init_from_db(**r) for r in await _MATERIALS.rows(app.id)]
        signature = await self._signature(app)
        read_state = app.state

        failure: DomainError | None = None
        binding: Binding | None = None
        async with in_transaction():
            if self._row_locks():
                # Lock order: member, then binder (module docstring); no lock cycle.
                if member_id is not None:
                    await InsuredPerson.filter(id=member_id).select_for_update().first()
                await User.filter(id=user_id).select_for_update().first()
            counts = await self._counts(
                binder_id=user_id,
                member_id=member_id,
                now=now,
                exclude=app.id,
                guardian_hashes=self._guardians(found),
            )
            ctx = self._context(
                binder,
                doc=doc,
                relationship=app.relationship,
                now=now,
                found=found,
                counts=counts,
                stage="submit",
                materials=frozenset(m.kind for m in materials),
                commitment=self._commitment_status(signature, now),
                face_passed=face_passed,
            )
            decision = self.policy.check_binding(ctx)
            events = [step(app, "submitted", actor=actor)]
            app.submitted_at, app.member_id = now, member_id
            blocker = decision.failure
            if blocker is not None:
                events.append(
                    step(app, "failed", actor="system", code=blocker.code, note=blocker.message)
                )
                app.failure_code, app.failure_message, app.decided_at = (
                    blocker.code,
                    blocker.message,
                    now,
                )
                failure = reasons.error(blocker.code)
                failure.message, failure.status = blocker.message, 409
                failure.detail = {
                    "fix": blocker.fix,
                    "application_id": str(app.id),
                    "state": "failed",
                }
            elif decision.review_required:
                events.append(
                    step(app, "pending_review", actor="system", note="policy: review required")
                )
            else:
                events.append(step(app, "active", actor="system"))
                app.decided_at = now
                assert member_id is not None
                binding = await Binding.create(
                    binder_id=user_id,
                    member_id=member_id,
                    application_id=app.id,
                    relationship=app.relationship,
                    state="active",
                    bound_at=now,
                )
            await ApplicationEvent.bulk_create(events)
            # Compare-and-set on the state read before: a concurrent submit of the same
            # application (or anything else that moved it) makes this one roll back.
            changed = await Application.filter(id=app.id, state=read_state).update(
                state=app.state,
                submitted_at=now,
                member_id=member_id,
                failure_code=app.failure_code,
                failure_message=app.failure_message,
                decided_at=app.decided_at,
                updated_at=now,
            )
            if changed != 1:
                raise _state_conflict(await Application.get(id=app.id), "提交")
        if failure is not None:
            raise failure
        return await self.application_view(
            app, materials=materials, signature=signature, binding=binding
        )

    async def decide_review(
        self, application_id: str, *, reviewer: str, approve: bool, detail: str = ""
    ) -> dict[str, Any]:
        """A reviewer's decision on a ``pending_review`` application (the console calls this).

        Approve: the binding becomes effective (its slots were held while pending).
        Reject: ``failed`` with ``MATERIALS_REJECTED`` (SPEC.md: 材料不清晰或不符).
        """
        now = self.clock()
        async with in_transaction():
            app = (
                await Application.filter(id=_uuid(application_id, "申请"))
                .select_for_update()
                .first()
            )
            if app is None:
                raise _not_found()
            if app.state != "pending_review":
                raise _state_conflict(app, "审核")
            actor = f"reviewer:{reviewer}"
            app.decided_at = now
            if approve:
                await self._limits_at_approval(app, now)
                await transition(app, "active", actor=actor)
                await Binding.create(
                    binder_id=app.binder_id,
                    member_id=app.member_id,
                    application_id=app.id,
                    relationship=app.relationship,
                    state="active",
                    bound_at=now,
                )
            else:
                r = reasons.reason("MATERIALS_REJECTED", detail=detail)
                await transition(app, "failed", actor=actor, code=r.code, note=detail or None)
                app.failure_code, app.failure_message = r.code, r.message
            await app.save()
        return await self.application_view(app)

    async def _limits_at_approval(self, app: Application, now: datetime) -> None:
        """Pending applications hold no monthly slot of the member (``_counts``), so the
        approval asks the policy again, under the member's row lock: a member who got two
        binders meanwhile is not given a third (409 with the code; still pending)."""
        if app.member_id is None:
            return
        if self._row_locks():
            await InsuredPerson.filter(id=app.member_id).select_for_update().first()
        binder = await self._binder(app.binder_id)
        try:
            doc: IdDocument | None = parse_id(
                app.id_type,
                self.pii.decrypt(app.id_number_enc, purpose="id_number"),
                today=self.today(now),
            )
        except DomainError:
            doc = None
        found = await self._found(doc, self.pii.decrypt(app.member_name_enc, purpose="name"))
        counts = await self._counts(
            binder_id=app.binder_id,
            member_id=app.member_id,
            now=now,
            exclude=app.id,
            guardian_hashes=self._guardians(found),
        )
        ctx = self._context(
            binder, doc=doc, relationship=app.relationship, now=now, found=found, counts=counts
        )
        limits = ("ALREADY_BOUND", "MEMBER_LIMIT_REACHED", "MONTHLY_BINDER_LIMIT")
        for b in self.policy.check_binding(ctx).blocking:
            if b.code in limits:
                err = reasons.error(b.code)
                err.message, err.status = b.message, 409
                err.detail = {"fix": b.fix, "application_id": str(app.id), "state": app.state}
                raise err

    # -- after binding -------------------------------------------------------------

    def member_view(self, binding: Binding) -> dict[str, Any]:
        person: InsuredPerson = binding.member
        return self._member_row(
            binding.id,
            binding.relationship,
            binding.state,
            binding.bound_at,
            person.name_enc,
            person.id_number_enc,
            person.insurance_type,
            person.region_code,
            person.status,
            person.voucher_activated,
        )

    def _member_row(
        self,
        binding_id: Any,
        relationship: str,
        state: str,
        bound_at: Any,
        name_enc: str,
        id_number_enc: str,
        insurance_type: str,
        region_code: str,
        status: str,
        voucher_activated: Any,
    ) -> dict[str, Any]:
        if isinstance(bound_at, str):  # SQLite hands back text
            bound_at = datetime.fromisoformat(bound_at)
        return {
            "id": str(binding_id),
            "state": state,
            "relationship": relationship,
            "relationship_label": RELATIONSHIP_LABELS.get(relationship, relationship),
            "member": {
                "name": mask_name(self.pii.decrypt(name_enc, purpose="name")),
                "id_number": mask_id(self.pii.decrypt(id_number_enc, purpose="id_number")),
            },
            "insurance": {
                "insurance_type": insurance_type,
                "region_code": region_code,
                "status": status,
                "voucher_activated": bool(voucher_activated),
            },
            "bound_at": iso(bound_at),
        }

    # The hot read of the mini-program's home page: one fixed statement, no ORM query
    # building or model instances (measured: about half of the request's time).
    _MEMBERS_SQL = (
        "SELECT b.id, b.relationship, b.state, b.bound_at, p.name_enc, p.id_number_enc, "
        "p.insurance_type, p.region_code, p.status, p.voucher_activated "
        "FROM bindings b JOIN insured_persons p ON p.id = b.member_id "
        "WHERE b.binder_id = {0} AND b.state = 'active' ORDER BY b.bound_at"
    )

    async def list_members(self, user_id: int) -> list[dict[str, Any]]:
        """The binder's effective bindings (masked), oldest first."""
        from tortoise import connections

        conn = connections.get("default")
        placeholder = "?" if conn.capabilities.dialect == "sqlite" else "$1"
        _, rows = await conn.execute_query(self._MEMBERS_SQL.format(placeholder), [user_id])
        return [self._member_row(*tuple(r)) for r in rows]

    async def unbind(self, user_id: int, binding_id: str, *, as_member: bool = False) -> None:
        """End a binding: the binder (``DELETE /family/members/{id}``) or the member
        themselves (``DELETE /family/binders/{id}``) — SPEC.md "binder or member can
        unbind". The member's monthly slot stays taken until next month unless the policy
        says otherwise (SPEC.md binders per member)."""
        now = self.clock()
        async with in_transaction():
            bid = _uuid(binding_id, "家庭成员")
            q = Binding.filter(id=bid)
            if as_member:
                person_id = await self._own_person(user_id)
                q, actor = q.filter(member_id=person_id), f"member:user:{user_id}"
            else:
                q, actor = q.filter(binder_id=user_id), f"user:{user_id}"
            binding = await q.select_for_update().first()
            if binding is None:
                raise _not_found("绑定关系" if as_member else "家庭成员")
            if binding.state != "active":
                raise DomainError("BINDING_NOT_ACTIVE", "该绑定关系已解除", 409)
            binding.state, binding.unbound_at, binding.unbound_by = "unbound", now, actor
            await binding.save(update_fields=["state", "unbound_at", "unbound_by"])
            if binding.application_id is not None:
                app = await Application.get(id=binding.application_id)
                await transition(app, "unbound", actor=actor)
                await app.save(update_fields=["state", "updated_at"])

    @staticmethod
    async def _own_person(user_id: int) -> int:
        """The insured person this user is (known once real-name verified)."""
        user = await User.get_or_none(id=user_id).only("id", "person_id", "realname_verified")
        if user is None or not user.realname_verified or user.person_id is None:
            raise DomainError("REALNAME_REQUIRED", "请先完成实名认证,再查看或解除绑定您的家人", 403)
        return int(user.person_id)

    async def list_binders(self, user_id: int) -> list[dict[str, Any]]:
        """Who holds an effective binding to me (the member's view), newest first."""
        person_id = await self._own_person(user_id)
        rows = (
            await Binding.filter(member_id=person_id, state="active")
            .select_related("binder")
            .order_by("-bound_at")
        )
        return [
            {
                "id": str(b.id),
                "relationship": b.relationship,
                "binder": {
                    "name": mask_name(self.pii.decrypt(b.binder.name_enc, purpose="name"))
                    if b.binder.name_enc
                    else None
                },
                "bound_at": iso(b.bound_at),
            }
            for b in rows
        ]

    async def voucher(self, user_id: int, binding_id: str) -> dict[str, Any]:
        """The member's dynamic 医保码: single use, 60 s; it always pays as the member."""
        await self._limit(user_id, "vouchers")
        binding = await self._owned_binding(user_id, binding_id)
        token, expires = await vouchers.issue(
            self.redis,
            member_id=binding.member_id,
            shown_by_user_id=user_id,
            binding_id=str(binding.id),
        )
        return {"qr_token": token, "expires_at": iso(expires), "ttl_seconds": vouchers.TTL_SECONDS}

    async def settlements(self, user_id: int, binding_id: str, year: int | None) -> dict[str, Any]:
        """The member's settlement records of one year (SPEC.md after binding)."""
        binding = await self._owned_binding(user_id, binding_id)
        items, total = await spending_list(binding.member_id, year or self.today().year)
        return {"items": items, "total": total}

    async def summary(self, user_id: int, binding_id: str, year: int | None) -> dict[str, Any]:
        """Balance, yearly totals and insurance status of the member."""
        binding = await self._owned_binding(user_id, binding_id)
        view = self.member_view(binding)
        out = await spending_summary(binding.member_id, year or self.today().year)
        return {**out, "member": view["member"], "insurance": view["insurance"]}


# -- the member's spending ---------------------------------------------------------------
# The settlements feature owns the figures (server.domain.settlements.queries).


async def spending_list(member_id: int, year: int) -> tuple[list[dict[str, Any]], int]:
    from server.domain.settlements import queries as settlements

    return await settlements.list_for_member(member_id, year)


async def spending_summary(member_id: int, year: int) -> dict[str, Any]:
    from server.domain.settlements import queries as settlements

    return dict(await settlements.yearly_summary(member_id, year))
