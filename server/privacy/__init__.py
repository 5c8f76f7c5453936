"""Personal information as the law asks (个人信息保护法, PIPL; SPEC.md "Personal
information"; issue #12). docs/privacy.md maps each article to what the product does.

==================  =====================================================================
``config``          the ``[privacy]`` settings (retention, export links, the job), typed
``records``         consent rows as facts (in force per purpose, who withdrew)
``consent``         the notice and separate consent per purpose; enforcement
                    (``CONSENT_REQUIRED``)
``links``           short-lived signed download links
``export``          ``GET /me/export``: everything held about the caller, streamed
``deletion``        ``DELETE /me``: withdraw all and delete the account, resumable
``retention``       materials purged a set time after the decision, each purge logged
``job``             the scheduled job (push worker process / embedded server)
==================  =====================================================================
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from server import keys

__all__ = ["privacy_ctx"]


async def privacy_ctx(app: web.Application) -> AsyncIterator[None]:
    """The privacy services on the app's resources (after the family context)."""
    from server.privacy.deletion import DeletionService
    from server.privacy.links import LinkSigner

    settings = app[keys.settings_key]
    config = settings.privacy
    app[keys.privacy_config_key] = config
    app[keys.links_key] = LinkSigner(settings.pii.hash_key, ttl=config.export_link_seconds)
    app[keys.deletion_key] = DeletionService(
        auth=app[keys.auth_key],
        family=app[keys.family_key],
        storage=app[keys.storage_key],
        consents=app[keys.consents_key],
        pii=app[keys.pii_key],
        redis=app[keys.redis_key],
    )
    yield
