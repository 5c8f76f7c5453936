"""Tiny valid JPEG / PNG / PDF files built byte by byte, with and without metadata."""

from __future__ import annotations

import struct
import zlib


def segment(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment: FF marker, big-endian length (incl. itself), payload."""
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _dht(table_class_id: int, symbol: int) -> bytes:
    # One code of length 1 ("0") for a single symbol.
    return segment(0xC4, bytes([table_class_id]) + bytes([1] + [0] * 15) + bytes([symbol]))


JFIF = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
DQT = segment(0xDB, b"\x00" + b"\x01" * 64)
SOF0 = segment(0xC0, b"\x08" + struct.pack(">HH", 8, 8) + b"\x01" + b"\x01\x11\x00")
DHT_DC = _dht(0x00, 0x00)
DHT_AC = _dht(0x10, 0x00)
SOS = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
# One 8x8 grey block: DC difference category 0 ("0"), then EOB ("0"), padded with 1 bits.
SCAN = b"\x3f"
SOI, EOI = b"\xff\xd8", b"\xff\xd9"

#: A valid 8x8 baseline greyscale JPEG without metadata.
JPEG = SOI + JFIF + DQT + SOF0 + DHT_DC + DHT_AC + SOS + SCAN + EOI


def exif(orientation: int | None = None) -> bytes:
    """An APP1 EXIF segment (little-endian TIFF): Make (identifying text) and Orientation."""
    make = b"SECRET-PHONE GPS 30.59N 114.30E\x00"
    count = 2 if orientation is not None else 1
    make_at = 8 + 2 + 12 * count + 4  # the Make string follows IFD0
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", count)
    tiff += struct.pack("<HHII", 0x010F, 2, len(make), make_at)
    if orientation is not None:
        tiff += struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff += struct.pack("<I", 0) + make
    return segment(0xE1, b"Exif\x00\x00" + tiff)


XMP = segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>owner SECRET</x:xmpmeta>")
IPTC = segment(0xED, b"Photoshop 3.0\x008BIM secret-caption")
COM = segment(0xFE, "拍摄者 李四".encode())


def jpeg_with_metadata(orientation: int | None = None) -> bytes:
    return (
        SOI
        + JFIF
        + exif(orientation)
        + XMP
        + IPTC
        + COM
        + DQT
        + SOF0
        + DHT_DC
        + DHT_AC
        + SOS
        + SCAN
        + EOI
        + b"trailer SECRET after EOI"
    )


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


PNG_SIG = b"\x89PNG\r\n\x1a\n"
IHDR = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))  # 1x1 grey
IDAT = png_chunk(b"IDAT", zlib.compress(b"\x00\x80"))
IEND = png_chunk(b"IEND", b"")
#: A valid 1x1 greyscale PNG without metadata.
PNG = PNG_SIG + IHDR + IDAT + IEND


def png_with_metadata() -> bytes:
    return (
        PNG_SIG
        + IHDR
        + png_chunk(b"tEXt", b"Author\x00SECRET")
        + png_chunk(b"tIME", b"\x07\xe9\x01\x02\x03\x04\x05")
        + png_chunk(b"eXIf", b"MM\x00*SECRET")
        + IDAT
        + png_chunk(b"iTXt", b"Comment\x00\x00\x00\x00\x00SECRET")
        + IEND
    )


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
