"""Shared pieces of the 家庭共济 / settlement tests."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.factories import add_institution

INST = "H10001"


@pytest.fixture
async def institution(app: web.Application) -> dict[str, str]:
    """A signed-in hospital: code, name and secret."""
    secret = await add_institution(app, INST, "测试人民医院")
    return {"code": INST, "secret": secret, "name": "测试人民医院"}


def settlement_body(setl_id: str, psn_part: str, **extra: Any) -> dict[str, Any]:
    """A consistent 2207 body: 统筹 100.00 plus the given 个人负担."""
    from decimal import Decimal

    hifp = Decimal(extra.pop("hifp_pay", "100.00"))
    body: dict[str, Any] = {
        "setl_id": setl_id,
        "mdtrt_id": "MD" + setl_id,
        "med_type": "11",
        "setl_time": "2026-11-20T10:30:00+08:00",
        "medfee_sumamt": str(hifp + Decimal(psn_part)),
        "hifp_pay": str(hifp),
        "fund_pay_sumamt": str(hifp),
        "psn_part_amt": psn_part,
    }
    body.update(extra)
    return body


async def get_signed(client: Any, path: str, *, code: str, secret: str) -> Any:
    """A signed GET under /api/v1/institution (API.md: the signed body is empty)."""
    from tests.factories import signed_headers

    return await client.get("/api/v1/institution" + path, headers=signed_headers(code, secret, b""))
