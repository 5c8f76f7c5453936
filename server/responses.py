"""JSON responses as the clients read them: UTF-8 Chinese as is (no \\u escapes), compact."""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any, Mapping

from aiohttp import web

dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)


def _document_headers(content_type: str) -> dict[str, str]:
    disposition = (
        'attachment; filename="material.pdf"' if content_type == "application/pdf" else "inline"
    )
    return {
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self'",
        "Content-Disposition": disposition,
        # the console's page headers too: a streamed body's headers leave before any
        # middleware could add them
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
    }


async def stream_document(
    request: web.Request, content_type: str, chunks: AsyncIterator[bytes]
) -> web.StreamResponse:
    """An uploaded material served back (already stripped of metadata), the body written
    chunk by chunk as storage decrypts it (never the whole file in memory): never cached,
    never content-sniffed, and never live content: ``Content-Security-Policy: sandbox``
    runs no script, and a PDF (which may carry JavaScript) is an attachment to download,
    never shown inline in our pages (issue #17 finding 14)."""
    resp = web.StreamResponse(headers=_document_headers(content_type))
    resp.content_type = content_type
    try:
        await resp.prepare(request)
        async for chunk in chunks:
            await resp.write(chunk)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]  # storage streams are async generators
    await resp.write_eof()
    return resp
