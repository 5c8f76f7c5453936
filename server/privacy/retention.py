"""Keep uploaded materials no longer than needed (PIPL art. 19; SPEC.md "keep no longer
than needed"; issue #12).

A material is purged — its file removed from storage, its row deleted, a
``material_purges`` row written — when its application is

* decided (``active``, ``failed``, ``unbound``, ``cancelled``) for more than
  ``[privacy] materials_retention_days`` (from ``decided_at``; a cancelled one from its
  last change), or
* never submitted (``draft``, ``materials``, ``commitment_signed``) and untouched for more
  than ``[privacy] draft_retention_days``.

Any other state — ``submitted``, ``pending_review``, ``needs_action``,
``correction_requested``, or one added later — is never purged: the list of purgeable
states is positive, so a new waiting state is safe by default.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from server.domain.clock import SHANGHAI
from server.domain.models import Material, MaterialPurge
from server.privacy.config import PrivacyConfig
from server.privacy.deletion import FileStore

__all__ = ["DECIDED", "NEVER_SUBMITTED", "purge_due"]

log = logging.getLogger(__name__)

DECIDED: frozenset[str] = frozenset({"active", "failed", "unbound", "cancelled"})
NEVER_SUBMITTED: frozenset[str] = frozenset({"draft", "materials", "commitment_signed"})
MAX_ROUNDS = 1000  # a run ends after this many batches; the next run goes on


def _due(config: PrivacyConfig, now: datetime) -> Q:
    # SQLite compares stored text: bounds in the zone datetimes are stored in
    decided = (now - timedelta(days=config.materials_retention_days)).astimezone(SHANGHAI)
    idle = (now - timedelta(days=config.draft_retention_days)).astimezone(SHANGHAI)
    return (
        Q(application__state__in=sorted(DECIDED))
        & (
            Q(application__decided_at__lt=decided)
            | Q(application__decided_at__isnull=True, application__updated_at__lt=decided)
        )
    ) | Q(application__state__in=sorted(NEVER_SUBMITTED), application__updated_at__lt=idle)


async def purge_due(*, storage: FileStore, config: PrivacyConfig, now: datetime) -> int:
    """Purge every material past its retention (module docstring); returns how many.

    The file goes first, then the row and its log row in one transaction: a crash in
    between leaves a row whose file is gone (the next run finishes it), never a file
    nobody knows about."""
    purged = 0
    for _ in range(MAX_ROUNDS):
        batch = (
            await Material.filter(_due(config, now))
            .select_related("application")
            .order_by("created_at", "id")
            .limit(config.job_batch)
        )
        for m in batch:
            app = m.application
            decided = app.state in DECIDED
            rule = config.rule("materials_retention_days" if decided else "draft_retention_days")
            await storage.delete(m.storage_key)
            async with in_transaction():
                if not await Material.filter(id=m.id).delete():
                    continue  # removed meanwhile (the binder, a deletion)
                await MaterialPurge.create(
                    material_id=m.id,
                    application_id=app.id,
                    kind=m.kind,
                    size=m.size,
                    reason="retention",
                    rule=rule,
                    application_state=app.state,
                    decided_at=app.decided_at,
                    purged_at=now,
                )
            purged += 1
            log.info(
                "retention: purged material %s of application %s (%s, %s)", m.id, app.id, app.state, rule
            )
        if len(batch) < config.job_batch:
            break
    return purged
