"""The privacy services on the app's resources (wiring: the package itself imports no
web framework, so the domain may use its services)."""

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
