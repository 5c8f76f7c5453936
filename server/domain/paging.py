"""Cursor paging for lists (API.md v1.1: ``?cursor=&limit=`` → ``{items, next_cursor}``).

A cursor is the position of the last item served — its sort time and id — encoded
opaquely (URL-safe base64). Keyset paging: a page is "items ordered before this one",
so rows added meanwhile never shift a page and deep pages cost what the first does.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from server.domain.errors import DomainError

MAX_LIMIT = 200


def encode_cursor(at: datetime, key: str) -> str:
    raw = f"{at.isoformat()}|{key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """``(time, id)`` of the last item served; None for the first page; 422 for garbage."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key = raw.split("|", 1)
        when = datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise DomainError(
            "VALIDATION_FAILED", "翻页参数无效,请从第一页重新加载", fields={"cursor": "INVALID"}
        ) from None
    if when.tzinfo is None or not key:
        raise DomainError(
            "VALIDATION_FAILED", "翻页参数无效,请从第一页重新加载", fields={"cursor": "INVALID"}
        )
    return when, key


__all__ = ["MAX_LIMIT", "decode_cursor", "encode_cursor"]
