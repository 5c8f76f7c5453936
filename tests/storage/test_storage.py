"""Material storage on real files: sniffing, caps, hashing, metadata stripping, keys."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import zlib
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.domain.family.materials import storage_refusal
from server.domain.pii import PiiCipher
from server.gateways.storage import (
    CorruptFile,
    EmptyFile,
    LocalStorage,
    ObjectNotFound,
    StorageError,
    StoredObject,
    TooLarge,
    UnsupportedMedia,
    sniff,
    strip_metadata,
)
from server.http_errors import status_of
from tests.storage import samples


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    """``data`` in small pieces, so sniffing has to wait for enough bytes."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def pieces(parts: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


KEYS = PiiCipher({"p1": base64.b64encode(b"k" * 32).decode()}, "p1", "hash-key")


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "materials", keys=KEYS)


# --- sniffing ------------------------------------------------------------------------


def test_sniff_by_magic_bytes_only() -> None:
    assert sniff(samples.JPEG[:8]) == "image/jpeg"
    assert sniff(samples.PNG[:8]) == "image/png"
    assert sniff(samples.PDF[:8]) == "application/pdf"
    assert sniff(b"GIF89a\x01\x00") is None
    assert sniff(b"MZ\x90\x00\x03\x00\x00\x00") is None  # a Windows .exe
    assert sniff(b"\x89PNG") is None  # a prefix is not enough
    assert sniff(b"") is None


# --- accepted uploads ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (samples.JPEG, "image/jpeg"),
        (samples.PNG, "image/png"),
        (samples.PDF, "application/pdf"),
    ],
)
async def test_accepts_jpeg_png_pdf_with_size_and_sha256(
    storage: LocalStorage, data: bytes, content_type: str
) -> None:
    obj = await storage.save_stream(chunks(data), max_bytes=1024)

    assert obj == StoredObject(
        key=obj.key,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        content_type=content_type,
    )
    a, b, name = obj.key.split("/")
    assert (a, b) == (name[:2], name[2:4]) and len(name) == 32
    path = storage.root / obj.key
    assert path.read_bytes().startswith(b"QQE1") and data not in path.read_bytes()  # sealed
    assert path.stat().st_mode & 0o777 == 0o600
    assert files_under(storage.root) == [path]  # no temporary file left
    clean, served_type = await storage.read_clean(obj.key)
    assert served_type == content_type
    assert clean == data  # nothing to strip in these


async def test_keys_are_random_even_for_the_same_content(storage: LocalStorage) -> None:
    first = await storage.save_stream(chunks(samples.PNG), max_bytes=1024)
    second = await storage.save_stream(chunks(samples.PNG), max_bytes=1024)
    assert first.key != second.key and first.sha256 == second.sha256
    await storage.delete(first.key)  # deleting one upload leaves the other intact
    assert (await storage.read_clean(second.key))[0] == samples.PNG


async def test_exactly_max_bytes_is_accepted(storage: LocalStorage) -> None:
    obj = await storage.save_stream(chunks(samples.PDF), max_bytes=len(samples.PDF))
    assert obj.size == len(samples.PDF)


async def test_large_upload_in_64k_chunks(storage: LocalStorage) -> None:
    data = samples.PDF + b"%" + b"x" * (3 * 1024 * 1024)
    parts = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    obj = await storage.save_stream(pieces(parts), max_bytes=8 * 1024 * 1024)
    assert obj.size == len(data) and obj.sha256 == hashlib.sha256(data).hexdigest()
    assert (await storage.read_clean(obj.key))[0] == data


# --- rejected uploads: nothing left behind -------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00,",  # GIF
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 100,  # .exe
        "这是一个改名为 photo.jpg 的文本文件".encode(),  # text named .jpg
        b"\xff\xd8",  # too short to be a JPEG
    ],
    ids=["gif", "exe", "text-named-jpg", "two-bytes"],
)
async def test_other_types_are_415(storage: LocalStorage, data: bytes) -> None:
    with pytest.raises(UnsupportedMedia) as e:
        await storage.save_stream(chunks(data), max_bytes=1024)
    refusal = storage_refusal(e.value)
    assert (refusal.code, status_of(refusal)) == ("UNSUPPORTED_MEDIA_TYPE", 415)
    assert refusal.message == "仅支持 JPEG、PNG 或 PDF 格式的文件"
    assert files_under(storage.root) == []


async def test_sniffing_stops_reading_at_the_first_bytes(storage: LocalStorage) -> None:
    pulled = 0

    async def endless_gif() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"GIF89a" + b"\x00" * 65530

    with pytest.raises(UnsupportedMedia):
        await storage.save_stream(endless_gif(), max_bytes=10**9)
    assert pulled == 1


async def test_allowed_types_can_be_narrowed(storage: LocalStorage) -> None:
    with pytest.raises(UnsupportedMedia):
        await storage.save_stream(
            chunks(samples.PDF), max_bytes=1024, allowed_types=frozenset({"image/jpeg"})
        )


async def test_oversize_is_413_and_leaves_no_file(storage: LocalStorage) -> None:
    data = samples.PDF + b"x" * (600 * 1024)
    with pytest.raises(TooLarge) as e:
        await storage.save_stream(chunks(data, 65536), max_bytes=512 * 1024)
    refusal = storage_refusal(e.value)
    assert (refusal.code, status_of(refusal)) == ("MATERIAL_TOO_LARGE", 413)
    assert refusal.message == "文件过大,单个材料不能超过 0.5 MB"
    # the temporary file was written (past one 256 KiB batch) and then removed
    assert files_under(storage.root) == []


async def test_oversize_message_names_whole_megabytes(storage: LocalStorage) -> None:
    with pytest.raises(TooLarge) as e:
        await storage.save_stream(chunks(samples.PDF + b"x" * 64), max_bytes=len(samples.PDF))
    assert e.value.max_bytes == len(samples.PDF)
    big = 8 * 1024 * 1024
    with pytest.raises(TooLarge) as e:
        await storage.save_stream(pieces([samples.PDF, b"x" * big]), max_bytes=big)
    assert storage_refusal(e.value).message == "文件过大,单个材料不能超过 8 MB"


async def test_empty_is_422(storage: LocalStorage) -> None:
    with pytest.raises(EmptyFile) as e:
        await storage.save_stream(pieces([b"", b""]), max_bytes=1024)
    refusal = storage_refusal(e.value)
    assert (refusal.code, status_of(refusal), refusal.fields) == (
        "MATERIAL_EMPTY",
        422,
        {"file": "MATERIAL_EMPTY"},
    )
    assert files_under(storage.root) == []


@pytest.mark.parametrize(
    "data",
    [
        samples.JPEG[:-10],  # truncated: no EOI
        samples.PNG[:-12],  # no IEND
        samples.PNG[:29] + bytes([samples.PNG[29] ^ 0xFF]) + samples.PNG[30:],  # bad IHDR CRC
    ],
    ids=["jpeg-truncated", "png-no-iend", "png-bad-crc"],
)
async def test_corrupt_images_are_422_and_leave_no_file(storage: LocalStorage, data: bytes) -> None:
    with pytest.raises(CorruptFile) as e:
        await storage.save_stream(chunks(data), max_bytes=1024)
    refusal = storage_refusal(e.value)
    assert (refusal.code, status_of(refusal)) == ("MATERIAL_CORRUPT", 422)
    assert files_under(storage.root) == []


async def test_a_failing_source_leaves_no_file(storage: LocalStorage) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield samples.PDF + b"x" * (300 * 1024)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await storage.save_stream(broken(), max_bytes=1024 * 1024)
    assert files_under(storage.root) == []


# --- metadata stripping --------------------------------------------------------------


def jpeg_markers(data: bytes) -> list[int]:
    """Markers of the header segments up to and including SOS."""
    markers, pos = [], 2
    while True:
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:
            return markers
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length


async def test_jpeg_exif_xmp_iptc_comment_are_not_served(storage: LocalStorage) -> None:
    original = samples.jpeg_with_metadata()
    obj = await storage.save_stream(chunks(original), max_bytes=4096)
    assert obj.sha256 == hashlib.sha256(original).hexdigest()

    clean, content_type = await storage.read_clean(obj.key)

    assert content_type == "image/jpeg"
    assert clean.startswith(b"\xff\xd8") and clean.endswith(b"\xff\xd9")
    assert b"SECRET" not in clean and "李四".encode() not in clean and b"Exif" not in clean
    assert jpeg_markers(clean) == [
        0xE0,
        0xDB,
        0xC0,
        0xC4,
        0xC4,
        0xDA,
    ]  # JFIF, DQT, SOF0, DHT x2, SOS
    assert clean == samples.JPEG  # byte for byte the valid image without its metadata


def test_jpeg_orientation_survives_in_a_minimal_exif() -> None:
    clean = strip_metadata(samples.jpeg_with_metadata(orientation=6), "image/jpeg")
    assert b"SECRET" not in clean
    assert jpeg_markers(clean) == [0xE0, 0xE1, 0xDB, 0xC0, 0xC4, 0xC4, 0xDA]
    app1 = clean.index(b"\xff\xe1")
    tiff = clean[app1 + 10 :]
    assert tiff.startswith(b"MM\x00\x2a")
    # one IFD0 entry: Orientation (0x0112), SHORT, count 1, value 6
    assert tiff[8:10] == b"\x00\x01" and tiff[10:20] == struct.pack(">HHIH", 0x0112, 3, 1, 6)
    assert clean.endswith(samples.SOS + samples.SCAN + samples.EOI)


def test_jpeg_markers_between_scans_are_kept_and_comments_dropped() -> None:
    # A second (progressive-style) DHT + scan after the first scan, with a COM in between.
    data = (
        samples.SOI
        + samples.DQT
        + samples.SOF0
        + samples.DHT_DC
        + samples.DHT_AC
        + samples.SOS
        + b"\x12\xff\x00\x34\xff\xd0\x56"  # stuffed byte and a restart marker
        + samples.COM
        + samples.DHT_AC
        + samples.SOS
        + samples.SCAN
        + samples.EOI
    )
    clean = strip_metadata(data, "image/jpeg")
    assert "李四".encode() not in clean
    assert clean == data.replace(samples.COM, b"")


def test_png_text_and_time_chunks_are_dropped_with_crcs_intact() -> None:
    clean = strip_metadata(samples.png_with_metadata(), "image/png")
    assert b"SECRET" not in clean
    assert clean == samples.PNG
    pos, types = 8, []
    while pos < len(clean):
        length, ctype = struct.unpack_from(">I4s", clean, pos)
        (crc,) = struct.unpack_from(">I", clean, pos + 8 + length)
        assert zlib.crc32(clean[pos + 4 : pos + 8 + length]) == crc
        types.append(ctype)
        pos += 12 + length
    assert types == [b"IHDR", b"IDAT", b"IEND"]


def test_pdf_is_served_unchanged() -> None:
    assert strip_metadata(samples.PDF, "application/pdf") == samples.PDF


def test_strip_rejects_unknown_types() -> None:
    with pytest.raises(ValueError):
        strip_metadata(b"GIF89a", "image/gif")


# --- keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "../etc/passwd",
        "ab/cd/../../../../etc/passwd",
        "/etc/passwd",
        "ab/cd/abcd0000000000000000000000000000/..",
        "ab/cd/" + "a" * 32,  # fan-out does not match the name
        "AB/CD/ABCD" + "0" * 28,  # upper case
        "abcd" + "0" * 28,  # no fan-out
        "",
    ],
)
async def test_bad_keys_are_rejected(storage: LocalStorage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.read_clean(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.delete(key)


async def test_missing_object_is_404_and_delete_is_idempotent(storage: LocalStorage) -> None:
    obj = await storage.save_stream(chunks(samples.JPEG), max_bytes=1024)
    await storage.delete(obj.key)
    await storage.delete(obj.key)
    with pytest.raises(ObjectNotFound) as e:
        await storage.read_clean(obj.key)
    refusal = storage_refusal(e.value)
    assert (refusal.code, status_of(refusal)) == ("MATERIAL_NOT_FOUND", 404)


# --- through aiohttp multipart -------------------------------------------------------


async def test_streamed_multipart_upload_through_aiohttp(tmp_path: Path) -> None:
    """A tiny app that streams the ``file`` part with save_stream, as the endpoint will."""
    storage = LocalStorage(tmp_path / "materials", keys=KEYS)

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        kind = None
        async for part in reader:
            assert isinstance(part, aiohttp.BodyPartReader)
            if part.name == "kind":
                kind = await part.text()
            elif part.name == "file":
                try:
                    obj = await storage.save_stream(part, max_bytes=512 * 1024)
                except StorageError as e:
                    refusal = storage_refusal(e)
                    return web.json_response(refusal.to_body(), status=status_of(refusal))
                return web.json_response(
                    {
                        "kind": kind,
                        "key": obj.key,
                        "size": obj.size,
                        "sha256": obj.sha256,
                        "content_type": obj.content_type,
                    },
                    status=201,
                )
        return web.json_response({}, status=400)

    async def download(request: web.Request) -> web.Response:
        data, content_type = await storage.read_clean(request.match_info["key"])
        return web.Response(body=data, content_type=content_type)

    app = web.Application()
    app.router.add_post("/upload", upload)
    app.router.add_get("/objects/{key:.+}", download)
    async with TestClient(TestServer(app)) as client:
        photo = samples.jpeg_with_metadata() + b"\x00" * (200 * 1024)  # several chunks
        form = aiohttp.FormData()
        form.add_field("kind", "household_register")
        # The client's file name and Content-Type are lies: only the bytes count.
        form.add_field("file", photo, filename="scan.pdf", content_type="application/pdf")
        resp = await client.post("/upload", data=form)
        assert resp.status == 201
        body = await resp.json()
        assert body["kind"] == "household_register"
        assert body["content_type"] == "image/jpeg"
        assert body["size"] == len(photo)
        assert body["sha256"] == hashlib.sha256(photo).hexdigest()

        resp = await client.get(f"/objects/{body['key']}")
        assert resp.status == 200 and resp.content_type == "image/jpeg"
        assert await resp.read() == samples.JPEG

        form = aiohttp.FormData()
        form.add_field(
            "file", b"GIF89a" + b"\x00" * 1000, filename="a.jpg", content_type="image/jpeg"
        )
        resp = await client.post("/upload", data=form)
        assert resp.status == 415
        assert (await resp.json())["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"

        form = aiohttp.FormData()
        form.add_field("file", samples.PDF + b"x" * (600 * 1024), filename="big.pdf")
        resp = await client.post("/upload", data=form)
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "MATERIAL_TOO_LARGE"

    assert files_under(storage.root) == [storage.root / body["key"]]


async def test_cancelled_upload_leaves_no_file(storage: LocalStorage) -> None:
    """A client that disconnects mid-upload cancels the handler: the temp file goes."""
    stalled = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        for _ in range(5):  # past one write batch, so the temp file exists
            yield samples.PDF + b"x" * 65536
        stalled.set()
        await asyncio.Event().wait()
        yield b""  # pragma: no cover

    task = asyncio.create_task(storage.save_stream(stalls(), max_bytes=10**7))
    await stalled.wait()
    assert len(files_under(storage.root)) == 1  # the temporary file
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # a write still in its thread finishes first, then cleanup runs
        if not files_under(storage.root):
            break
        await asyncio.sleep(0.01)
    assert files_under(storage.root) == []


def test_files_of_countless_tiny_segments_are_refused() -> None:
    """Millions of empty segments would cost seconds of CPU on every read."""
    many_com = samples.SOI + samples.segment(0xFE, b"") * 25_000 + samples.JPEG[2:]
    with pytest.raises(ValueError, match="more than"):
        strip_metadata(many_com, "image/jpeg")
    many_text = (
        samples.PNG_SIG
        + samples.IHDR
        + samples.png_chunk(b"tEXt", b"") * 25_000
        + samples.IDAT
        + samples.IEND
    )
    with pytest.raises(ValueError, match="more than"):
        strip_metadata(many_text, "image/png")
    # a realistic count passes
    assert (
        strip_metadata(samples.SOI + samples.COM * 1000 + samples.JPEG[2:], "image/jpeg")
        == samples.JPEG
    )
