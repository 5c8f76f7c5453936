"""Files encrypted at rest, chunk by chunk (issue #12; PIPL art. 51).

Each file has its own random 256-bit data key (DEK). The DEK is stored in the file's
header wrapped by the PII key set (``KeyWrapper``, implemented by ``PiiCipher``): the
wrapped form names its key id, so the master keys rotate like the PII fields — new files
use the current key, files under an older key stay readable while it is configured, and
:func:`rewrap` moves a file to the current key by rewriting only its header.

Layout::

    "QQE1" | u16 length of the wrapped DEK | wrapped DEK (ASCII "kid$base64") | 8-byte nonce prefix
    then records: u32 length | AES-256-GCM(DEK, nonce = prefix | u32 index,
                                           chunk of at most 64 KiB, aad = "QQE1" | u32 index | u8 final)

The chunk index and the "final" flag are authenticated: records cannot be reordered,
dropped, repeated or cut off at a record boundary without the read failing. Writing and
reading hold one chunk at a time.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import IO, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CHUNK", "MAGIC", "KeyWrapper", "SealedReader", "SealedWriter", "is_sealed", "rewrap"]

MAGIC = b"QQE1"
CHUNK = 64 * 1024
_TAG = 16
_MAX_RECORD = CHUNK + _TAG


class KeyWrapper(Protocol):
    """Wraps data keys with the current master key; unwraps with any configured one."""

    def wrap_key(self, key: bytes) -> str: ...

    def unwrap_key(self, wrapped: str) -> bytes: ...

    def needs_rotation(self, token: str) -> bool: ...


class SealedError(ValueError):
    """The file is not a sealed file, or fails authentication (tampered, truncated)."""


def is_sealed(head: bytes) -> bool:
    return head.startswith(MAGIC)


def _aad(index: int, final: bool) -> bytes:
    return MAGIC + struct.pack(">IB", index, 1 if final else 0)


def _header(wrapped: str, prefix: bytes) -> bytes:
    w = wrapped.encode("ascii")
    return MAGIC + struct.pack(">H", len(w)) + w + prefix


class SealedWriter:
    """Encrypts a stream of plaintext into ``file`` (a binary file open for writing)."""

    def __init__(self, file: IO[bytes], keys: KeyWrapper) -> None:
        self._file = file
        dek = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(dek)
        self._prefix = os.urandom(8)
        self._index = 0
        self._pending = bytearray()
        file.write(_header(keys.wrap_key(dek), self._prefix))

    def _record(self, chunk: bytes, final: bool) -> None:
        nonce = self._prefix + struct.pack(">I", self._index)
        sealed = self._aead.encrypt(nonce, chunk, _aad(self._index, final))
        self._file.write(struct.pack(">I", len(sealed)) + sealed)
        self._index += 1

    def write(self, data: bytes) -> None:
        self._pending += data
        # keep at least one byte back: the last record must be marked final
        while len(self._pending) > CHUNK:
            self._record(bytes(self._pending[:CHUNK]), final=False)
            del self._pending[:CHUNK]

    def close(self) -> None:
        """Write the final record (possibly empty)."""
        self._record(bytes(self._pending), final=True)
        self._pending.clear()


class SealedReader:
    """Decrypts a sealed file record by record (:meth:`chunks`)."""

    def __init__(self, file: IO[bytes], keys: KeyWrapper) -> None:
        self._file = file
        head = file.read(6)
        if len(head) < 6 or not is_sealed(head):
            raise SealedError("not a sealed file")
        (n,) = struct.unpack(">H", head[4:6])
        wrapped = file.read(n)
        self._prefix = file.read(8)
        if len(wrapped) != n or len(self._prefix) != 8:
            raise SealedError("truncated header")
        self.wrapped = wrapped.decode("ascii")
        try:
            self._aead = AESGCM(keys.unwrap_key(self.wrapped))
        except (InvalidTag, KeyError, ValueError) as exc:
            raise SealedError(f"data key cannot be unwrapped: {exc!r}") from None
        self.body_offset = 6 + n + 8

    def chunks(self) -> Iterator[bytes]:
        """The plaintext, one chunk at a time; SealedError if anything was altered."""
        index = 0
        while True:
            size = self._file.read(4)
            if len(size) < 4:
                raise SealedError("truncated: the final record is missing")
            (n,) = struct.unpack(">I", size)
            if n > _MAX_RECORD:
                raise SealedError("record too large")
            record = self._file.read(n)
            if len(record) != n:
                raise SealedError("truncated record")
            nonce = self._prefix + struct.pack(">I", index)
            try:
                plain = self._aead.decrypt(nonce, record, _aad(index, final=False))
                final = False
            except InvalidTag:
                try:
                    plain = self._aead.decrypt(nonce, record, _aad(index, final=True))
                except InvalidTag:
                    raise SealedError(f"record {index} fails authentication") from None
                final = True
            yield plain
            if final:
                if self._file.read(1):
                    raise SealedError("data after the final record")
                return
            index += 1


def rewrap(path: str | os.PathLike[str], keys: KeyWrapper) -> bool:
    """Move a sealed file's data key to the current master key (a new header, the same
    records); False when it is already there. Written beside the file and renamed."""
    with open(path, "rb") as f:
        reader = SealedReader(f, keys)
        if not keys.needs_rotation(reader.wrapped):
            return False
        dek = keys.unwrap_key(reader.wrapped)
        tmp = f"{os.fspath(path)}.rewrap"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(_header(keys.wrap_key(dek), reader._prefix))
            f.seek(reader.body_offset)
            while block := f.read(1024 * 1024):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)
    return True
