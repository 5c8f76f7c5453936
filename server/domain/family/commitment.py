"""The 个人承诺书 (SPEC.md commitment): the current text, signing it for an application, and
whether a signature is still the current text at submit."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from tortoise.transactions import in_transaction

from server.domain import reasons
from server.domain.clock import cn_iso
from server.domain.errors import DomainError
from server.domain.family import quota
from server.domain.family.base import FamilyBase, actor_of
from server.domain.family.materials import storage_errors
from server.domain.family.states import transition
from server.domain.models import ApplicationEvent, CommitmentSignature

if TYPE_CHECKING:
    from server.domain.documents import DocumentBook, LegalText

SIGNATURE_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png"})
MAX_SIGNATURE_BYTES = quota.SIGNATURE_CHARGE_BYTES
# 窗口代办: the binder signed the printed 承诺书 at the counter (an application event)
COMMITMENT_ON_PAPER = "COMMITMENT_ON_PAPER"

CommitmentStatus = Literal["missing", "current", "outdated"]


def current_text(documents: DocumentBook | None, now: datetime) -> LegalText:
    """The 承诺书 in force at ``now``; 503 when the texts are not configured."""
    if documents is None:
        raise DomainError("SERVICE_UNAVAILABLE", "承诺书暂不可用")
    return documents.current(now)


def commitment_status(
    documents: DocumentBook | None, sig: CommitmentSignature | None, now: datetime
) -> CommitmentStatus:
    """Whether the application's latest signature is of the text in force at ``now``."""
    if sig is None:
        return "missing"
    current_text(documents, now)  # 503 when the texts are not configured
    assert documents is not None
    status = documents.check_signed(version=sig.version, sha256=sig.text_sha256, now=now)
    return "current" if status == "current" else "outdated"


def signature_view(sig: CommitmentSignature) -> dict[str, Any]:
    return {
        "version": sig.version,
        "sha256": sig.text_sha256,
        "signed_at": cn_iso(sig.signed_at),
        "signature_image": sig.signature_image_key is not None,
    }


class CommitmentPart(FamilyBase):
    """Show the current 承诺书 and sign it for an application."""

    def current_commitment(self) -> dict[str, Any]:
        text = current_text(self.documents, self.clock())
        return {
            "version": text.version,
            "title": text.title,
            "text": text.text,
            "sha256": text.sha256,
            "published_at": cn_iso(text.published_at),
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
        staff: str | None = None,
        on_paper: bool = False,
    ) -> dict[str, Any]:
        """Sign the current 个人承诺书 for this application (SPEC.md commitment).

        The client echoes the version and SHA-256 of the text it showed; signing anything
        but the current text is refused (an older version: ``COMMITMENT_OUTDATED``). The
        record — version, text hash, time, user, IP, user agent, optional signature image —
        is never changed afterwards; signing again adds a new record (at most
        ``max_signatures_per_application``), and a new signature image replaces the
        application's earlier one: the earlier file is deleted, its record kept without it.

        At the counter (窗口代办, ``staff``: the clerk): the binder signs the printed text
        (``on_paper``: the signed form is kept at the counter, an event says so) or on the
        counter's pad (``signature_image``); the version is the one printed.
        """
        now = self.clock()
        image_key: str | None = None
        if signature_image:
            # someone else's application: 404 before anything else is looked at, and
            # before the image is stored
            app = await self._editable(user_id, application_id, "签署承诺书")
            current = self._signed_text(version, sha256, now)
            await quota.check_signatures(self.limits, app)
            await quota.check_rate(self.redis, self.limits, user_id)
            # the application's earlier image is replaced: it frees its charge
            replaced = await CommitmentSignature.filter(
                application_id=app.id, signature_image_key__isnull=False
            ).exists()
            room = await quota.remaining_bytes(
                self.limits, user_id, freed=quota.SIGNATURE_CHARGE_BYTES if replaced else 0
            )
            if room < quota.SIGNATURE_CHARGE_BYTES:
                raise quota.quota_exceeded(self.limits)
            image_key = await self._store_signature(signature_image)
        old_images: list[CommitmentSignature] = []
        try:
            async with in_transaction():
                if image_key is not None:
                    await quota.lock_user(user_id)
                # without an image the one read is this one (same order of refusals: 404 /
                # 409, then the text; nothing is written before they pass)
                app = await self._editable(user_id, application_id, "签署承诺书")
                if image_key is None:
                    current = self._signed_text(version, sha256, now)
                await quota.check_signatures(self.limits, app)
                if image_key is not None:
                    # one live signature image per application: the earlier ones go (their
                    # records stay: what was signed, when, by whom)
                    old_images = await CommitmentSignature.filter(
                        application_id=app.id, signature_image_key__isnull=False
                    )
                    await CommitmentSignature.filter(
                        id__in=[old.id for old in old_images]
                    ).update(signature_image_key=None)
                sig = await CommitmentSignature.create(
                    application_id=app.id,
                    user_id=user_id,
                    version=current.version,
                    text_sha256=current.sha256,
                    ip=(ip or "")[:64] or None,
                    user_agent=(user_agent or "")[:512] or None,
                    signature_image_key=image_key,
                )
                # (waiting for a fix, the application keeps its state: a new signature is
                # one of the fixes, and the resubmit moves it on)
                if on_paper:
                    await ApplicationEvent.create(
                        application_id=app.id,
                        from_state=app.state,
                        to_state=app.state,
                        actor=actor_of(user_id, staff),
                        code=COMMITMENT_ON_PAPER,
                        note=current.version,
                    )
                if app.state in ("draft", "materials"):
                    await transition(app, "commitment_signed", actor=actor_of(user_id, staff))
                    await app.save(update_fields=["state", "updated_at"])
        except BaseException:
            if image_key is not None:
                await self._storage().delete(image_key)
            raise
        for old in old_images:  # after the commit: at worst an orphan file, never a dangling row
            await self._storage().delete(str(old.signature_image_key))
        return signature_view(sig)

    def _signed_text(self, version: str, sha256: str, now: datetime) -> LegalText:
        """The current commitment, when the client signed exactly it (422 otherwise)."""
        current = current_text(self.documents, now)
        assert self.documents is not None
        status = self.documents.check_signed(version=version, sha256=sha256, now=now)
        if status == "outdated":
            raise reasons.error("COMMITMENT_OUTDATED")
        if status != "current":
            raise DomainError(
                "COMMITMENT_MISMATCH",
                "签署的承诺书版本或内容与服务器上的不一致,请重新打开承诺书阅读后签署。",
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
                fields={"signature_image": "INVALID_FORMAT"},
            ) from None

        async def chunks() -> AsyncIterator[bytes]:
            yield raw

        with storage_errors():
            stored = await self._storage().save_stream(
                chunks(), max_bytes=MAX_SIGNATURE_BYTES, allowed_types=SIGNATURE_TYPES
            )
        return stored.key
