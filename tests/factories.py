"""Small async factories: each does what a real client would do, through the real API."""

from __future__ import annotations

import itertools
import json as _json
import secrets as _secrets
import time as _time
from datetime import date as _date
from typing import Any

from aiohttp import web as _web
from aiohttp.test_utils import TestClient

_codes = itertools.count(1)


def demo_code(user: str) -> str:
    """A fresh wx.login code the fake WeChat accepts once (API.md demo conventions)."""
    return f"demo-{user}-{next(_codes)}"


async def login(client: TestClient, user: str = "alice", *, consent: bool = True) -> dict[str, Any]:
    """Log ``user`` in; by default they then accept the privacy notice and every purpose
    (``consent_all``), as a new user does on the mini-program's first screen."""
    resp = await client.post("/api/v1/auth/login", json={"code": demo_code(user)})
    assert resp.status == 200, await resp.text()
    tokens = await resp.json()
    if consent:
        await consent_all(client, tokens)
    return tokens


async def consent_all(
    client: TestClient, tokens: dict[str, Any] | str, purposes: list[str] | None = None
) -> dict[str, Any]:
    """Accept the privacy notice in force and consent to ``purposes`` (default: all of
    them), as the mini-program's privacy page does (API.md v1.1 "Privacy")."""
    notice = await (await client.get("/api/v1/privacy/notice")).json()
    chosen = [p["id"] for p in notice["purposes"]] if purposes is None else purposes
    resp = await client.post(
        "/api/v1/privacy/consents",
        json={"version": notice["version"], "sha256": notice["sha256"], "purposes": chosen},
        headers=bearer(tokens),
    )
    assert resp.status == 201, await resp.text()
    return await resp.json()


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def error_of(resp: Any) -> dict[str, Any]:
    """The error envelope of API.md, asserting its shape."""
    body = await resp.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] and body["error"]["message"], body
    return body["error"]


# --- 家庭共济 and settlements (tests/money) ------------------------------------------------
# Persons and bindings are created directly in the database (see ``add_binding`` for
# why); users are real-name verified through the API; institution calls are signed
# exactly as API.md says.



async def add_person(
    app: _web.Application,
    name: str,
    *,
    region: str = "420100",
    birth: _date = _date(1960, 3, 1),
    insurance_type: str = "employee",
    balance_fen: int = 0,
    status: str = "active",
    seq: str | None = None,
) -> Any:
    """An insured person in the registry, with a personal account holding ``balance_fen``."""
    from server import keys
    from server.domain import ledger
    from server.domain.identity import make_resident_id
    from server.domain.models import InsuredPerson
    from server.domain.registry import id_hash, name_hash, psn_no_for

    pii = app[keys.pii_key]
    id_number = make_resident_id(region=region[:4] + "02", birth=birth, seq=seq or f"{next(_codes) % 1000:03d}")
    hid = id_hash(pii, "resident_id", id_number)
    person = await InsuredPerson.create(
        psn_no=psn_no_for(hid),
        name_enc=pii.encrypt(name, purpose="name"),
        name_hash=name_hash(pii, name),
        id_type="resident_id",
        id_number_enc=pii.encrypt(id_number, purpose="id_number"),
        id_hash=hid,
        insurance_type=insurance_type,
        region_code=region,
        has_personal_account=insurance_type == "employee",
        voucher_activated=True,
        status=status,
    )
    person.id_number = id_number  # type: ignore[attr-defined]  # plain value for requests
    person.name = name  # type: ignore[attr-defined]
    if insurance_type == "employee":
        await ledger.credit(person.id, balance_fen, kind="import", note="test")
    return person


async def verified_user(client: TestClient, user: str, person: Any) -> dict[str, Any]:
    """Log ``user`` in and pass real-name verification as ``person`` the way the
    mini-program does (``POST /api/v1/me/realname`` with a demo face token); the login
    tokens (``bearer(tokens)`` for the headers, ``tokens["user"]["id"]``).

    ``person``: a ``(name, id_type, id_number)`` tuple (``tests.family.helpers.ALICE``…)
    or an ``add_person`` result. The person must be in the registry with an activated
    voucher; each call spends one unit of the identity-guessing budget.
    """
    if isinstance(person, tuple):
        name, id_type, id_number = person
    else:
        name, id_type, id_number = person.name, person.id_type, person.id_number
    tokens = await login(client, user)
    resp = await client.post(
        "/api/v1/me/realname",
        json={
            "name": name,
            "id_type": id_type,
            "id_number": id_number,
            "face_token": f"ok-face-{next(_codes)}",  # a new demo check: each is redeemed once
        },
        headers=bearer(tokens),
    )
    assert resp.status == 200, await resp.text()
    return tokens


async def add_binding(binder_user_id: int, member: Any, relationship: str = "parent") -> Any:
    """An active 亲情账户 binding row, written directly — not through the binding flow.

    Why not the real flow: the money and push tests need "this binder holds this member"
    as a fixture, not the journey (tests/family covers that through HTTP, every step and
    refusal). The flow would also make them depend on the binding rules: an
    ``add_person`` child has no registered guardian, so their binding would wait for a
    reviewer; every binding costs five requests and a unit of the identity-guessing
    budget; and the binding has no application behind it here (``application_id`` null),
    which the binding views tolerate.
    """
    from datetime import datetime, timezone

    from server.domain.models import Binding

    return await Binding.create(
        binder_id=binder_user_id, member_id=member.id, relationship=relationship, bound_at=datetime.now(timezone.utc)
    )


async def add_institution(app: _web.Application, code: str = "H10001", name: str = "测试人民医院") -> str:
    """A 定点医药机构; returns its secret."""
    from server import keys
    from server.domain.institutions import add_institution as _add

    return await _add(code=code, name=name, region_code="420100", pii=app[keys.pii_key])


def signed_headers(
    code: str, secret: str, body: bytes, *, timestamp: int | None = None, nonce: str | None = None
) -> dict[str, str]:
    """API.md institution signing: HMAC-SHA256 over ``timestamp\\nnonce\\nbody``."""
    from institution_api.signing import sign

    ts = str(int(_time.time()) if timestamp is None else timestamp)
    nonce = nonce or _secrets.token_hex(12)
    return {
        "Content-Type": "application/json",
        "X-Institution-Code": code,
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": sign(secret, ts, nonce, body),
    }


async def post_signed(
    client: TestClient, path: str, payload: dict[str, Any], *, code: str, secret: str, **kw: Any
) -> Any:
    body = _json.dumps(payload, ensure_ascii=False).encode()
    return await client.post(
        "/api/v1/institution" + path, data=body, headers=signed_headers(code, secret, body, **kw)
    )


async def authorize(
    client: TestClient, tokens: dict[str, Any], member: Any, relationship: str = "parent", **extra: Any
) -> Any:
    """POST /mutual-aid/authorizations having accepted the current 告知书."""
    notice = await (await client.get("/api/v1/mutual-aid/notice", headers=bearer(tokens))).json()
    body = {
        "name": member.name,
        "id_type": "resident_id",
        "id_number": member.id_number,
        "relationship": relationship,
        "notice_version": notice["version"],
        "notice_sha256": notice["sha256"],
        **extra,
    }
    return await client.post("/api/v1/mutual-aid/authorizations", json=body, headers=bearer(tokens))


def production_env() -> dict[str, str]:
    """An environment a production server starts with: real-looking secrets everywhere
    (the settings tests then take one away, or add a demo value, and expect a refusal)."""
    return {
        "APP_ENV": "production",
        "DATABASE_URL": "postgres://u:p@db/qq",
        "REDIS_URL": "redis://r:6379/0",
        "WECHAT_API_BASE": "https://api.weixin.qq.com",
        "WECHAT_MP_APPID": "wx0123456789abcdef",
        "WECHAT_OA_APPID": "wxfedcba9876543210",
        "WECHAT_MP_SECRET": "s" * 32,
        "WECHAT_OA_SECRET": "t" * 32,
        "WECHAT_OA_TOKEN": "tok" * 8,
        "WECHAT_OA_ENCODING_AES_KEY": "A" * 43,
        "JWT_KEYS": "k1:" + "j" * 48,
        "PII_KEYS": "p1:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        "PII_HASH_KEY": "h" * 40,
        "DEMO_DATA": "false",
    }
