"""Short-lived signed download links (the files listed in ``GET /api/v1/me/export``).

A link names one stored file of one user and carries its own proof, like an object
store's pre-signed URL: ``/api/v1/me/files/{kind}/{id}?u=<user>&exp=<unix>&sig=<hex>``,
``sig`` = HMAC-SHA256 over ``kind|id|user|exp`` with a key derived from the PII hash key
(its own label: a link signature is never a blind index). It works without the bearer
token (a phone hands it to a download manager or a chat) and only until ``exp``
(``[privacy] export_link_seconds``); the file is checked to still be the user's when used.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

from server.consttime import same
from server.domain.clock import Clock, utc_now
from server.domain.errors import DomainError

__all__ = ["KINDS", "LinkSigner", "SignedLink"]

KINDS = frozenset({"material", "signature"})
_LABEL = b"qinqing:export-download-link:v1"


@dataclass(frozen=True)
class SignedLink:
    url: str  # path and query, relative to the server
    expires_at: int  # unix seconds


class LinkSigner:
    """Makes and checks download links; ``ttl`` seconds each."""

    def __init__(self, hash_key: str, *, ttl: int, prefix: str = "/api/v1/me/files", clock: Clock | None = None) -> None:
        self._key = hmac.new(hash_key.encode(), _LABEL, hashlib.sha256).digest()
        self.ttl = ttl
        self.prefix = prefix
        self.clock: Clock = clock or utc_now

    def _sig(self, kind: str, object_id: str, user_id: int, exp: int) -> str:
        msg = f"{kind}|{object_id}|{user_id}|{exp}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    def sign(self, kind: str, object_id: str, user_id: int) -> SignedLink:
        if kind not in KINDS:
            raise ValueError(f"unknown file kind {kind!r}")
        exp = int(self.clock().timestamp()) + self.ttl
        query = urlencode({"u": user_id, "exp": exp, "sig": self._sig(kind, object_id, user_id, exp)})
        return SignedLink(f"{self.prefix}/{kind}/{object_id}?{query}", exp)

    def verify(self, kind: str, object_id: str, *, user: str, exp: str, sig: str) -> int:
        """The user id the link was made for; 403 when forged, altered or expired."""
        try:
            user_id, expires = int(user), int(exp)
        except ValueError:
            raise _invalid() from None
        if kind not in KINDS or not same(
            sig.lower(), self._sig(kind, object_id, user_id, expires)
        ):
            raise _invalid()
        if expires < self.clock().timestamp():
            raise DomainError(
                "DOWNLOAD_LINK_EXPIRED", "下载链接已过期,请重新导出个人数据后再下载"
            )
        return user_id


def _invalid() -> DomainError:
    return DomainError("DOWNLOAD_LINK_INVALID", "下载链接无效")
