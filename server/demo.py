"""Demo data for the embedded run: the registry CSV in config/ and one demo hospital."""

from __future__ import annotations

import logging
from typing import AsyncIterator

from aiohttp import web

from server import keys
from server.domain.institutions import add_institution
from server.domain.registry import import_csv
from server.settings import CONFIG_DIR

log = logging.getLogger(__name__)

DEMO_REGISTRY = CONFIG_DIR / "demo_registry.csv"


async def demo_data_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.settings_key]
    pii = app[keys.pii_key]
    result = await import_csv(DEMO_REGISTRY, pii=pii)
    inst = settings.institution
    await add_institution(
        code=inst.demo_code, name=inst.demo_name, region_code=inst.demo_region, pii=pii, secret=inst.demo_secret
    )
    persons = result.created + result.updated + result.unchanged
    log.info("demo data: %d insured persons (%d new), institution %s", persons, result.created, inst.demo_code)
    yield
