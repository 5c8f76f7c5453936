"""Signed requests: the institution webhook's HMAC (replay, staleness, wrong secret, body
changed after signing, odd header values) and the constant-time rule for every secret
compared in the code base (signatures, tokens, MACs, CSRF)."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import LedgerEntry, Settlement
from tests.factories import add_institution, add_person, error_of, signed_headers
from tests.money.conftest import settlement_body

ROOT = Path(__file__).resolve().parents[2]
PATH = "/api/v1/institution/settlements"


async def _post(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return await client.post(PATH, data=body, headers=headers)


async def _code(resp: Any) -> str:
    assert resp.status == 401, await resp.text()
    assert resp.headers["WWW-Authenticate"] == "HMAC-SHA256"
    return str((await error_of(resp))["code"])


async def test_institution_signature_matrix(client: TestClient, app: web.Application) -> None:
    code, secret = "H40001", await add_institution(app, "H40001", "甲医院")
    other_secret = await add_institution(app, "H40002", "乙医院")
    member = await add_person(app, "李秀英", balance_fen=10_000)
    body = json.dumps(settlement_body("SIG1", "10.00", psn_no=member.psn_no)).encode()
    now = int(time.time())

    # wrong secret: another institution's, a near miss of our own, empty
    for wrong in (other_secret, secret[:-1] + ("x" if secret[-1] != "x" else "y"), ""):
        assert await _code(await _post(client, body, signed_headers(code, wrong, body))) == "SIGNATURE_INVALID"
    # another institution's code with our signature
    h = signed_headers(code, secret, body) | {"X-Institution-Code": "H40002"}
    assert await _code(await _post(client, body, h)) == "SIGNATURE_INVALID"
    # body altered after signing: one byte, appended, truncated, re-serialised
    h = signed_headers(code, secret, body)
    for altered in (body.replace(b"10.00", b"19.00"), body + b" ", body[:-1], json.dumps(json.loads(body), indent=1).encode()):
        assert await _code(await _post(client, altered, h)) == "SIGNATURE_INVALID"
    # stale and future timestamps, and timestamps that are not plain ASCII seconds
    for ts in (now - 301, now + 301, 0):
        h = signed_headers(code, secret, body, timestamp=ts)
        assert await _code(await _post(client, body, h)) == "TIMESTAMP_EXPIRED"
    for odd in ("²", "١٧٠٠٠٠٠٠٠٠", f"{now}.0", f"-{now}", "9" * 400, "0x10"):
        h = signed_headers(code, secret, body) | {"X-Timestamp": odd}
        assert await _code(await _post(client, body, h)) == "TIMESTAMP_EXPIRED", odd
    # signatures that are not hex, not ASCII, the wrong length
    good = signed_headers(code, secret, body)
    for sig in ("é" * 64, good["X-Signature"][:-1], good["X-Signature"] + "0", "", "🔑"):
        if not sig:
            continue
        h = dict(good) | {"X-Signature": sig}
        assert await _code(await _post(client, body, h)) == "SIGNATURE_INVALID", sig
    assert await Settlement.all().count() == 0  # nothing of the above got through

    # replay: the genuine request once, then the same nonce — same body, other body, later
    nonce = "replay-nonce-0001"
    h = signed_headers(code, secret, body, nonce=nonce)
    assert (await _post(client, body, h)).status == 201
    assert await _code(await _post(client, body, h)) == "NONCE_REPLAYED"
    body2 = json.dumps(settlement_body("SIG2", "10.00", psn_no=member.psn_no)).encode()
    h2 = signed_headers(code, secret, body2, nonce=nonce, timestamp=now + 5)
    assert await _code(await _post(client, body2, h2)) == "NONCE_REPLAYED"
    # the same nonce is another institution's own business
    other_body = json.dumps(settlement_body("SIG3", "1.00", psn_no=member.psn_no)).encode()
    resp = await _post(client, other_body, signed_headers("H40002", other_secret, other_body, nonce=nonce))
    assert resp.status != 401, await resp.text()
    assert await Settlement.filter(setl_id="SIG1").count() == 1
    assert await LedgerEntry.filter(kind="settlement").count() >= 1


@pytest.mark.parametrize("sig", ["é" * 64, "ü", "\u00ff" * 10])
async def test_non_ascii_secrets_are_refused_not_500(client: TestClient, app: web.Application, sig: str) -> None:
    """``hmac.compare_digest`` raises on non-ASCII ``str``: every place that compares a
    caller's secret answers its refusal, never a 500."""
    code, secret = "H40003", await add_institution(app, "H40003", "丙医院")
    body = b"{}"
    h = signed_headers(code, secret, body) | {"X-Signature": sig}
    assert await _code(await _post(client, body, h)) == "SIGNATURE_INVALID"
    resp = await client.get("/api/v1/review/applications", headers={"Authorization": f"Bearer {sig}"})
    assert resp.status == 401, await resp.text()
    resp = await client.get("/api/v1/me/files/material/x", params={"u": "1", "exp": "9999999999", "sig": sig})
    assert resp.status == 403, await resp.text()
    resp = await client.get("/wechat/official", params={"signature": sig, "timestamp": str(int(time.time())),
                                                         "nonce": "n", "echostr": "e"})
    assert resp.status == 403, await resp.text()


# -- constant time, by reading the code ----------------------------------------------------

#: Modules that compare a caller's secret with ours, and how they must do it: through
#: ``server.consttime.same`` or argon2's verify (constant time inside), never with
#: ``==`` / ``!=``. Refresh tokens, 医保码 and download ids are looked up by their hash
#: (no comparison); pyjwt checks JWT signatures with compare_digest itself.
SECRET_CHECKS = {
    "institution_api/signing.py": "same",
    "server/privacy/links.py": "same",
    "server/openapi.py": "same",
    "review_console/session.py": "same",
    "server/gateways/wechat.py": "same",
    "bot/codec.py": "same",
    "server/domain/voucher_password.py": "self.hasher.verify",
    "server/domain/staff.py": "self.hasher.verify",
}
#: Modules whose secret-named ``==`` compare no caller's input, and why.
NO_CALLER_INPUT = {
    "server/gateways/token_cache.py": "WeChat access tokens we fetched, compared with each other",
    "server/domain/face_check.py": "our session record's md5s against the ones we computed",
    "server/domain/institutions.py": "the operator's CLI re-adding an institution (idempotence), no network caller",
}
_SECRETISH = ("sig", "signature", "token", "secret", "digest", "mac", "csrf", "md5", "password")
# not "hash": blind indexes (HMAC under the server's hash key) are compared with ``==`` —
# how far two differ says nothing about the name or number typed, without the key


def _names(node: ast.AST) -> list[str]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            out.append(n.id)
        elif isinstance(n, ast.Attribute):
            out.append(n.attr)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name):
            out.append(n.func.id)
    return [x.lower() for x in out]


def _secret_equalities(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            continue
        operands = [node.left, *node.comparators]
        if any(isinstance(o, ast.Constant) and o.value in (None, "", 0) for o in operands):
            continue  # emptiness checks leak nothing
        if any(isinstance(o, ast.Constant) and isinstance(o.value, str) and len(o.value) < 16 for o in operands):
            continue  # a public literal (scheme names, kinds)
        if any(isinstance(o, ast.Name) and o.id.isupper() for o in operands):
            continue  # a module constant (a file format's magic bytes), public
        if any(isinstance(o, ast.Call) and ast.unparse(o.func) == "len" for o in operands):
            continue  # a length rule (weak passwords), no secret compared
        names = [n for o in operands for n in _names(o)]
        if any(any(word in n for word in _SECRETISH) for n in names):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("module", sorted(SECRET_CHECKS))
def test_secrets_are_compared_in_constant_time(module: str) -> None:
    source = (ROOT / module).read_text()
    assert not _secret_equalities(source), _secret_equalities(source)
    tree = ast.parse(source)
    calls = [ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert SECRET_CHECKS[module] in calls, f"{module} compares no secret in constant time any more"
    raw = [c for c in calls if c.endswith("compare_digest")]
    assert not raw, f"{module}: use server.consttime.same (compare_digest raises on non-ASCII str)"


def test_no_other_module_compares_secrets_raw() -> None:
    """compare_digest outside server/consttime.py (it raises on non-ASCII str) and a module
    with a secret ``==`` that is not listed above both fail here."""
    listed = set(SECRET_CHECKS)
    for top in ("server", "bot", "institution_api", "miniapp_api", "review_console"):
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            source = path.read_text()
            if rel != "server/consttime.py":
                assert "compare_digest" not in source, f"{rel}: use server.consttime.same"
            if rel not in listed and rel not in NO_CALLER_INPUT:
                assert not _secret_equalities(source), (rel, _secret_equalities(source))


def test_the_checker_catches_a_plain_comparison() -> None:
    assert _secret_equalities("if sign(secret, body) == signature:\n    pass\n")
    assert _secret_equalities("ok = token != expected_token\n")
    assert not _secret_equalities("if scheme.lower() == 'bearer':\n    pass\n")
    assert not _secret_equalities("if same(sign(secret, body), signature):\n    pass\n")
