"""Uploaded files encrypted at rest (AES-GCM, a data key per file wrapped by the PII key
set, rotation like the PII fields), streamed in and out in chunks, metadata stripped on
the way in — PDF too (issue #12; PIPL art. 51)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import keys
from server.domain.pii import PiiCipher
from server.gateways.sanitize import stripper_for
from server.gateways.sealed import CHUNK, SealedError, SealedReader, SealedWriter, rewrap
from server.gateways.storage import CorruptFile, LocalStorage
from tests.factories import bearer, error_of, verified_user
from tests.family.helpers import ALICE, MOTHER, create, load_registry, png, upload
from tests.storage import samples

ROOT = Path(__file__).resolve().parents[2]
K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 32).decode()
OLD = PiiCipher({"p1": K1}, "p1", "h")
BOTH = PiiCipher({"p1": K1, "p2": K2}, "p2", "h")
NEW_ONLY = PiiCipher({"p2": K2}, "p2", "h")

PDF_WITH_METADATA = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R/Metadata 3 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"3 0 obj<</Type/Metadata/Subtype/XML/Length 90>>stream\n"
    b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><dc:creator>Zhang Wei 420102199003071232</dc:creator></x:xmpmeta>\n"
    b"endstream endobj\n"
    b"4 0 obj<</Author (\\(Zhang\\) Wei) /Creator <FEFF5F204F1F> /Producer (CamScanner on iPhone of Zhang)"
    b" /CreationDate (D:20261201083000+08'00')>>endobj\n"
    b"trailer<</Root 1 0 R/Info 4 0 R>>\n%%EOF\n"
)


async def pieces(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def sealed_bytes(data: bytes, keys: PiiCipher = OLD) -> bytes:
    out = io.BytesIO()
    w = SealedWriter(out, keys)
    for i in range(0, len(data), 10_000):
        w.write(data[i : i + 10_000])
    w.close()
    return out.getvalue()


def read_all(raw: bytes, keys: PiiCipher = OLD) -> bytes:
    return b"".join(SealedReader(io.BytesIO(raw), keys).chunks())


# -- the sealed format ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_round_trip_in_chunks(size: int) -> None:
    data = os.urandom(size)
    raw = sealed_bytes(data)
    assert raw.startswith(b"QQE1") and (size < 32 or data[:32] not in raw)
    assert raw[6:9] == b"p1$"  # the key id of the wrapping key is stored
    reader = SealedReader(io.BytesIO(raw), OLD)
    chunks = list(reader.chunks())
    assert b"".join(chunks) == data and all(len(c) <= CHUNK for c in chunks)


def test_tampering_truncation_and_reordering_fail() -> None:
    data = os.urandom(3 * CHUNK)
    raw = bytearray(sealed_bytes(data))
    flipped = bytearray(raw)
    flipped[-20] ^= 1
    with pytest.raises(SealedError, match="authentication"):
        read_all(bytes(flipped))
    # cut after the second record: every remaining record authenticates, the end does not
    reader = SealedReader(io.BytesIO(bytes(raw)), OLD)
    pos = reader.body_offset
    for _ in range(2):
        n = int.from_bytes(raw[pos : pos + 4], "big")
        pos += 4 + n
    with pytest.raises(SealedError, match="final record is missing"):
        read_all(bytes(raw[:pos]))
    # the first two records swapped
    first_len = int.from_bytes(raw[reader.body_offset : reader.body_offset + 4], "big")
    a = raw[reader.body_offset : reader.body_offset + 4 + first_len]
    b = raw[reader.body_offset + 4 + first_len : reader.body_offset + 8 + 2 * first_len]
    swapped = raw[: reader.body_offset] + b + a + raw[reader.body_offset + 8 + 2 * first_len :]
    with pytest.raises(SealedError):
        read_all(bytes(swapped))
    with pytest.raises(SealedError, match="data after the final record"):
        read_all(bytes(raw) + b"x")
    with pytest.raises(SealedError, match="cannot be unwrapped"):
        read_all(bytes(raw), NEW_ONLY)  # the wrapping key is not configured


def test_rotation_rewraps_only_the_header(tmp_path: Path) -> None:
    data = os.urandom(CHUNK + 10)
    path = tmp_path / "f"
    path.write_bytes(sealed_bytes(data, OLD))
    body_before = path.read_bytes()[-CHUNK:]
    assert read_all(path.read_bytes(), BOTH) == data  # old files stay readable under p2
    assert rewrap(path, BOTH) is True
    assert path.read_bytes()[6:9] == b"p2$" and path.read_bytes()[-CHUNK:] == body_before
    assert rewrap(path, BOTH) is False
    assert read_all(path.read_bytes(), NEW_ONLY) == data  # p1 may go now


# -- streaming metadata stripping ------------------------------------------------------------


@pytest.mark.parametrize("step", [1, 7, 64, 65536])
def test_pdf_metadata_is_blanked_in_place_in_any_pieces(step: int) -> None:
    s = stripper_for("application/pdf")
    out = b"".join(s.feed(PDF_WITH_METADATA[i : i + step]) for i in range(0, len(PDF_WITH_METADATA), step))
    out += s.close()
    assert len(out) == len(PDF_WITH_METADATA)  # byte offsets (xref) unchanged
    for secret in (b"Zhang", b"420102199003071232", b"CamScanner", b"5F20", b"20261201", b"xmpmeta"):
        assert secret not in out, secret
    assert b"/Author (" in out and b"/Creator <" in out and b"trailer<</Root 1 0 R/Info 4 0 R>>" in out


def test_jpeg_and_png_strip_alike_in_any_pieces() -> None:
    for data, ct in ((samples.jpeg_with_metadata(orientation=6), "image/jpeg"), (samples.png_with_metadata(), "image/png")):
        whole = stripper_for(ct)
        expected = whole.feed(data) + whole.close()
        for step in (1, 2, 3, 5, 11):
            s = stripper_for(ct)
            got = b"".join(s.feed(data[i : i + step]) for i in range(0, len(data), step)) + s.close()
            assert got == expected and b"SECRET" not in got


# -- storage: sealed on disk, streamed both ways ---------------------------------------------


async def test_files_on_disk_are_sealed_and_served_stripped(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")
    uploads = {
        "png": png(4, 4, text=b"GPS 30.59N owner 420102199003071232"),
        "jpeg": samples.jpeg_with_metadata(),
        "pdf": PDF_WITH_METADATA,
    }
    root = Path(app[keys.storage_key].root)
    for name, data in uploads.items():
        resp = await upload(client, h, application["id"], data=data, filename=f"x.{name}")
        assert resp.status == 201, await resp.text()
        material = await resp.json()
        assert material["sha256"] == hashlib.sha256(data).hexdigest()  # of what was uploaded
        got = await client.get(f"/api/v1/family/applications/{application['id']}/materials/{material['id']}", headers=h)
        assert got.status == 200 and got.headers["X-Content-Type-Options"] == "nosniff"
        body = await got.read()
        assert b"SECRET" not in body and b"420102199003071232" not in body and b"Zhang" not in body
    files = files_under(root)
    assert len(files) == 3
    for f in files:
        raw = f.read_bytes()
        assert raw.startswith(b"QQE1") and f.stat().st_mode & 0o777 == 0o600
        for clear in (b"IHDR", b"JFIF", b"%PDF", b"Zhang", b"420102199003071232"):
            assert clear not in raw


async def test_a_broken_pdf_string_is_refused(client: TestClient, app: web.Application) -> None:
    await load_registry(app)
    h = bearer(await verified_user(client, "alice", ALICE))
    application = await create(client, h, MOTHER, "parent")
    broken = b"%PDF-1.4\n1 0 obj<</Title (never closed " + b"x" * (70 * 1024)
    resp = await upload(client, h, application["id"], data=broken, filename="x.pdf")
    assert resp.status == 422 and (await error_of(resp))["code"] == "MATERIAL_CORRUPT"
    assert files_under(Path(app[keys.storage_key].root)) == []


async def test_neither_upload_nor_download_holds_the_whole_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, keys=OLD)
    big = b"%PDF-1.4\n" + os.urandom(6 * 1024 * 1024) + b"\n%%EOF\n"
    digest = hashlib.sha256(big).hexdigest()
    tracemalloc.start()
    try:
        obj = await storage.save_stream(pieces(big), max_bytes=8 * 1024 * 1024)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        content_type, chunks = await storage.open_stream(obj.key)
        h = hashlib.sha256()
        async for chunk in chunks:
            h.update(chunk)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert obj.sha256 == digest and content_type == "application/pdf"
    assert h.hexdigest() == hashlib.sha256(big).hexdigest()  # nothing to strip in random bytes
    # the 6 MiB file (plus the test's own copy, allocated before tracing) never whole again
    assert upload_peak < 1.5 * 1024 * 1024, upload_peak
    assert download_peak < 1 * 1024 * 1024, download_peak


async def test_reseal_seals_old_plain_files_and_rotates_keys(tmp_path: Path) -> None:
    old = LocalStorage(tmp_path, keys=OLD)
    obj = await old.save_stream(pieces(samples.PNG), max_bytes=4096)
    # a file from before encryption: plain, with its metadata
    legacy_key = "ab/cd/abcd" + "0" * 28
    legacy = old.path_of(legacy_key)
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(samples.jpeg_with_metadata())
    data, content_type = await old.read_clean(legacy_key)  # readable, stripped on the way out
    assert content_type == "image/jpeg" and b"SECRET" not in data

    rotated = LocalStorage(tmp_path, keys=BOTH)
    assert sorted(rotated.keys_under()) == sorted([obj.key, legacy_key])
    assert await rotated.reseal(legacy_key) == "sealed"
    assert await rotated.reseal(obj.key) == "rewrapped"
    assert await rotated.reseal(obj.key) == "current"
    assert legacy.read_bytes()[:9] == b"QQE1" + legacy.read_bytes()[4:6] + b"p2$"
    after = LocalStorage(tmp_path, keys=NEW_ONLY)
    assert (await after.read_clean(legacy_key))[0] == data
    assert (await after.read_clean(obj.key))[0] == samples.PNG
    with pytest.raises(CorruptFile):
        await after.save_stream(pieces(samples.PNG[:-12]), max_bytes=4096)  # no IEND


def test_the_reseal_command(tmp_path: Path) -> None:
    uploads = tmp_path / "data" / "uploads" / "ab" / "cd"
    uploads.mkdir(parents=True)
    (uploads / ("abcd" + "1" * 28)).write_bytes(samples.PNG)
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "CONFIG_FILE": "test.toml"}
    out = subprocess.run(
        [sys.executable, "-m", "server", "storage", "reseal"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert "1 sealed, 0 re-wrapped, 0 already current" in out
    assert (uploads / ("abcd" + "1" * 28)).read_bytes().startswith(b"QQE1")
