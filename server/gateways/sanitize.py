"""Metadata stripping as a stream: bytes in, the same document without what could identify
a person, place or device out — never holding the whole file (a JPEG segment, at most
64 KiB, is the largest piece kept; PNG chunks and JPEG scan data pass through).

* **JPEG** keeps only what decoding needs — frame headers (SOF*), Huffman / arithmetic
  tables (DHT, DAC), quantisation tables (DQT), restart interval (DRI), DNL, the JFIF
  APP0 header, an ICC colour profile (APP2 ``ICC_PROFILE``) and the Adobe APP14 colour
  transform flag — then the scan data verbatim. Drops APP1 (EXIF, XMP), APP13 (IPTC /
  Photoshop), COM, every other APPn and anything after EOI. The EXIF orientation, if
  any, is kept in a fresh minimal EXIF block holding that single tag, so phone photos
  still show upright (the segments before the first scan are held until it to insert it).
* **PNG** drops ``tEXt``, ``zTXt``, ``iTXt``, ``eXIf`` and ``tIME`` chunks; every other
  chunk is copied byte for byte (its CRC stays valid); CRCs are checked.
* **PDF** is blanked in place, byte for byte the same length (so the cross-reference
  offsets stay right and no PDF rewriter is needed): the values of the document
  information keys ``/Author /Creator /Producer /Title /Subject /Keywords /CreationDate
  /ModDate`` (literal or hex strings) become spaces, and an uncompressed XMP packet
  (``<x:xmpmeta>…</x:xmpmeta>``) becomes spaces. Not reached: an information dictionary
  inside a compressed object stream (PDF 1.5) and a Flate-compressed XMP stream —
  rewriting those needs a full PDF parser and re-compression (docs/privacy.md says so).
  Phone scanning apps write the plain forms.

Every stripper raises ``ValueError`` when the structure cannot be parsed (truncated,
bad CRC, too many segments); :func:`strip_metadata` is the whole-buffer form.
"""

from __future__ import annotations

import re
import struct
import zlib
from typing import Protocol

__all__ = ["MAX_SEGMENTS", "Stripper", "stripper_for", "strip_metadata"]

#: At most this many JPEG markers / PNG chunks: real files have tens to a few thousand
#: (8 KiB IDAT chunks); a crafted file of millions of tiny segments would otherwise cost
#: seconds of CPU.
MAX_SEGMENTS = 20_000
#: Segments kept before the first JPEG scan are held (for the orientation block) up to this.
MAX_JPEG_HEADER = 4 * 1024 * 1024
#: A PDF metadata string longer than this is not one: the file is refused as corrupt.
MAX_PDF_STRING = 64 * 1024


class Stripper(Protocol):
    def feed(self, data: bytes) -> bytes: ...

    def close(self) -> bytes: ...


def stripper_for(content_type: str) -> Stripper:
    if content_type == "image/jpeg":
        return JpegStripper()
    if content_type == "image/png":
        return PngStripper()
    if content_type == "application/pdf":
        return PdfStripper()
    raise ValueError(f"unsupported content type {content_type!r}")


def strip_metadata(data: bytes, content_type: str) -> bytes:
    """``data`` without its metadata (the module docstring), all at once."""
    s = stripper_for(content_type)
    return s.feed(data) + s.close()


# -- PNG ---------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_DROP = frozenset({b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"})


class PngStripper:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = "signature"
        self._left = 0  # data bytes of the current chunk still to pass
        self._keep = True
        self._crc = 0
        self._type = b""
        self._chunks = 0

    def feed(self, data: bytes) -> bytes:
        if self._state == "done":
            return b""  # anything after IEND is dropped
        buf = self._buf
        buf += data
        out = bytearray()
        while True:
            if self._state == "signature":
                if len(buf) < 8:
                    break
                if bytes(buf[:8]) != PNG_SIGNATURE:
                    raise ValueError("PNG: missing signature")
                out += PNG_SIGNATURE
                del buf[:8]
                self._state = "head"
            elif self._state == "head":
                if len(buf) < 8:
                    break
                length, ctype = struct.unpack_from(">I4s", buf)
                self._chunks += 1
                if self._chunks > MAX_SEGMENTS:
                    raise ValueError(f"PNG: more than {MAX_SEGMENTS} chunks")
                self._type, self._left, self._keep = ctype, length, ctype not in _PNG_DROP
                self._crc = zlib.crc32(ctype)
                if self._keep:
                    out += buf[:8]
                del buf[:8]
                self._state = "data"
            elif self._state == "data":
                if self._left:
                    if not buf:
                        break
                    take = bytes(buf[: self._left])
                    self._crc = zlib.crc32(take, self._crc)
                    if self._keep:
                        out += take
                    del buf[: len(take)]
                    self._left -= len(take)
                    continue
                self._state = "crc"
            elif self._state == "crc":
                if len(buf) < 4:
                    break
                (crc,) = struct.unpack_from(">I", buf)
                if crc != self._crc:
                    raise ValueError(f"PNG: bad CRC in chunk {self._type!r}")
                if self._keep:
                    out += buf[:4]
                del buf[:4]
                if self._type == b"IEND":
                    self._state = "done"
                    buf.clear()
                    break
                self._state = "head"
        return bytes(out)

    def close(self) -> bytes:
        if self._state != "done":
            raise ValueError("PNG: missing IEND")
        return b""


# -- JPEG --------------------------------------------------------------------------------

# markers kept before the first SOS: SOF0..SOF15 with DHT (C4), JPG (C8), DAC (CC); DQT,
# DNL, DRI
_JPEG_KEEP = frozenset(range(0xC0, 0xD0)) | {0xDB, 0xDC, 0xDD}
_SOS, _EOI = 0xDA, 0xD9
# inside scan data 0xFF is followed only by 0x00 (stuffing) or RSTn, or fills before a marker
_JPEG_MARKER_RE = re.compile(rb"\xff+[\x01-\xcf\xd8-\xfe]")


class JpegStripper:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = "soi"
        self._head: bytearray | None = bytearray()  # output held until the first scan
        self._exif_at = 2  # where a kept orientation goes: after SOI and a leading JFIF
        self._orientation: int | None = None
        self._marker = 0
        self._length = 0
        self._markers = 0

    def _emit(self, out: bytearray, data: bytes) -> None:
        if self._head is None:
            out += data
            return
        self._head += data
        if len(self._head) > MAX_JPEG_HEADER:
            raise ValueError("JPEG: headers too large")

    def feed(self, data: bytes) -> bytes:
        if self._state == "done":
            return b""  # anything after EOI (vendor trailers, previews) is dropped
        buf = self._buf
        buf += data
        out = bytearray()
        while True:
            state = self._state
            if state == "soi":
                if len(buf) < 2:
                    break
                if bytes(buf[:2]) != b"\xff\xd8":
                    raise ValueError("JPEG: missing SOI")
                self._emit(out, b"\xff\xd8")
                del buf[:2]
                self._state = "marker"
            elif state == "scan":
                m = _JPEG_MARKER_RE.search(buf)
                if m is None:  # all scan data, except 0xFF bytes that may start a marker
                    end = len(buf)
                    while end and buf[end - 1] == 0xFF:
                        end -= 1
                    out += buf[:end]
                    del buf[:end]
                    break
                out += buf[: m.start()]
                del buf[: m.start()]
                self._state = "marker"
            elif state == "marker":
                i = 0
                while i < len(buf) and buf[i] == 0xFF:  # fill bytes before a marker
                    i += 1
                if i == len(buf):
                    if i > 1:
                        del buf[: i - 1]
                    break
                if i == 0:
                    raise ValueError("JPEG: expected a marker")
                marker = buf[i]
                del buf[: i + 1]
                self._markers += 1
                if self._markers > MAX_SEGMENTS:
                    raise ValueError(f"JPEG: more than {MAX_SEGMENTS} markers")
                scanning = self._head is None
                if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
                    self._state = "scan" if scanning else "marker"
                    continue
                if marker == _EOI:
                    if not scanning:
                        raise ValueError("JPEG: no image data before EOI")
                    out += b"\xff\xd9"
                    self._state = "done"
                    buf.clear()
                    break
                self._marker = marker
                self._state = "length"
            elif state == "length":
                if len(buf) < 2:
                    break
                (self._length,) = struct.unpack_from(">H", buf)
                if self._length < 2:
                    raise ValueError("JPEG: bad segment length")
                self._state = "segment"
            elif state == "segment":
                if len(buf) < self._length:
                    break
                segment = b"\xff" + bytes([self._marker]) + bytes(buf[: self._length])
                del buf[: self._length]
                self._segment(out, self._marker, segment)
                self._state = "scan" if self._head is None else "marker"
        return bytes(out)

    def _segment(self, out: bytearray, marker: int, segment: bytes) -> None:
        payload = segment[4:]
        head = self._head
        if marker == _SOS:
            if head is not None:
                if self._orientation is not None and self._orientation != 1:
                    head[self._exif_at : self._exif_at] = _exif_orientation_segment(self._orientation)
                out += head
                self._head = None
            out += segment
        elif marker in _JPEG_KEEP:
            self._emit(out, segment)
        elif marker == 0xE0 and payload.startswith(b"JFIF\x00"):
            self._emit(out, segment)
            if head is not None and self._exif_at == 2 and len(head) == 2 + len(segment):
                self._exif_at = len(head)
        elif (marker, payload[:12]) == (0xE2, b"ICC_PROFILE\x00") or (
            marker == 0xEE and payload.startswith(b"Adobe")
        ):
            self._emit(out, segment)
        elif marker == 0xE1 and payload.startswith(b"Exif\x00\x00") and self._orientation is None:
            self._orientation = _exif_orientation(payload[6:])
        # everything else (APP1 EXIF/XMP, APP13 IPTC, COM, other APPn) is dropped

    def close(self) -> bytes:
        if self._state != "done":
            raise ValueError("JPEG: missing EOI")
        return b""


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


# -- PDF ---------------------------------------------------------------------------------

_PDF_KEYS = rb"Author|Creator|Producer|Title|Subject|Keywords|CreationDate|ModDate"
_PDF_TOKEN_RE = re.compile(
    rb"/(?:" + _PDF_KEYS + rb")[ \t\r\n\f\x00]*(?=[(<])|<x:x[am]pmeta\b"
)
_XMP_END_RE = re.compile(rb"</x:x[am]pmeta[ \t\r\n]*>")
_LITERAL_SPECIAL_RE = re.compile(rb"[\\()]")
_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_HOLD = 64  # bytes held back at the end of a piece: a token may continue in the next


class PdfStripper:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = "text"
        self._depth = 0  # literal string: parenthesis depth
        self._escape = False
        self._string = 0  # bytes of the current string so far
        self._hex = 0  # hex digits written (alternate "2", "0": spaces)

    def feed(self, data: bytes) -> bytes:
        buf = self._buf
        buf += data
        out = bytearray()
        while buf:
            state = self._state
            if state == "text":
                m = _PDF_TOKEN_RE.search(buf)
                if m is None:
                    safe = len(buf) - _HOLD
                    if safe > 0:
                        out += buf[:safe]
                        del buf[:safe]
                    break
                if m.group().startswith(b"<x:x"):
                    out += buf[: m.start()]
                    del buf[: m.start()]
                    self._state = "xmp"
                    continue
                end = m.end()
                if buf[end] == ord("("):
                    out += buf[: end + 1]
                    del buf[: end + 1]
                    self._state, self._depth, self._escape, self._string = "literal", 1, False, 0
                    continue
                if end + 1 >= len(buf):  # "<": a hex string or a dictionary "<<"?
                    break
                if buf[end + 1] == ord("<"):
                    out += buf[: end + 2]
                    del buf[: end + 2]
                    continue
                out += buf[: end + 1]
                del buf[: end + 1]
                self._state, self._string, self._hex = "hex", 0, 0
            elif state == "literal":
                self._literal(out)
            elif state == "hex":
                self._hex_string(out)
            elif state == "xmp":
                m = _XMP_END_RE.search(buf)
                if m is None:
                    blank = max(0, len(buf) - 16)  # the end tag may straddle pieces
                    out += b" " * blank
                    del buf[:blank]
                    break
                out += b" " * m.end()
                del buf[: m.end()]
                self._state = "text"
        return bytes(out)

    def _literal(self, out: bytearray) -> None:
        """Blank a literal string's content, keeping its closing parenthesis."""
        buf = self._buf
        pos = 0
        while pos < len(buf):
            if self._escape:
                self._escape = False
                pos += 1
                continue
            m = _LITERAL_SPECIAL_RE.search(buf, pos)
            if m is None:
                pos = len(buf)
                break
            pos = m.end()
            c = m.group()
            if c == b"\\":
                self._escape = True
            elif c == b"(":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    out += b" " * (pos - 1) + b")"
                    del buf[:pos]
                    self._state = "text"
                    return
        self._string += pos
        if self._string > MAX_PDF_STRING:
            raise ValueError("PDF: metadata string too long")
        out += b" " * pos
        del buf[:pos]

    def _hex_string(self, out: bytearray) -> None:
        buf = self._buf
        end = buf.find(b">")
        piece = bytes(buf if end < 0 else buf[:end])
        for c in piece:
            if c in _HEX_DIGITS:
                out.append(ord("2") if self._hex % 2 == 0 else ord("0"))
                self._hex += 1
            else:
                out.append(c)  # whitespace inside hex strings is allowed
        self._string += len(piece)
        if self._string > MAX_PDF_STRING:
            raise ValueError("PDF: metadata string too long")
        if end < 0:
            buf.clear()
            return
        # an odd count ends in "2": readers pad it with "0", a space again
        out += b">"
        del buf[: end + 1]
        self._state = "text"

    def close(self) -> bytes:
        if self._state in ("literal", "hex"):
            raise ValueError("PDF: unterminated metadata string")
        if self._state == "xmp":
            out = b" " * len(self._buf)
        else:
            out = bytes(self._buf)
        self._buf.clear()
        return out
