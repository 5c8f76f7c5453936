"""The HTTP side of errors: which status and headers each error code of API.md answers with.

The domain raises ``DomainError(code, message, fields=…, detail=…, retry_after=…)`` and
knows nothing of HTTP; the one error middleware (server/middlewares.py) and the console's
pages ask :func:`status_of` and :func:`headers_of` here. A code missing from ``STATUS``
answers 400 (tests/unit/test_error_statuses.py keeps every raised code in the table).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from server.domain.errors import Conflict, DomainError
from server.domain.family.materials import storage_refusal
from server.gateways.storage import StorageError
from server.gateways.wechat import WeChatError

__all__ = ["GATEWAY_ERRORS", "STATUS", "Unauthenticated", "from_gateway", "headers_of", "status_of"]


def _table(groups: Mapping[int, tuple[str, ...]]) -> Mapping[str, int]:
    table: dict[str, int] = {}
    for status, codes in groups.items():
        for code in codes:
            assert code not in table, f"{code} has two statuses"
            table[code] = status
    return MappingProxyType(table)


STATUS: Mapping[str, int] = _table(
    {
        400: ("MALFORMED_JSON", "MALFORMED_MULTIPART"),
        401: (
            "UNAUTHORIZED", "LOGIN_FAILED", "TOKEN_EXPIRED", "TOKEN_INVALID", "SESSION_REVOKED",
            "REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED",
            "WECHAT_CODE_INVALID", "WECHAT_CODE_USED", "WECHAT_LOGIN_FAILED",
            # the institutions' signed webhook (institution_api/signing.py)
            "SIGNATURE_MISSING", "SIGNATURE_INVALID", "TIMESTAMP_EXPIRED", "NONCE_INVALID",
            "NONCE_REPLAYED", "INSTITUTION_UNKNOWN",
        ),
        403: (
            "FORBIDDEN", "CSRF_FAILED", "CONSENT_REQUIRED", "REALNAME_REQUIRED",
            "BINDER_NOT_VERIFIED", "AUTHORIZER_NOT_VERIFIED", "VOUCHER_PASSWORD_WRONG",
            "DOWNLOAD_LINK_EXPIRED", "DOWNLOAD_LINK_INVALID",
        ),
        404: (
            "NOT_FOUND", "BINDING_NOT_FOUND", "AUTHORIZATION_NOT_FOUND", "INSTITUTION_NOT_FOUND", "MATERIAL_NOT_FOUND",
            "MEMBER_NOT_FOUND", "PERSON_NOT_FOUND", "PURPOSE_NOT_FOUND", "SETTLEMENT_NOT_FOUND",
        ),
        409: (
            "APPLICATION_CLAIMED", "APPLICATION_STATE_CONFLICT", "BINDING_NOT_ACTIVE",
            "CORRECTION_UNAVAILABLE", "CREDIT_ROW_CHANGED", "IDENTITY_IN_USE",
            "INSUFFICIENT_BALANCE", "NOTICE_NOT_RETRYABLE", "PRIVACY_NOTICE_OUTDATED",
            "REALNAME_ALREADY_VERIFIED", "SETTLEMENT_CONFLICT", "VOUCHER_INVALID",
            "VOUCHER_PASSWORD_NOT_SET", "ACCOUNT_BEING_DELETED", "VOUCHER_ALREADY_ACTIVATED",
            # disk-fill limits on uploads (server/domain/family/quota.py)
            "MATERIAL_LIMIT_REACHED", "SIGNATURE_LIMIT_REACHED", "UPLOAD_QUOTA_EXCEEDED",
            # binding and authorization rules (server/domain/reasons.py)
            "ALREADY_AUTHORIZED", "ALREADY_BOUND", "AUTHORIZER_LIMIT", "AUTHORIZER_NOT_EMPLOYEE",
            "COMMITMENT_OUTDATED", "COMMITMENT_REQUIRED", "CORRECTION_REQUESTED",
            "CROSS_PROVINCE_NOT_ALLOWED", "CROSS_PROVINCE_QUOTA_REQUIRED", "FAMILY_SIZE_LIMIT",
            "MATERIALS_MISSING", "MATERIALS_REJECTED", "MEMBER_LIMIT_REACHED",
            "MEMBER_NOT_ACTIVATED", "MEMBER_NOT_INSURED", "MINOR_DOCUMENTS_MISSING",
            "MONTHLY_BINDER_LIMIT", "NOTICE_OUTDATED", "NOTICE_REQUIRED", "NO_PERSONAL_ACCOUNT",
            "OUTSIDE_POOLING_AREA", "UNBIND_LOCKED",
        ),
        408: ("REQUEST_TIMEOUT",),
        413: ("PAYLOAD_TOO_LARGE", "MATERIAL_TOO_LARGE"),
        415: ("UNSUPPORTED_MEDIA_TYPE",),
        422: (
            "VALIDATION_FAILED", "AMOUNTS_INCONSISTENT", "COMMITMENT_MISMATCH", "INSTITUTION_REQUIRED",
            "INVALID_FIELD", "INVALID_INSTITUTION_CODE", "INVALID_OVERLAP", "INVALID_REGION_CODE",
            "MATERIAL_CORRUPT", "MATERIAL_EMPTY", "MEMBER_IDENTIFIER_REQUIRED",
            "PRIVACY_NOTICE_MISMATCH", "QUOTA_NOT_APPLICABLE", "REASON_REQUIRED",
            "VOUCHER_PASSWORD_REQUIRED", "VOUCHER_PASSWORD_WEAK",
            # uploaded CSV files (server/domain/csvio.py, server/bulk/source.py)
            "CSV_INVALID", "BULK_CSV_INVALID", "REGISTRY_CSV_INVALID", "RECONCILE_FILE_INVALID",
            "CREDIT_FILE_INVALID", "CREDIT_FILE_REFUSED",
            # binding and authorization rules (server/domain/reasons.py)
            "FACE_CHECK_FAILED", "INFO_MISMATCH", "INVALID_ID_NUMBER", "RELATIONSHIP_NOT_ALLOWED",
            "SELF_NOT_ALLOWED",
        ),
        423: ("VOUCHER_PASSWORD_LOCKED",),
        429: ("RATE_LIMITED", "WECHAT_RATE_LIMITED"),
        503: ("SERVICE_UNAVAILABLE", "SYSTEM_BUSY", "WECHAT_UNAVAILABLE"),
        507: ("STORAGE_FULL",),
    }
)

# Codes of the mini-program's bearer tokens (server/domain/auth.py): a 401 names its scheme.
_BEARER_CODES = frozenset(
    {"TOKEN_EXPIRED", "TOKEN_INVALID", "SESSION_REVOKED", "REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED"}
)


class Unauthenticated(DomainError):
    """The HTTP layer's own refusal of a request without valid credentials: answered 401 with
    ``WWW-Authenticate: <challenge>`` (the bearer token, the institutions' HMAC signature)."""

    def __init__(
        self, code: str, message: str, *, challenge: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(code, message)
        self.challenge = challenge
        self.headers = dict(headers or {})  # e.g. X-Server-Time with a refused timestamp


# A gateway's own error that no use case translated (they normally do): what it means to
# the client. The one place the HTTP side knows the gateways' error types.
GATEWAY_ERRORS = (WeChatError, StorageError)


def from_gateway(exc: Exception) -> DomainError:
    """The domain error a client sees for a gateway error that reached the middleware."""
    if isinstance(exc, StorageError):
        try:
            return storage_refusal(exc)
        except StorageError:  # a kind of storage error nobody has worded yet
            return DomainError("SERVICE_UNAVAILABLE", "文件服务暂不可用,请稍后再试", retry_after=5)
    if isinstance(exc, WeChatError) and exc.transient:  # busy, quota, network, 5xx
        return DomainError("WECHAT_UNAVAILABLE", "微信服务暂不可用,请稍后重试", retry_after=5)
    return DomainError("WECHAT_UNAVAILABLE", "微信服务暂时无法完成该操作,请稍后重试")


def status_of(err: DomainError) -> int:
    """The HTTP status of a domain error."""
    if isinstance(err, Conflict):
        return 409  # whatever the rule's own status elsewhere
    return STATUS.get(err.code, 400)


def headers_of(err: DomainError) -> dict[str, str]:
    """The response headers a domain error adds (``Retry-After``, ``WWW-Authenticate``)."""
    headers: dict[str, str] = {}
    if isinstance(err, Unauthenticated):
        headers["WWW-Authenticate"] = err.challenge
        headers.update(err.headers)
    elif err.code in _BEARER_CODES:
        headers["WWW-Authenticate"] = "Bearer"
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    if err.code == "REQUEST_TIMEOUT":  # the body never came: this connection is done
        headers["Connection"] = "close"
    return headers
