"""Materials: streamed, sniffed (JPEG/PNG/PDF only), size-capped, hashed, metadata stripped."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.models import CommitmentSignature, Material
from tests.factories import bearer, error_of, verified_user
from tests.family.helpers import (
    ALICE,
    MOTHER,
    PDF,
    create,
    load_registry,
    png,
    prepare,
    sign,
    submit,
    upload,
)


def stored_files(app: web.Application) -> list[Path]:
    root = app[keys.storage_key].root
    return [p for p in Path(root).rglob("*") if p.is_file()] if Path(root).exists() else []


async def test_type_is_sniffed_from_content(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")
    # a text file calling itself a PNG
    resp = await upload(
        client, h, application["id"], data=b"hello, not an image at all", filename="x.png"
    )
    assert resp.status == 415 and (await error_of(resp))["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert stored_files(app) == [] and await Material.all().count() == 0
    # a PDF sent as image/png is stored as what it is
    resp = await upload(
        client, h, application["id"], data=PDF, filename="x.png", content_type="image/png"
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["content_type"] == "application/pdf"


async def test_size_cap(make_client: Callable[..., Any]) -> None:
    client: TestClient = await make_client(**{"family.max_material_bytes": 4096})
    app = client.server.app
    await load_registry(app)  # type: ignore[arg-type]
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")
    big = png(80, 80, text=b"x" * 6000)
    resp = await upload(client, h, application["id"], data=big)
    assert resp.status == 413 and (await error_of(resp))["code"] == "MATERIAL_TOO_LARGE"
    assert stored_files(app) == [] and await Material.all().count() == 0  # type: ignore[arg-type]
    assert (await upload(client, h, application["id"], data=png())).status == 201


async def test_metadata_is_not_served_back_and_hash_is_of_the_upload(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")
    image = png(3, 3, text=b"GPS 30.59N 114.30E owner=zhangwei")
    resp = await upload(client, h, application["id"], data=image)
    material = await resp.json()
    assert material["sha256"] == hashlib.sha256(image).hexdigest()
    got = await client.get(
        f"/api/v1/family/applications/{application['id']}/materials/{material['id']}", headers=h
    )
    body = await got.read()
    assert got.status == 200 and body.startswith(b"\x89PNG") and b"GPS" not in body
    assert got.headers["Cache-Control"].startswith("private")


async def test_kind_is_required_and_checked(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")
    resp = await upload(client, h, application["id"], kind=None)
    assert resp.status == 422 and (await error_of(resp))["fields"] == {"kind": "REQUIRED"}
    resp = await upload(client, h, application["id"], kind="selfie")
    assert resp.status == 422 and (await error_of(resp))["fields"] == {"kind": "INVALID_CHOICE"}
    assert stored_files(app) == [] and await Material.all().count() == 0
    resp = await client.post(
        f"/api/v1/family/applications/{application['id']}/materials", json={}, headers=h
    )
    assert resp.status == 415


async def test_no_uploads_once_submitted(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    app_id = await prepare(client, h, MOTHER, "parent")
    assert (await submit(client, h, app_id)).status == 200
    resp = await upload(client, h, app_id)
    assert resp.status == 409 and (await error_of(resp))["code"] == "APPLICATION_STATE_CONFLICT"
    resp = await sign(client, h, app_id)
    assert resp.status == 409 and (await error_of(resp))["code"] == "APPLICATION_STATE_CONFLICT"
    assert len(stored_files(app)) == 1


async def test_signature_image_and_immutable_record(
    client: TestClient, app: web.Application
) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")
    image = base64.b64encode(png(4, 2)).decode()
    resp = await sign(
        client, h, application["id"], signature_image="data:image/png;base64," + image
    )
    assert resp.status == 201 and (await resp.json())["signature_image"] is True
    resp = await sign(client, h, application["id"], signature_image="%%%not-base64")
    assert resp.status == 422
    resp = await sign(
        client, h, application["id"], signature_image=base64.b64encode(b"GIF89a....").decode()
    )
    assert resp.status == 415
    resp = await sign(client, h, application["id"])  # signing again adds a record, changes none
    assert resp.status == 201
    sigs = await CommitmentSignature.filter(application_id=application["id"]).order_by("id")
    assert [s.signature_image_key is not None for s in sigs] == [True, False]
    resp = await client.post(
        f"/api/v1/family/applications/{application['id']}/commitment",
        json={"version": sigs[0].version, "sha256": "0" * 64},
        headers=h,
    )
    assert resp.status == 422 and (await error_of(resp))["code"] == "COMMITMENT_MISMATCH"
