"""Material storage: uploaded 户口本 / 身份证 / 出生证明 images and PDFs, and 承诺书 signature
images.

Rules (SPEC.md "materials", issue #3 "Materials upload", issue #12 "Encrypted uploads"):

* only JPEG, PNG and PDF, recognised by their magic bytes, never by file name or the
  client's Content-Type (:class:`UnsupportedMedia`);
* a size cap enforced while streaming, so an oversize upload is never held in memory or
  on disk beyond the cap (:class:`TooLarge`); an empty file is :class:`EmptyFile`; a file
  whose structure cannot be parsed is :class:`CorruptFile`;
* the SHA-256 of the exact uploaded bytes is computed on the way in and kept (the
  upload's receipt);
* EXIF / XMP / IPTC / text metadata (GPS position, device, owner names) and PDF document
  information are stripped on the way in (:mod:`server.gateways.sanitize`, streaming):
  what we never keep cannot leak (PIPL art. 6, minimum necessary);
* encrypted at rest: each file under its own data key, sealed in 64 KiB AES-GCM records
  (:mod:`server.gateways.sealed`); the data key is wrapped by the PII key set and rotates
  like the PII fields (:meth:`LocalStorage.reseal`, ``python -m server storage reseal``);
* written and read in chunks: neither an upload nor a download is ever whole in memory.
  Files stored before encryption (plain, unstripped) are still read, stripped as they
  stream out, until ``reseal`` seals them.

:class:`Storage` is the interface the services use; :class:`LocalStorage` keeps objects
in a local directory. An object-storage implementation only has to provide the same
coroutines.

Errors are this module's own types (:class:`StorageError`); the domain turns them into
API.md codes (``UNSUPPORTED_MEDIA_TYPE`` 415, ``MATERIAL_TOO_LARGE`` 413, ``MATERIAL_EMPTY``
/ ``MATERIAL_CORRUPT`` 422, ``MATERIAL_NOT_FOUND`` 404, ``STORAGE_FULL`` 507 when the disk
has no room — nothing is left behind).

Keys are generated here (128 random bits, hex) and never contain user input; the
on-disk layout fans out over two directory levels: ``ab/cd/abcd…`` (32 hex digits).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import aiohttp

from server.gateways.sanitize import MAX_SEGMENTS, Stripper, strip_metadata, stripper_for
from server.gateways.sealed import CHUNK, KeyWrapper, SealedReader, SealedWriter, is_sealed, rewrap

__all__ = [
    "ALLOWED_TYPES",
    "MAX_SEGMENTS",
    "CorruptFile",
    "EmptyFile",
    "LocalStorage",
    "ObjectNotFound",
    "Storage",
    "StorageError",
    "StorageFull",
    "StoredObject",
    "TooLarge",
    "UnsupportedMedia",
    "sniff",
    "strip_metadata",
]

ALLOWED_TYPES: frozenset[str] = frozenset({"image/jpeg", "image/png", "application/pdf"})

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
#: Chunks are gathered up to this size before one write in a worker thread: one thread
#: hop per 256 KiB instead of per 64 KiB chunk.
WRITE_BATCH = 256 * 1024
#: The longest magic number we look at (PNG's 8-byte signature).
SNIFF_BYTES = 8

_KEY_RE = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{32})$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T = TypeVar("T")


@dataclass(frozen=True)
class StoredObject:
    """What storage kept: the key to find it again, and facts about the uploaded bytes."""

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

    async def open_stream(self, key: str) -> tuple[str, AsyncIterator[bytes]]: ...

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


class StorageFull(StorageError):
    """The disk (or the quota) has no room for the object: nothing kept, try later."""


#: OSError numbers meaning "no room": the disk is full, or the user's quota is
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


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
    """Materials in a local directory (``root/ab/cd/<32 hex>``), files mode 0600, each
    sealed under its own data key wrapped by ``keys`` (the PII key set)."""

    def __init__(self, root: Path, *, keys: KeyWrapper) -> None:
        self.root = Path(root)
        self.keys = keys

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

        Bytes are stripped and sealed as they arrive, into a temporary file next to the
        final path, renamed into place only once everything checked out; on any error
        (including cancellation) the temporary file is removed, so nothing is left
        behind. File I/O and encryption run in worker threads, in batches of up to
        :data:`WRITE_BATCH` bytes.
        """
        name = secrets.token_hex(16)
        key = f"{name[:2]}/{name[2:4]}/{name}"
        temp = _TempFile(self.path_of(key), self.keys)
        digest = hashlib.sha256()
        size = 0
        content_type: str | None = None
        stripper: Stripper | None = None
        head = bytearray()  # bytes held back until the type is known
        pending = bytearray()
        in_flight: asyncio.Future[Any] | None = None
        done = False

        async def in_thread(fn: Callable[..., T], *args: Any) -> T:
            nonlocal in_flight
            in_flight = asyncio.ensure_future(asyncio.to_thread(fn, *args))
            # Shielded: if we are cancelled, the thread finishes before the cleanup runs.
            return await asyncio.shield(in_flight)

        def clean(data: bytes, *, last: bool = False) -> bytes:
            assert stripper is not None
            try:
                return stripper.feed(data) + (stripper.close() if last else b"")
            except ValueError:
                raise CorruptFile() from None

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
                    stripper = stripper_for(content_type)
                    chunk, head = bytes(head), bytearray()
                pending += clean(chunk)
                if len(pending) >= WRITE_BATCH:
                    await in_thread(temp.write, bytes(pending))
                    pending.clear()
            if size == 0:
                raise EmptyFile()
            if content_type is None:  # a file shorter than the longest magic number
                content_type = _accept(head, allowed_types)
                stripper = stripper_for(content_type)
                pending += clean(bytes(head))
            pending += clean(b"", last=True)
            await in_thread(temp.write, bytes(pending))
            await in_thread(temp.finish)
            done = True
            return StoredObject(
                key=key, size=size, sha256=digest.hexdigest(), content_type=content_type
            )
        except OSError as exc:
            if exc.errno not in _NO_ROOM:
                raise
            # the operators must hear of it; the user gets a clear "try later" (issue #15)
            log.error("uploads disk full under %s: %s", self.root, exc.strerror)
            raise StorageFull() from exc
        finally:
            if not done:
                if in_flight is not None and not in_flight.done():
                    in_flight.add_done_callback(lambda _: temp.discard())
                else:
                    temp.discard()

    async def open_stream(self, key: str) -> tuple[str, AsyncIterator[bytes]]:
        """The object's type and its bytes (metadata stripped), chunk by chunk.

        :class:`ObjectNotFound` if there is no such object; ValueError for a bad key or a
        file that fails decryption (altered on disk)."""
        path = self.path_of(key)
        try:
            source = await asyncio.to_thread(_Source.open, path, self.keys)
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        try:
            first = await asyncio.to_thread(source.next)
            content_type = sniff(first[:SNIFF_BYTES]) if first else None
            if content_type is None:
                raise ValueError(f"stored object {path.name} has an unknown type")
        except BaseException:
            source.close()  # not in a thread: see _stream
            raise
        return content_type, _stream(source, first)

    async def read_clean(self, key: str) -> tuple[bytes, str]:
        """The whole object (metadata stripped) and its type: for small callers; large
        readers use :meth:`open_stream`."""
        content_type, chunks = await self.open_stream(key)
        return b"".join([c async for c in chunks]), content_type

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        path = self.path_of(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def reseal(self, key: str) -> str:
        """Bring one object up to date: a sealed file under an older master key gets its
        data key re-wrapped (``rewrapped``); a file stored before encryption is stripped
        and sealed (``sealed``); else ``current``."""
        path = self.path_of(key)
        if await asyncio.to_thread(_is_sealed_file, path):
            return "rewrapped" if await asyncio.to_thread(rewrap, path, self.keys) else "current"
        content_type, chunks = await self.open_stream(key)  # strips on the way
        temp = _TempFile(path, self.keys)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(temp.write, chunk)
            await asyncio.to_thread(temp.finish)
        except BaseException:
            temp.path.unlink(missing_ok=True)
            raise
        return "sealed"

    def keys_under(self) -> Iterator[str]:
        """Every object key in the directory (temporary files skipped)."""
        if not self.root.exists():
            return
        for path in sorted(self.root.glob("??/??/*")):
            key = f"{path.parent.parent.name}/{path.parent.name}/{path.name}"
            if _KEY_RE.fullmatch(key):
                yield key


def _accept(head: bytes | bytearray, allowed_types: frozenset[str]) -> str:
    content_type = sniff(bytes(head))
    if content_type is None or content_type not in allowed_types:
        raise UnsupportedMedia(content_type or "unknown")
    return content_type


class _TempFile:
    """The temporary file of one upload, next to its final path (same file system),
    sealed as it is written.

    Its methods run in a worker thread, one at a time; :meth:`discard` runs only once no
    other method is running (save_stream waits for the one in flight).
    """

    def __init__(self, final: Path, keys: KeyWrapper) -> None:
        self.final = final
        self.path = final.with_name(f".{final.name}.tmp")
        self.keys = keys
        self.file: IO[bytes] | None = None
        self.writer: SealedWriter | None = None

    def write(self, data: bytes) -> None:
        if self.file is None:
            self.final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            self.file = os.fdopen(fd, "wb")
            self.writer = SealedWriter(self.file, self.keys)
        assert self.writer is not None
        self.writer.write(data)

    def finish(self) -> None:
        """Seal the last record, flush, rename into place."""
        if self.file is None:
            self.write(b"")
        assert self.file is not None and self.writer is not None
        self.writer.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.path, self.final)

    def discard(self) -> None:
        """Remove every trace: the temporary file and, when cancelled during
        :meth:`finish` after the rename, the final file (nobody received its key)."""
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                # closing flushes what is buffered: on a full disk that fails again, and
                # the file must still go (issue #15: the partial file was left behind)
                pass
        self.path.unlink(missing_ok=True)
        self.final.unlink(missing_ok=True)


class _Source:
    """A stored file read chunk by chunk: sealed (decrypted) or, from before encryption,
    plain (stripped as it streams). Its methods run in worker threads."""

    def __init__(self, file: IO[bytes], chunks: Iterator[bytes]) -> None:
        self.file = file
        self.chunks = chunks

    @classmethod
    def open(cls, path: Path, keys: KeyWrapper) -> _Source:
        f = open(path, "rb")
        try:
            if is_sealed(f.read(4)):
                f.seek(0)
                return cls(f, SealedReader(f, keys).chunks())
            f.seek(0)
            return cls(f, _plain(f))
        except BaseException:
            f.close()
            raise

    def next(self) -> bytes:
        return next(self.chunks, b"")

    def close(self) -> None:
        self.file.close()


def _is_sealed_file(path: Path) -> bool:
    with open(path, "rb") as f:
        return is_sealed(f.read(4))


def _plain(f: IO[bytes]) -> Iterator[bytes]:
    """A file stored before encryption, metadata stripped as it streams."""
    first = f.read(CHUNK)
    content_type = sniff(first[:SNIFF_BYTES])
    if content_type is None:
        yield first
        return
    stripper = stripper_for(content_type)
    block = first
    while block:
        out = stripper.feed(block)
        if out:
            yield out
        block = f.read(CHUNK)
    tail = stripper.close()
    if tail:
        yield tail


async def _stream(source: _Source, first: bytes) -> AsyncIterator[bytes]:
    try:
        chunk = first
        while chunk:
            yield chunk
            chunk = await asyncio.to_thread(source.next)
    finally:
        # Closed right here, not in a worker thread: closing a file opened for reading
        # does not wait on the disk, and a stream cancelled while the server shuts down
        # (a client gone mid-download) must not depend on an executor that may refuse
        # new work by then — the file was left to the garbage collector (ResourceWarning).
        source.close()
