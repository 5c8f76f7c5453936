"""Materials of an application: streamed uploads (户口本, 身份证, 出生证明 …), attached to
the application while it is editable, read back without metadata (SPEC.md materials).

Storage refusals (``server.gateways.storage`` errors) become API.md codes here, the one
place that words them for people (:func:`storage_refusal`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from tortoise.transactions import in_transaction

from server.domain.clock import cn_iso
from server.domain.errors import DomainError
from server.domain.family import quota
from server.domain.family.base import FamilyBase, actor_of, not_found, uuid_or_404
from server.domain.family.states import transition
from server.domain.models import ApplicationEvent, Material
from server.domain.policy import MATERIAL_KINDS, MATERIAL_LABELS
from server.gateways.storage import (
    CorruptFile,
    EmptyFile,
    ObjectNotFound,
    Storage,
    StorageError,
    StorageFull,
    StoredObject,
    TooLarge,
    UnsupportedMedia,
)

MATERIAL_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png", "application/pdf"})
# 窗口代办: a document the counter clerk saw in person instead of a file — an application
# event with this code, the material kind as its note, the clerk as its actor.
DOCUMENT_SEEN = "DOCUMENT_SEEN"


async def seen_kinds(application_id: uuid.UUID) -> frozenset[str]:
    """The material kinds a counter clerk saw in person for this application."""
    notes = await ApplicationEvent.filter(
        application_id=application_id, code=DOCUMENT_SEEN
    ).values_list("note", flat=True)
    return frozenset(str(n) for n in notes if n)


def storage_refusal(err: StorageError) -> DomainError:
    """What a storage refusal means to the user: API.md code, Chinese text, status."""
    if isinstance(err, TooLarge):
        mb = f"{err.max_bytes / (1024 * 1024):g}"
        return DomainError("MATERIAL_TOO_LARGE", f"文件过大,单个材料不能超过 {mb} MB")
    if isinstance(err, EmptyFile):
        return DomainError(
            "MATERIAL_EMPTY", "上传的文件为空,请重新选择", fields={"file": "MATERIAL_EMPTY"}
        )
    if isinstance(err, CorruptFile):
        return DomainError(
            "MATERIAL_CORRUPT",
            "文件已损坏或不完整,请重新拍照或扫描后上传",
            fields={"file": "MATERIAL_CORRUPT"},
        )
    if isinstance(err, ObjectNotFound):
        return DomainError("MATERIAL_NOT_FOUND", "材料不存在或已删除")
    if isinstance(err, UnsupportedMedia):
        return DomainError("UNSUPPORTED_MEDIA_TYPE", "仅支持 JPEG、PNG 或 PDF 格式的文件")
    if isinstance(err, StorageFull):
        # 507 Insufficient Storage (server/http_errors.py): the server's side, not the
        # file's; nothing was kept
        return DomainError(
            "STORAGE_FULL", "服务器存储空间不足,文件暂时无法保存,请稍后再试", retry_after=600
        )
    raise err  # a new kind of storage error must be worded here first


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Storage refusals inside the block leave it as ``DomainError`` (:func:`storage_refusal`)."""
    try:
        yield
    except StorageError as err:
        raise storage_refusal(err) from None


async def open_document(storage: Storage, key: str) -> tuple[str, AsyncIterator[bytes]]:
    """A stored material's type and its bytes chunk by chunk (metadata stripped, decrypted
    as they stream); 404 ``MATERIAL_NOT_FOUND`` when the object is gone."""
    with storage_errors():
        return await storage.open_stream(key)


def material_view(m: Material) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "kind": m.kind,
        "label": MATERIAL_LABELS.get(m.kind, m.kind),
        "content_type": m.content_type,
        "size": m.size,
        "sha256": m.sha256,
        "created_at": cn_iso(m.created_at),
    }


class MaterialsPart(FamilyBase):
    """Upload, attach and read back an application's materials."""

    async def store_upload(
        self, user_id: int, application_id: str, source: Any, *, kind: str | None = None
    ) -> StoredObject:
        """Stream one uploaded file to storage once the application is known to be the
        user's and still editable (sniffed type, size cap: 415 / 413, nothing kept).
        Needs the uploader's consent to ``id_documents`` (403 ``CONSENT_REQUIRED``).
        Spends the upload rate and must fit the application's caps and the user's storage
        budget (``quota``; ``kind`` when it came before the file: checked here already)."""
        await self.consents.require(user_id, "id_documents")
        app = await self._editable(user_id, application_id, "上传材料")
        await quota.check_rate(self.redis, self.limits, user_id)
        previous = await quota.check_counts(self.limits, app, kind)
        room = await quota.remaining_bytes(
            self.limits, user_id, freed=previous.size if previous is not None else 0
        )
        if room <= 0:
            raise quota.quota_exceeded(self.limits)
        cap = min(self.limits.max_material_bytes, room)
        try:
            return await self._storage().save_stream(
                source, max_bytes=cap, allowed_types=MATERIAL_TYPES
            )
        except TooLarge as err:  # cut off while streaming: nothing kept
            if cap < self.limits.max_material_bytes:
                raise quota.quota_exceeded(self.limits) from None
            raise storage_refusal(err) from None
        except StorageError as err:
            raise storage_refusal(err) from None

    async def discard_upload(self, stored: StoredObject) -> None:
        await self._storage().delete(stored.key)

    async def attach_material(
        self,
        user_id: int,
        application_id: str,
        *,
        kind: str | None,
        stored: StoredObject,
        staff: str | None = None,
    ) -> dict[str, Any]:
        """Record a stored upload as a material of the application (the file is removed
        again when the kind is unknown, the application moved on meanwhile or has no room
        left). A single-sheet kind replaces the application's earlier one (its file is
        deleted after the commit). ``staff``: the counter clerk who scanned it for the binder."""
        try:
            if kind not in MATERIAL_KINDS:
                raise DomainError(
                    "VALIDATION_FAILED",
                    "材料类型无效",
                    fields={"kind": "REQUIRED" if not kind else "INVALID_CHOICE"},
                )
            async with in_transaction():
                await quota.lock_user(user_id)
                app = await self._editable(user_id, application_id, "上传材料")
                previous = await quota.check_counts(self.limits, app, kind)
                room = await quota.remaining_bytes(
                    self.limits, user_id, freed=previous.size if previous is not None else 0
                )
                if stored.size > room:
                    raise quota.quota_exceeded(self.limits)
                material = await Material.create(
                    application_id=app.id,
                    kind=kind,
                    content_type=stored.content_type,
                    size=stored.size,
                    sha256=stored.sha256,
                    storage_key=stored.key,
                )
                if previous is not None:
                    await previous.delete()
                    await ApplicationEvent.create(
                        application_id=app.id,
                        from_state=app.state,
                        to_state=app.state,
                        actor=actor_of(user_id, staff),
                        note=f"material replaced: {kind}",
                    )
                if app.state == "draft":
                    await transition(app, "materials", actor=actor_of(user_id, staff))
                    await app.save(update_fields=["state", "updated_at"])
        except BaseException:
            await self._storage().delete(stored.key)
            raise
        if previous is not None:
            # after the commit: a failed delete leaves an orphan file, never a dangling row
            await self._storage().delete(previous.storage_key)
        return material_view(material)

    async def record_seen(
        self, user_id: int, application_id: str, *, kinds: list[str], staff: str
    ) -> list[str]:
        """窗口代办: the clerk saw these documents in person (no file kept). Each is an
        application event naming the clerk; the submit counts them as the materials of
        their kinds (the policy's materials rule is unchanged). Unknown kinds are 422."""
        unknown = [k for k in kinds if k not in MATERIAL_KINDS]
        if unknown or not kinds:
            raise DomainError(
                "VALIDATION_FAILED", "材料类型无效", fields={"kinds": "INVALID_CHOICE"}
            )
        async with in_transaction():
            app = await self._editable(user_id, application_id, "登记材料")
            await ApplicationEvent.bulk_create(
                [
                    ApplicationEvent(
                        application_id=app.id,
                        from_state=app.state,
                        to_state=app.state,
                        actor=actor_of(user_id, staff),
                        code=DOCUMENT_SEEN,
                        note=kind,
                    )
                    for kind in dict.fromkeys(kinds)
                ]
            )
        return list(dict.fromkeys(kinds))

    async def remove_material(self, user_id: int, application_id: str, material_id: str) -> None:
        """Remove a material before submit (or while the application waits for a fix);
        its file goes with it (API.md v1.1 ``DELETE …/materials/{material_id}``)."""
        async with in_transaction():
            app = await self._editable(user_id, application_id, "删除材料")
            material = await Material.get_or_none(
                id=uuid_or_404(material_id, "材料"), application_id=app.id
            )
            if material is None:
                raise not_found("材料")
            await material.delete()
            await ApplicationEvent.create(
                application_id=app.id,
                from_state=app.state,
                to_state=app.state,
                actor=f"user:{user_id}",
                note=f"material removed: {material.kind}",
            )
        # after the commit: a failed delete leaves an orphan file, never a dangling row
        await self._storage().delete(material.storage_key)

    async def open_material(
        self, user_id: int, application_id: str, material_id: str
    ) -> tuple[str, AsyncIterator[bytes]]:
        """The owner's material, metadata (EXIF…) stripped by the storage: its type, then
        the bytes chunk by chunk."""
        app = await self._owned(user_id, application_id)
        material = await Material.get_or_none(
            id=uuid_or_404(material_id, "材料"), application_id=app.id
        )
        if material is None:
            raise not_found("材料")
        return await open_document(self._storage(), material.storage_key)
