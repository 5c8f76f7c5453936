"""Shared pieces of the 家庭共济 / settlement tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.factories import add_institution

INST = "H10001"
ROOT = Path(__file__).resolve().parents[2]


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


async def run_cli(settings: Any, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    """``python -m server ARGS`` as the bureau runs it, on the test's own database
    (schema left alone); returns (exit code, stdout, stderr)."""
    import asyncio
    import os
    import sys

    from tests import conftest

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "WECHAT_", "TEST_", "CONFIG_FILE"))
    }
    env.update(
        DATA_DIR=str(settings.data_path), DATABASE_URL=conftest.PG_URL, DATABASE_SCHEMA="none"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def institution_directory(app: Any) -> Any:
    """The institution sub-app's directory (its cache clock is what tests move)."""
    from server import keys

    for resource in app.router.resources():
        info = resource.get_info()
        if info.get("prefix") == "/api/v1/institution":
            return info["app"][keys.institution_directory_key]
    raise LookupError("no institution sub-app")
