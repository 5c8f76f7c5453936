"""Material storage: uploaded 户口本 / 身份证 / 出生证明 images and PDFs.

Rules (SPEC.md "materials", issue #3 "Materials upload"):

* only JPEG, PNG and PDF, recognised by their magic bytes, never by file name or the
  client's Content-Type (:class:`UnsupportedMedia`);
* a size cap enforced while streaming, so an oversize upload is never held in memory or
  on disk beyond the cap (:class:`TooLarge`); an empty file is :class:`EmptyFile`; a file
  whose structure cannot be parsed is :class:`CorruptFile`;
* the SHA-256 of the exact uploaded bytes is computed on the way in and kept;
* EXIF / XMP / IPTC / text metadata (GPS position, device, owner names) is never served
  back: :func:`strip_metadata` runs on every read. The original bytes stay on disk so
  the recorded SHA-256 keeps matching what was uploaded.

:class:`Storage` is the interface the services use; :class:`LocalStorage` keeps objects
in a local directory. An object-storage implementation only has to provide the same
three coroutines.

Errors are this module's own types (:class:`StorageError`); the domain turns them into
API.md codes (``UNSUPPORTED_MEDIA_TYPE`` 415, ``MATERIAL_TOO_LARGE`` 413, ``MATERIAL_EMPTY``
/ ``MATERIAL_CORRUPT`` 422, ``MATERIAL_NOT_FOUND`` 404).

Keys are generated here (128 random bits, hex) and never contain user input; the
on-disk layout fans out over two directory levels: ``ab/cd/abcd…`` (32 hex digits).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import aiohttp

ALLOWED_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png", "application/pdf"})

CHUNK_SIZE = 64 * 1024
#: Chunks are gathered up to this size before one write in a worker thread: one thread
#: hop per 256 KiB instead of per 64 KiB chunk.
WRITE_BATCH = 256 * 1024
#: At most this many JPEG markers / PNG chunks: real files have tens to a few thousand
#: (8 KiB IDAT chunks); a crafted file of millions of tiny segments would otherwise cost
#: seconds of CPU on every read.
MAX_SEGMENTS = 20_000
#: The longest magic number we look at (PNG's 8-byte signature).
SNIFF_BYTES = 8

_KEY_RE = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    """What storage kept: the key to find it again, and facts about the exact bytes."""

    key: str
    size: int
    sha256: str
    content_type: str


class Storage(Protocol):
    """Where materials live. Local directory by default; object storage can implement it."""

    async def save_stream(
        self,
        source: aiohttp.BodyPartReader | AsyncIterator[bytes],
        *,
        max_bytes: int,
        allowed_types: frozenset[str] = ALLOWED_TYPES,
    ) -> StoredObject: ...

    async def read_clean(self, key: str) -> tuple[bytes, str]: ...

    async def delete(self, key: str) -> None: ...


# ---------------------------------------------------------------------------------------
# Errors: the storage's own types; the domain words them for people (codes, Chinese text,
# HTTP status: server.domain.family.materials.storage_refusal).


class StorageError(Exception):
    """Storage refused or could not find an object."""


class UnsupportedMedia(StorageError):
    """Not one of the allowed types, judged by the magic bytes."""


class TooLarge(StorageError):
    """More than ``max_bytes`` arrived (nothing kept)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"more than {max_bytes} bytes")
        self.max_bytes = max_bytes


class EmptyFile(StorageError):
    """The upload held no bytes."""


class CorruptFile(StorageError):
    """The file's structure cannot be parsed (truncated, bad CRC…)."""


class ObjectNotFound(StorageError):
    """No object under this key (deleted, or never stored)."""


# ---------------------------------------------------------------------------------------
# Content rules (pure, no I/O)


def sniff(head: bytes) -> str | None:
    """The content type of a file from its first bytes, or None if not one we accept.

    Looks only at magic numbers: JPEG ``FF D8 FF``, PNG's 8-byte signature, PDF ``%PDF-``.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(_PNG_SIGNATURE):
        return "image/png"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def strip_metadata(data: bytes, content_type: str) -> bytes:
    """``data`` without metadata that could identify a person, place or device.

    * JPEG: keeps only what decoding needs — frame headers (SOF*), Huffman / arithmetic
      tables (DHT, DAC), quantisation tables (DQT), restart interval (DRI), DNL, the JFIF
      APP0 header, an ICC colour profile (APP2 ``ICC_PROFILE``) and the Adobe APP14 colour
      transform flag — then the scan data verbatim. Drops APP1 (EXIF, XMP), APP13
      (IPTC / Photoshop), COM and every other APPn. The EXIF orientation, if any, is kept
      in a fresh minimal EXIF block holding that single tag, so phone photos still show
      upright.
    * PNG: drops ``tEXt``, ``zTXt``, ``iTXt``, ``eXIf`` and ``tIME`` chunks; every other
      chunk is copied byte for byte (so its CRC stays valid). CRCs are checked.
    * PDF: returned unchanged. Rewriting a PDF's Info dictionary / XMP stream safely needs
      a full PDF parser (incremental updates, object streams, encryption); materials are
      shown only to their owner and reviewers, and scans from phone apps rarely carry
      personal metadata. Object storage with a PDF sanitiser can do better.

    Raises ``ValueError`` when the structure cannot be parsed (truncated, bad CRC).
    """
    if content_type == "image/jpeg":
        return _strip_jpeg(data)
    if content_type == "image/png":
        return _strip_png(data)
    if content_type == "application/pdf":
        return data
    raise ValueError(f"unsupported content type {content_type!r}")


# JPEG markers kept before the first SOS: SOF0..SOF15 with DHT (C4), JPG (C8), DAC (CC);
# DQT, DNL, DRI.
_JPEG_KEEP = frozenset(range(0xC0, 0xD0)) | {0xDB, 0xDC, 0xDD}
_SOS = 0xDA
_JPEG_MARKER_RE = re.compile(rb"\xff+[\x01-\xcf\xd8-\xfe]")
_EOI = 0xD9


def _strip_jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("JPEG: missing SOI")
    out = bytearray(b"\xff\xd8")
    orientation: int | None = None
    exif_at = 2  # where a kept orientation goes: after SOI and a leading JFIF APP0
    seen_scan = False
    pos = 2
    n = len(data)
    for _ in range(MAX_SEGMENTS):
        if seen_scan:
            # Entropy-coded data runs up to the next real marker: inside it 0xFF is only
            # followed by 0x00 (stuffing) or RSTn, or is a fill byte before a marker.
            m = _JPEG_MARKER_RE.search(data, pos)
            if m is None:
                raise ValueError("JPEG: missing EOI")
            out += data[pos : m.start()]
            pos = m.start()
        elif pos >= n or data[pos] != 0xFF:
            raise ValueError(f"JPEG: expected a marker at offset {pos}")
        # Markers may be preceded by any number of 0xFF fill bytes.
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            raise ValueError("JPEG: truncated marker")
        marker = data[pos]
        pos += 1
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # standalone markers (TEM, RSTn) carry no length
        if marker == _EOI:
            if not seen_scan:
                raise ValueError("JPEG: no image data before EOI")
            # Anything after EOI (vendor trailers, appended preview images) is dropped.
            out += b"\xff\xd9"
            return bytes(out)
        if pos + 2 > n:
            raise ValueError("JPEG: truncated segment length")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > n:
            raise ValueError(f"JPEG: bad segment length at offset {pos}")
        segment = data[pos - 2 : pos + length]
        payload = data[pos + 2 : pos + length]
        pos += length
        if marker == _SOS:
            if not seen_scan and orientation is not None and orientation != 1:
                out[exif_at:exif_at] = _exif_orientation_segment(orientation)
            seen_scan = True
            out += segment
        elif marker in _JPEG_KEEP:
            out += segment
        elif marker == 0xE0 and payload.startswith(b"JFIF\x00"):
            out += segment
            if exif_at == 2 and len(out) == 2 + len(segment):
                exif_at = len(out)
        elif (marker, payload[:12]) == (0xE2, b"ICC_PROFILE\x00") or (
            marker == 0xEE and payload.startswith(b"Adobe")
        ):
            out += segment
        elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00") and orientation is None:
            orientation = _exif_orientation(payload[6:])
        # everything else (APP1 EXIF/XMP, APP13 IPTC, COM, other APPn) is dropped
    raise ValueError(f"JPEG: more than {MAX_SEGMENTS} markers")


def _exif_orientation(tiff: bytes) -> int | None:
    """The Orientation tag (0x0112) of IFD0 of an EXIF TIFF block, or None."""
    try:
        if tiff[:2] == b"II":
            order = "<"
        elif tiff[:2] == b"MM":
            order = ">"
        else:
            return None
        (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
        (count,) = struct.unpack_from(order + "H", tiff, ifd0)
        for i in range(count):
            tag, typ, _, value = struct.unpack_from(order + "HHIH", tiff, ifd0 + 2 + 12 * i)
            if tag == 0x0112 and typ == 3:
                return value if 1 <= value <= 8 else None
    except struct.error:
        return None
    return None


def _exif_orientation_segment(orientation: int) -> bytes:
    """A minimal APP1 EXIF segment holding only the Orientation tag."""
    tiff = (
        b"MM\x00\x2a"
        + struct.pack(">I", 8)  # big-endian TIFF header, IFD0 at offset 8
        + struct.pack(">H", 1)  # one entry
        + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)  # SHORT, count 1, padded
        + struct.pack(">I", 0)  # no next IFD
    )
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


_PNG_DROP = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})


def _strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("PNG: missing signature")
    out = bytearray(_PNG_SIGNATURE)
    view = memoryview(data)
    pos = len(_PNG_SIGNATURE)
    n = len(data)
    for _ in range(MAX_SEGMENTS):
        if pos + 12 > n:
            break
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > n:
            raise ValueError(f"PNG: chunk {ctype!r} runs past the end of the file")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            raise ValueError(f"PNG: bad CRC in chunk {ctype!r}")
        if ctype not in _PNG_DROP:
            out += data[pos:end]
        pos = end
        if ctype == b"IEND":
            return bytes(out)
    if pos + 12 > n:
        raise ValueError("PNG: missing IEND")
    raise ValueError(f"PNG: more than {MAX_SEGMENTS} chunks")


# ---------------------------------------------------------------------------------------
# Local directory storage


def _check_key(key: str) -> tuple[str, str, str]:
    """The path parts of a well-formed key; ValueError for anything else (no traversal)."""
    m = _KEY_RE.fullmatch(key) if isinstance(key, str) else None
    if m is None or m.group(3)[:2] != m.group(1) or m.group(3)[2:4] != m.group(2):
        raise ValueError(f"invalid storage key {key!r}")
    return m.group(1), m.group(2), m.group(3)


async def _chunks(source: aiohttp.BodyPartReader | AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Chunks of ``source``: a multipart part (read in 64 KiB pieces) or any byte iterator."""
    if isinstance(source, aiohttp.BodyPartReader):
        while chunk := await source.read_chunk(CHUNK_SIZE):
            yield chunk
    else:
        async for chunk in source:
            if chunk:
                yield chunk


class LocalStorage:
    """Materials in a local directory (``root/ab/cd/<32 hex>``), files mode 0600."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, key: str) -> Path:
        """The file of ``key``; ValueError if the key is not one this storage makes."""
        a, b, name = _check_key(key)
        return self.root / a / b / name

    async def save_stream(
        self,
        source: aiohttp.BodyPartReader | AsyncIterator[bytes],
        *,
        max_bytes: int,
        allowed_types: frozenset[str] = ALLOWED_TYPES,
    ) -> StoredObject:
        """Stream ``source`` to a new object; see the module docstring for the rules.

        Bytes go to a temporary file next to the final path and are renamed into place
        only once everything checked out; on any error (including cancellation) the
        temporary file is removed, so nothing is left behind. File I/O runs in worker
        threads in batches of up to :data:`WRITE_BATCH` bytes.
        """
        name = secrets.token_hex(16)
        key = f"{name[:2]}/{name[2:4]}/{name}"
        temp = _TempFile(self.path_of(key))
        digest = hashlib.sha256()
        size = 0
        content_type: str | None = None
        head = bytearray()  # bytes held back until the type is known
        pending = bytearray()
        in_flight: asyncio.Future[Any] | None = None
        done = False

        async def in_thread(fn: Callable[..., T], *args: Any) -> T:
            nonlocal in_flight
            in_flight = asyncio.ensure_future(asyncio.to_thread(fn, *args))
            # Shielded: if we are cancelled, the thread finishes before the cleanup runs.
            return await asyncio.shield(in_flight)

        try:
            async for chunk in _chunks(source):
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(max_bytes)
                digest.update(chunk)
                if content_type is None:
                    head += chunk
                    if len(head) < SNIFF_BYTES:
                        continue
                    content_type = _accept(head, allowed_types)
                    chunk, head = bytes(head), bytearray()
                pending += chunk
                if len(pending) >= WRITE_BATCH:
                    await in_thread(temp.write, bytes(pending))
                    pending.clear()
            if size == 0:
                raise EmptyFile()
            if content_type is None:  # a file shorter than the longest magic number
                content_type = _accept(head, allowed_types)
                pending += head
            if pending:
                await in_thread(temp.write, bytes(pending))
            if not await in_thread(temp.finish, content_type):
                raise CorruptFile()
            done = True
            return StoredObject(
                key=key, size=size, sha256=digest.hexdigest(), content_type=content_type
            )
        finally:
            if not done:
                if in_flight is not None and not in_flight.done():
                    in_flight.add_done_callback(lambda _: temp.discard())
                else:
                    temp.discard()

    async def read_clean(self, key: str) -> tuple[bytes, str]:
        """The object's bytes with metadata stripped (:func:`strip_metadata`) and its type.

        :class:`ObjectNotFound` if there is no such object; ValueError for a bad key.
        """
        path = self.path_of(key)
        try:
            return await asyncio.to_thread(_read_clean, path)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        path = self.path_of(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _accept(head: bytes | bytearray, allowed_types: frozenset[str]) -> str:
    content_type = sniff(bytes(head))
    if content_type is None or content_type not in allowed_types:
        raise UnsupportedMedia(content_type or "unknown")
    return content_type


class _TempFile:
    """The temporary file of one upload, next to its final path (same file system).

    Its methods run in a worker thread, one at a time; :meth:`discard` runs only once no
    other method is running (save_stream waits for the one in flight).
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        self.path = final.with_name(f".{final.name}.tmp")
        self.file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self.file is None:
            self.final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self.file = os.fdopen(fd, "wb")
        self.file.write(data)

    def finish(self, content_type: str) -> bool:
        """Flush, check the structure is servable, rename into place. False if corrupt."""
        assert self.file is not None
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        try:
            strip_metadata(self.path.read_bytes(), content_type)
        except ValueError:
            return False
        os.replace(self.path, self.final)
        return True

    def discard(self) -> None:
        """Remove every trace: the temporary file and, when cancelled during
        :meth:`finish` after the rename, the final file (nobody received its key)."""
        if self.file is not None:
            self.file.close()
        self.path.unlink(missing_ok=True)
        self.final.unlink(missing_ok=True)


def _read_clean(path: Path) -> tuple[bytes, str]:
    data = path.read_bytes()
    content_type = sniff(data[:SNIFF_BYTES])
    if content_type is None:
        raise ValueError(f"stored object {path.name} has an unknown type")
    return strip_metadata(data, content_type), content_type
