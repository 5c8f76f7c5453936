"""Disk-fill limits on uploads (issue #17 finding 6: one draft took 25 × 8 MB in 1.5 s and
a signature image could be re-signed without end).

Every uploaded file — a material or a 承诺书 signature image — spends:

* the user's upload rate (``[family] uploads_per_hour``, Redis): beyond it 429
  ``RATE_LIMITED`` with ``Retry-After``, before a byte is read;
* the user's storage budget (``upload_budget_bytes``) across the live uploads of all their
  applications: a file that would not fit is cut off while it streams (nothing kept) and
  refused 409 ``UPLOAD_QUOTA_EXCEEDED``. Signature images count at their cap (their size
  is not recorded; there is at most one live image per application);
* the application's caps: ``max_materials_per_application`` materials in all, at most
  ``max_materials_per_kind`` of a kind that has several pages (户口本, 公证书 …) — 409
  ``MATERIAL_LIMIT_REACHED``. A kind that is one sheet (``single_material_kinds``: 身份证
  each side, 出生医学证明) is replaced: the new file takes the old one's place and the old
  file is deleted. Signing again is capped (``max_signatures_per_application``) and the
  earlier signatures' images are deleted (the records stay).

The counts are checked before streaming (a quick refusal) and again when the material is
recorded, under a lock on the user's row (concurrent uploads cannot all slip past).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, cast

from server.domain.errors import DomainError
from server.domain.models import Application, CommitmentSignature, Material, User
from server.domain.policy import MATERIAL_LABELS
from server.ratelimit import hit

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from server.domain.family.base import Limits

__all__ = [
    "SIGNATURE_CHARGE_BYTES", "check_counts", "check_rate", "check_signatures", "lock_user",
    "quota_exceeded", "remaining_bytes",
]

#: What a live signature image is charged against the budget (the signature size cap).
SIGNATURE_CHARGE_BYTES = 512 * 1024


async def check_rate(redis: Redis, limits: Limits, user_id: int) -> None:
    """One upload of ``user_id`` (429 ``RATE_LIMITED`` beyond ``uploads_per_hour``)."""
    await hit(redis, f"family:uploads:{user_id}", limit=limits.uploads_per_hour, per_seconds=3600)


async def lock_user(user_id: int) -> None:
    """Serialise the user's uploads for the rest of the transaction (PostgreSQL; SQLite
    serialises writers anyway)."""
    await User.filter(id=user_id).select_for_update().only("id").first()


async def remaining_bytes(limits: Limits, user_id: int, *, freed: int = 0) -> int:
    """Bytes the user may still upload; ``freed``: the size of a file being replaced."""
    sizes = cast(list[int], await Material.filter(application__binder_id=user_id).values_list("size", flat=True))
    materials = sum(int(size) for size in sizes)
    images = await CommitmentSignature.filter(
        user_id=user_id, signature_image_key__isnull=False
    ).count()
    return limits.upload_budget_bytes - materials - images * SIGNATURE_CHARGE_BYTES + freed


def quota_exceeded(limits: Limits) -> DomainError:
    mb = f"{limits.upload_budget_bytes / (1024 * 1024):g}"
    return DomainError(
        "UPLOAD_QUOTA_EXCEEDED",
        f"您上传的材料已达 {mb} MB 的总量上限,请删除不需要的材料或草稿后再上传",
    )


async def check_counts(limits: Limits, app: Application, kind: str | None) -> Material | None:
    """Refuse a material the application has no room for (409 ``MATERIAL_LIMIT_REACHED``);
    the material a new one of a single-sheet ``kind`` replaces (None: it is added)."""
    if kind is not None and kind in limits.single_material_kinds:
        previous = (
            await Material.filter(application_id=app.id, kind=kind).order_by("-created_at").first()
        )
        if previous is not None:
            return previous
    per_kind: Counter[str] = Counter(
        cast(list[str], await Material.filter(application_id=app.id).values_list("kind", flat=True))
    )
    if sum(per_kind.values()) >= limits.max_materials_per_application:
        raise DomainError(
            "MATERIAL_LIMIT_REACHED",
            f"每个申请最多上传 {limits.max_materials_per_application} 份材料,"
            "请删除不需要的材料后再上传",
        )
    if kind is not None and per_kind.get(kind, 0) >= limits.max_materials_per_kind:
        label = MATERIAL_LABELS.get(kind, kind)
        raise DomainError(
            "MATERIAL_LIMIT_REACHED",
            f"{label}最多上传 {limits.max_materials_per_kind} 份,请删除不需要的再上传",
            fields={"kind": "MATERIAL_LIMIT_REACHED"},
        )
    return None


async def check_signatures(limits: Limits, app: Application) -> None:
    """Refuse signing again past ``max_signatures_per_application`` (409)."""
    if await CommitmentSignature.filter(application_id=app.id).count() >= (
        limits.max_signatures_per_application
    ):
        raise DomainError(
            "SIGNATURE_LIMIT_REACHED",
            f"同一申请最多签署 {limits.max_signatures_per_application} 次承诺书",
        )
