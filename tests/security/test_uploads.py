"""Uploads and downloads under attack: polyglots (a PNG with a ZIP after it, a JPEG with
HTML after it, a PDF with JavaScript, HTML or SVG named .png), hostile file names on
every upload, hostile ids on every download, and what the files are served with."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import Material
from server.settings import Settings
from tests.factories import bearer, verified_user
from tests.family.helpers import ALICE, MOTHER, PDF, create, load_registry, png, upload


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("evil.html", "<script>alert(document.cookie)</script>")
    return buf.getvalue()


JPEG = (  # the smallest JPEG structure the stripper accepts: SOI, a DQT-less frame, EOI
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    b"\xff\xdb\x00\x43\x00" + bytes(range(64))
    + b"\xff\xc0\x00\x0b\x08\x00\x01\x00\x01\x01\x01\x11\x00"
    + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00\x00"
    + b"\xff\xd9"
)
PDF_JS = PDF.replace(
    b"1 0 obj<</Type/Catalog/Pages 2 0 R>>",
    b"1 0 obj<</Type/Catalog/Pages 2 0 R/OpenAction<</S/JavaScript/JS(app.alert(1))>>>>",
)


@pytest.fixture
async def draft(client: TestClient, app: web.Application) -> tuple[dict[str, str], str]:
    await load_registry(app)
    alice = bearer(await verified_user(client, "alice", ALICE))
    return alice, (await create(client, alice, MOTHER, "parent"))["id"]


async def _served(client: TestClient, h: dict[str, str], app_id: str, material: dict[str, Any]) -> Any:
    resp = await client.get(f"/api/v1/family/applications/{app_id}/materials/{material['id']}", headers=h)
    assert resp.status == 200
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"].startswith("sandbox")
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert await resp.read()  # the whole body, as a client would: the server's stream ends
    return resp


@pytest.mark.parametrize(
    "data, content_type",
    [
        (b"<html><script>alert(1)</script></html>", "image/png"),
        (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "image/png"),
        (b"<svg onload=alert(1)>", "image/svg+xml"),
        (b"GIF89a\x01\x00\x01\x00<script>", "image/gif"),
        (_zip(), "image/png"),
        (b"PK\x03\x04" + png(), "image/png"),  # a ZIP in front of a PNG
        (b"MZ\x90\x00", "application/pdf"),
        (b" " + png(), "image/png"),  # the magic number must be at the start
    ],
    ids=["html-as-png", "svg-as-png", "svg", "gif-with-script", "zip-as-png", "zip-then-png", "exe-as-pdf", "padded-png"],
)
async def test_what_is_not_an_image_or_pdf_is_refused(
    client: TestClient, draft: tuple[dict[str, str], str], data: bytes, content_type: str
) -> None:
    h, app_id = draft
    resp = await upload(client, h, app_id, data=data, filename="x.png", content_type=content_type)
    assert resp.status == 415, await resp.text()
    assert await Material.all().count() == 0


async def test_polyglot_tails_are_cut_off(client: TestClient, draft: tuple[dict[str, str], str]) -> None:
    """A PNG or JPEG with a ZIP or HTML after its end: kept as the image only."""
    h, app_id = draft
    for data, ctype in ((png() + _zip(), "image/png"), (JPEG + b"<html><script>alert(1)</script>", "image/jpeg")):
        resp = await upload(client, h, app_id, data=data, filename="x.png", content_type=ctype)
        if resp.status != 201:  # refusing the polyglot outright is as good
            assert resp.status in (415, 422), await resp.text()
            continue
        material = await resp.json()
        served = await (await _served(client, h, app_id, material)).read()
        assert b"PK\x03\x04" not in served and b"<script>" not in served
        assert served.endswith(b"IEND\xaeB`\x82") or served.endswith(b"\xff\xd9")


async def test_a_pdf_with_javascript_is_only_ever_a_download(
    client: TestClient, draft: tuple[dict[str, str], str]
) -> None:
    h, app_id = draft
    resp = await upload(client, h, app_id, data=PDF_JS, filename="x.pdf", content_type="application/pdf")
    assert resp.status == 201, await resp.text()
    served = await _served(client, h, app_id, await resp.json())
    assert served.headers["Content-Type"] == "application/pdf"
    assert served.headers["Content-Disposition"].startswith("attachment")
    # and an image is never served as anything but itself
    resp = await upload(client, h, app_id, data=png(), filename="y.html", content_type="text/html")
    assert resp.status == 201, await resp.text()
    img = await _served(client, h, app_id, await resp.json())
    assert img.headers["Content-Type"] == "image/png"


HOSTILE_NAMES = [
    "../../../../etc/passwd",
    "/etc/passwd",
    "..\\..\\..\\windows\\win.ini",
    "C:\\Windows\\win.ini",
    "page.png\x00.html",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "….png",
    "a" * 5000 + ".png",
    "<script>alert(1)</script>.png",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
async def test_hostile_file_names_are_never_paths(
    client: TestClient, draft: tuple[dict[str, str], str], settings: Settings, name: str
) -> None:
    """The name a client gives is never used: the file is stored under a key the server
    makes, the name is neither stored nor echoed, nothing is written outside the store."""
    h, app_id = draft
    boundary = "matrixboundary0123"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nhousehold_register\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
        "Content-Type: image/png\r\n\r\n"
    ).encode() + png() + f"\r\n--{boundary}--\r\n".encode()
    resp = await client.post(
        f"/api/v1/family/applications/{app_id}/materials",
        data=body,
        headers={**h, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    text = await resp.text()
    assert resp.status in (201, 400, 422), text
    for part in ("passwd", "win.ini", "script", "....", "aaaa"):
        assert part not in text
    data_dir = Path(settings.server.data_dir)
    for path in data_dir.parent.rglob("*"):
        assert path.name not in ("passwd", "win.ini") and not path.name.endswith(".html"), path
    if resp.status == 201:
        m = await Material.get(id=(await resp.json())["id"])
        assert ".." not in m.storage_key and "passwd" not in m.storage_key and "\\" not in m.storage_key


async def test_downloads_refuse_hostile_ids(client: TestClient, app: web.Application, draft: tuple[dict[str, str], str]) -> None:
    """Every download path, with ids that try to leave the store — even with a valid
    signature over them (a link the server made for a hostile id): never 200, never 500."""
    h, app_id = draft
    links = app[keys.links_key]
    uid = int((await (await client.get("/api/v1/me", headers=h)).json())["id"])
    hostile = ["..", "../../etc/passwd", "%2e%2e", "²", "1e3", "-1", "0x10", "9" * 40, "00000000-0000-0000-0000-000000000000"]
    for object_id in hostile:
        for kind in ("material", "signature"):
            link = links.sign(kind, object_id, uid).url
            resp = await client.get(link)
            assert resp.status in (400, 403, 404), (kind, object_id, resp.status, await resp.text())
        for path in (
            f"/api/v1/family/applications/{app_id}/materials/{object_id}",
            f"/api/v1/family/applications/{object_id}/materials/{object_id}",
            f"/api/v1/review/applications/{app_id}/materials/{object_id}",
        ):
            resp = await client.get(path, headers=h if "/review/" not in path else {"Authorization": "Bearer demo-reviewer-token"})
            assert resp.status in (400, 404), (path, resp.status)
    resp = await client.get("/review/static/../../../../etc/passwd")
    assert resp.status in (403, 404)
    resp = await client.get("/review/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd")
    assert resp.status in (403, 404)
