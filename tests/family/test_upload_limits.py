"""Issue #17 finding 6 (disk fill): one draft took 25 × 8 MB uploads in 1.5 s, a signature
image could be re-signed without end. Caps per application and per kind, single-sheet
kinds replaced, a per-user storage budget and an upload rate (``[family]`` in config)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from server.domain.models import CommitmentSignature, Material
from tests.factories import bearer, error_of, verified_user
from tests.family.helpers import (
    ALICE,
    FATHER,
    MOTHER,
    PDF,
    create,
    load_registry,
    png,
    sign,
    upload,
)
from tests.family.test_materials import stored_files

MULTI_PAGE = ("household_register", "passport", "residence_permit", "travel_permit")


def page(n: int) -> bytes:
    """A distinct small PNG per ``n`` (so every upload is a new file)."""
    return png(n % 50 + 1, 1)


async def test_one_draft_takes_no_more_than_its_cap(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    draft = await create(client, h, MOTHER, "parent")
    statuses = []
    for n in range(25):
        resp = await upload(client, h, draft["id"], MULTI_PAGE[n % 4], data=page(n))
        statuses.append(resp.status)
        if resp.status != 201:
            error = await error_of(resp)
            assert error["code"] == "MATERIAL_LIMIT_REACHED" and "12" in error["message"]
    assert statuses == [201] * 12 + [409] * 13
    assert await Material.all().count() == 12
    assert len(stored_files(app)) == 12
    # per kind: at most 4 户口本 pages on another application
    other = await create(client, h, FATHER, "parent")
    codes = [(await upload(client, h, other["id"], "household_register", data=page(n))).status
             for n in range(5)]
    assert codes == [201] * 4 + [409]
    last = await upload(client, h, other["id"], "household_register", data=page(9))
    assert (await error_of(last))["fields"] == {"kind": "MATERIAL_LIMIT_REACHED"}
    # removing one makes room again
    kept = await Material.filter(application_id=other["id"]).first()
    assert kept is not None
    resp = await client.delete(
        f"/api/v1/family/applications/{other['id']}/materials/{kept.id}", headers=h
    )
    assert resp.status == 204
    assert (await upload(client, h, other["id"], "household_register", data=page(7))).status == 201


async def test_a_single_sheet_kind_is_replaced(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    draft = await create(client, h, MOTHER, "parent")
    for n in range(6):
        resp = await upload(client, h, draft["id"], "id_card_front", data=page(n))
        assert resp.status == 201, await resp.text()
    rows = await Material.filter(application_id=draft["id"])
    assert [m.kind for m in rows] == ["id_card_front"]
    assert rows[0].sha256 == hashlib.sha256(page(5)).hexdigest()  # the last one
    assert len(stored_files(app)) == 1
    got = await client.get(
        f"/api/v1/family/applications/{draft['id']}/materials/{rows[0].id}", headers=h
    )
    assert got.status == 200

    # the 承诺书 signature image: signing again replaces it (the records stay)
    import base64

    for n in range(3):
        resp = await sign(client, h, draft["id"], signature_image=base64.b64encode(page(n)).decode())
        assert resp.status == 201, await resp.text()
    sigs = await CommitmentSignature.filter(application_id=draft["id"]).order_by("id")
    assert len(sigs) == 3
    assert [s.signature_image_key is not None for s in sigs] == [False, False, True]
    assert len(stored_files(app)) == 2  # one material, one signature image


async def test_signing_again_is_capped(make_client: Callable[..., Any]) -> None:
    client: TestClient = await make_client(**{"family.max_signatures_per_application": 3})
    await load_registry(client.server.app)  # type: ignore[arg-type]
    h = bearer(await verified_user(client, "alice", ALICE))
    draft = await create(client, h, MOTHER, "parent")
    codes = [(await sign(client, h, draft["id"])).status for _ in range(4)]
    assert codes == [201, 201, 201, 409]
    assert await CommitmentSignature.all().count() == 3


async def test_storage_budget_refuses_and_keeps_nothing(make_client: Callable[..., Any]) -> None:
    size = len(PDF)  # the budget counts the uploaded bytes (the material's "size")
    # room for two and a half files: the third is cut off while it streams
    client: TestClient = await make_client(**{"family.upload_budget_bytes": size * 5 // 2})
    app = client.server.app
    await load_registry(app)  # type: ignore[arg-type]
    h = bearer(await verified_user(client, "alice", ALICE))
    first = await create(client, h, MOTHER, "parent")
    second = await create(client, h, FATHER, "parent")  # the budget is the user's, not per draft
    resp = await upload(client, h, first["id"], data=PDF)
    assert resp.status == 201 and (await resp.json())["size"] == size
    assert (await upload(client, h, second["id"], data=PDF)).status == 201
    files = stored_files(app)  # type: ignore[arg-type]
    resp = await upload(client, h, first["id"], data=PDF)
    assert resp.status == 409
    error = await error_of(resp)
    assert error["code"] == "UPLOAD_QUOTA_EXCEEDED" and "MB" in error["message"]
    assert stored_files(app) == files  # type: ignore[arg-type]  # nothing partial left
    assert await Material.all().count() == 2
    # a single-sheet kind replacing one of the same size still fits
    assert (await upload(client, h, first["id"], "birth_certificate", data=PDF)).status == 409
    gone = await Material.filter(application_id=first["id"]).first()
    assert gone is not None
    await client.delete(f"/api/v1/family/applications/{first['id']}/materials/{gone.id}", headers=h)
    for _ in range(2):
        resp = await upload(client, h, first["id"], "birth_certificate", data=PDF)
        assert resp.status == 201, await resp.text()
    assert len(stored_files(app)) == 2  # type: ignore[arg-type]


async def test_upload_rate(make_client: Callable[..., Any]) -> None:
    client: TestClient = await make_client(**{"family.uploads_per_hour": 3})
    app = client.server.app
    await load_registry(app)  # type: ignore[arg-type]
    h = bearer(await verified_user(client, "alice", ALICE))
    draft = await create(client, h, MOTHER, "parent")
    for n in range(3):
        assert (await upload(client, h, draft["id"], data=page(n))).status == 201
    resp = await upload(client, h, draft["id"], data=page(4))
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert (await error_of(resp))["code"] == "RATE_LIMITED"
    assert len(stored_files(app)) == 3  # type: ignore[arg-type]
