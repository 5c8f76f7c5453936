"""Every path of the fixed HTTP contract (../shared/API.md) is served and documented."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

API_MD = Path(__file__).resolve().parents[2].parent / "shared" / "API.md"


def require_contract(path: Path = API_MD, env: Mapping[str, str] = os.environ) -> None:
    """Skip without API.md beside the checkout — except in CI, which always runs with
    ``../shared`` beside its clone: there a missing file means the contract went unchecked,
    and that fails."""
    if path.exists():
        return
    if env.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{path} is missing: CI must check the HTTP contract")
    pytest.skip(f"{path} is not beside this checkout")


def test_a_missing_contract_fails_in_ci_and_skips_elsewhere(tmp_path: Path) -> None:
    missing = tmp_path / "API.md"
    with pytest.raises(pytest.fail.Exception, match="CI must check"):
        require_contract(missing, {"CI": "true"})
    with pytest.raises(pytest.skip.Exception):
        require_contract(missing, {})
    require_contract(Path(__file__), {"CI": "true"})  # present: nothing to say


def _norm(path: str) -> str:
    return re.sub(r"{[^}]+}", "{}", path.split("?")[0])


def _contract() -> list[tuple[str, str]]:
    rows = re.findall(r"^\| (GET|POST|DELETE|PUT|PATCH) (/[^ |]+)", API_MD.read_text(encoding="utf-8"), re.M)
    return [(m.lower(), _norm(p)) for m, p in rows]


async def test_every_contract_path_is_in_openapi(client: TestClient) -> None:
    require_contract()
    doc = await (await client.get("/api/openapi.json")).json()
    served = {(method, _norm(path)) for path, ops in doc["paths"].items() for method in ops}
    contract = _contract()
    assert len(contract) >= 25
    missing = [c for c in contract if c not in served]
    assert missing == [], f"API.md paths missing from the app: {missing}"
    assert not any(m == "head" for m, _ in served)  # GET's implicit HEAD is not an operation


async def test_institution_endpoints_document_their_signature(client: TestClient) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    op = doc["paths"]["/api/v1/institution/settlements"]["post"]
    assert op["security"] == [{"institution": []}]
    assert {"X-Institution-Code", "X-Timestamp", "X-Nonce"} <= {p["name"] for p in op["parameters"]}
    assert "institution" in doc["components"]["securitySchemes"]
