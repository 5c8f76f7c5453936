"""Factories for the 亲情账户 tests: each step done as the mini-program does it, over HTTP."""

from __future__ import annotations

import itertools
import struct
import zlib
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.bulk.registry_import import import_csv
from server.demo import DEMO_REGISTRY

_face_checks = itertools.count(1)

# Demo registry people (config/demo_registry.csv): (name, id_type, id_number).
ALICE = ("张伟", "resident_id", "420102199003071232")
BOB = ("周敏", "resident_id", "420102199511112061")
CAROL = ("吴婷", "resident_id", "42010619850420222X")
DAVE = ("陈静", "resident_id", "510104196002140882")
MOTHER = ("李秀英", "resident_id", "420102195806122242")  # 1958, activated
FATHER = ("张建国", "resident_id", "420102195601011311")
WIFE = ("王芳", "resident_id", "420103199208152622")
SON = ("张小明", "resident_id", "420102201805201131")  # born 2018: under 16
DAUGHTER = ("张小红", "resident_id", "420102201609011250")  # born 2016: under 16
BABY = ("张小刚", "resident_id", "420102202003151376")  # born 2020: under 16
GRANDMA = ("刘桂兰", "resident_id", "420106194803030466")  # voucher not activated
SUSPENDED = ("孙磊", "resident_id", "420111198801301559")  # insurance suspended
HK = ("黄家明", "hk_mo_travel_permit", "H12345678")  # non-mainland document: review
NEWBORN = ("张小宝", "birth_certificate", "P420012345")


def png(width: int = 1, height: int = 1, text: bytes = b"") -> bytes:
    """A small valid PNG (optionally with a tEXt metadata chunk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    meta = chunk(b"tEXt", b"Comment\x00" + text) if text else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + meta
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


async def load_registry(app: web.Application) -> None:
    await import_csv(DEMO_REGISTRY, pii=app[keys.pii_key])


async def create(
    client: TestClient,
    h: dict[str, str],
    person: tuple[str, str, str],
    relationship: str,
    **extra: Any,
) -> dict[str, Any]:
    name, id_type, id_number = person
    body = {
        "name": name,
        "id_type": id_type,
        "id_number": id_number,
        "relationship": relationship,
        **extra,
    }
    resp = await client.post("/api/v1/family/applications", json=body, headers=h)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def upload(
    client: TestClient,
    h: dict[str, str],
    app_id: str,
    kind: str | None = "household_register",
    data: bytes | None = None,
    filename: str = "page.png",
    content_type: str = "image/png",
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    if kind is not None:
        form.add_field("kind", kind)
    form.add_field(
        "file", png() if data is None else data, filename=filename, content_type=content_type
    )
    return await client.post(
        f"/api/v1/family/applications/{app_id}/materials", data=form, headers=h
    )


async def sign(
    client: TestClient, h: dict[str, str], app_id: str, **extra: Any
) -> aiohttp.ClientResponse:
    current = await (await client.get("/api/v1/commitments/current", headers=h)).json()
    body = {"version": current["version"], "sha256": current["sha256"], **extra}
    return await client.post(
        f"/api/v1/family/applications/{app_id}/commitment", json=body, headers=h
    )


async def submit(
    client: TestClient, h: dict[str, str], app_id: str, face: str | None = "ok-member"
) -> aiohttp.ClientResponse:
    """Submit with the member's face check: by default a new passed demo check each time
    (a verify result is redeemed once, like WeChat's), ``None`` for none."""
    if face == "ok-member":
        face = f"ok-member-{next(_face_checks)}"
    body = {} if face is None else {"member_face_token": face}
    return await client.post(f"/api/v1/family/applications/{app_id}/submit", json=body, headers=h)


async def prepare(
    client: TestClient,
    h: dict[str, str],
    person: tuple[str, str, str],
    relationship: str,
    kinds: tuple[str, ...] = ("household_register",),
) -> str:
    """Create, upload ``kinds``, sign: an application ready to submit; its id."""
    app = await create(client, h, person, relationship)
    for kind in kinds:
        resp = await upload(client, h, app["id"], kind)
        assert resp.status == 201, await resp.text()
    resp = await sign(client, h, app["id"])
    assert resp.status == 201, await resp.text()
    return str(app["id"])


async def bind(
    client: TestClient,
    h: dict[str, str],
    person: tuple[str, str, str],
    relationship: str,
    kinds: tuple[str, ...] = ("household_register",),
) -> dict[str, Any]:
    """A whole successful binding; the active application."""
    app_id = await prepare(client, h, person, relationship, kinds)
    resp = await submit(client, h, app_id)
    assert resp.status == 200, await resp.text()
    out = await resp.json()
    assert out["state"] == "active", out
    return out  # type: ignore[no-any-return]
