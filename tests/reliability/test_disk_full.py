"""The uploads disk full (issue #15, "Faults injected").

The uploads directory is a real 1 MiB tmpfs (``mount -t tmpfs -o size=1m``, as root; the
test is skipped with a message where mounting is not allowed): a 2 MB scan cannot fit.

Pass rule:
* the upload is answered 507 ``STORAGE_FULL`` with a Chinese message and ``Retry-After``
  — not a 500;
* nothing is left behind: no file (not even the temporary one) on the disk, no material
  row, and the application is unchanged;
* with the space back (the tmpfs is empty again), the next upload is stored (201).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.domain.models import Material
from tests.factories import bearer, error_of, verified_user
from tests.family.helpers import ALICE, MOTHER, create, load_registry, png, upload


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "uploads"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root: the disk-full test runs as root (CI does)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_uploads_disk_full_is_a_clear_error_and_leaves_nothing(
    tiny_disk: Path, make_client: Callable[..., Any]
) -> None:
    client = await make_client(**{"family.upload_dir": str(tiny_disk)})
    await load_registry(client.server.app)
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")

    # a 2 MB scan (a PDF whose page image is an incompressible stream): twice the disk
    noise = os.urandom(2 * 1024 * 1024)
    big = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
        + f"3 0 obj<</Length {len(noise)}>>stream\n".encode() + noise + b"\nendstream\nendobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    form = aiohttp.FormData()
    form.add_field("kind", "household_register")
    form.add_field("file", io.BytesIO(big), filename="scan.pdf", content_type="application/pdf")
    resp = await client.post(
        f"/api/v1/family/applications/{application['id']}/materials", data=form, headers=h
    )
    assert resp.status == 507, await resp.text()
    error = await error_of(resp)
    assert error["code"] == "STORAGE_FULL"
    assert "存储空间不足" in error["message"]
    assert int(resp.headers["Retry-After"]) > 0
    assert _files(tiny_disk) == []
    assert await Material.all().count() == 0
    after = await client.get(f"/api/v1/family/applications/{application['id']}", headers=h)
    assert (await after.json())["materials"] == []

    resp = await upload(client, h, application["id"], data=png(8, 8))
    assert resp.status == 201, await resp.text()
    assert len(_files(tiny_disk)) == 1
