"""The current user: profile, a copy of everything held about them (PIPL art. 45), the
files that copy links to."""

from __future__ import annotations

from aiohttp import web

from miniapp_api.schemas import AccountDeletedOut, FileLinkQuery, MeOut
from server import keys
from server.domain import users
from server.domain.clock import utc_now
from server.openapi import endpoint
from server.privacy import export as privacy_export
from server.responses import json_response, stream_document

#: Pieces of the export are gathered up to this size before one write to the socket.
EXPORT_WRITE_BYTES = 32 * 1024


@endpoint(summary="当前用户", response=MeOut, tags=("me",))
async def get_me(request: web.Request) -> web.Response:
    out = await users.profile(request[keys.user_id_key], pii=request.config_dict[keys.pii_key])
    return json_response(out)


@endpoint(
    summary="注销账户:撤回全部授权,解除绑定和共济授权,删除或匿名化个人信息(202,说明保留了什么及原因)",
    response=AccountDeletedOut,
    status=202,
    tags=("me", "privacy"),
)
async def delete_me(request: web.Request) -> web.Response:
    out = await request.config_dict[keys.deletion_key].delete_account(request[keys.user_id_key])
    return json_response(out, status=202)


@endpoint(summary="导出我的全部个人数据(JSON,分段写出;材料附限时下载链接)", tags=("me", "privacy"))
async def export(request: web.Request) -> web.StreamResponse:
    pieces = privacy_export.export(
        request[keys.user_id_key],
        pii=request.config_dict[keys.pii_key],
        links=request.config_dict[keys.links_key],
        now=utc_now(),
    )
    first = await anext(pieces)  # errors before the first piece still answer as JSON
    resp = web.StreamResponse(
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Content-Disposition": 'attachment; filename="my-data.json"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    await resp.prepare(request)
    buffer = bytearray(first.encode())
    async for piece in pieces:
        buffer += piece.encode()
        if len(buffer) >= EXPORT_WRITE_BYTES:
            await resp.write(bytes(buffer))
            buffer.clear()
    await resp.write(bytes(buffer))
    await resp.write_eof()
    return resp


@endpoint(
    summary="下载导出数据中列出的文件(限时签名链接,无需登录凭证)",
    query=FileLinkQuery,
    auth=False,
    tags=("me", "privacy"),
    errors=("DOWNLOAD_LINK_INVALID", "DOWNLOAD_LINK_EXPIRED", "MATERIAL_NOT_FOUND"),
)
async def download(request: web.Request, query: FileLinkQuery) -> web.StreamResponse:
    kind, object_id = request.match_info["kind"], request.match_info["object_id"]
    user_id = request.config_dict[keys.links_key].verify(
        kind, object_id, user=query.u, exp=query.exp, sig=query.sig
    )
    content_type, chunks = await privacy_export.download(
        kind, object_id, user_id, storage=request.config_dict[keys.storage_key]
    )
    return await stream_document(request, content_type, chunks)
