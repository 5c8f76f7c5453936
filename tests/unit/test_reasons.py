"""The failure-reason catalogue: complete, Chinese, formattable, mapped to HTTP."""

from __future__ import annotations

import re

import pytest

from server.domain.errors import DomainError
from server.domain.reasons import API_BINDING_CODES, REASONS, Reason, error, reason
from server.http_errors import STATUS, headers_of, status_of

MUTUAL_AID_CODES = (
    "AUTHORIZER_NOT_EMPLOYEE",
    "NO_PERSONAL_ACCOUNT",
    "MEMBER_NOT_INSURED",
    "FAMILY_SIZE_LIMIT",
    "AUTHORIZER_LIMIT",
    "CROSS_PROVINCE_NOT_ALLOWED",
    "UNBIND_LOCKED",
    "NOTICE_REQUIRED",
    "NOTICE_OUTDATED",
    "SELF_NOT_ALLOWED",
    "ALREADY_AUTHORIZED",
)
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_api_and_mutual_aid_code_is_catalogued() -> None:
    missing = [c for c in (*API_BINDING_CODES, *MUTUAL_AID_CODES) if c not in REASONS]
    assert missing == []


@pytest.mark.parametrize("code", sorted(REASONS))
def test_entries_are_chinese_and_format_with_defaults(code: str) -> None:
    r = reason(code)
    assert isinstance(r, Reason)
    assert r.code == code
    assert re.fullmatch(r"[A-Z][A-Z_]+", code)
    assert CJK.search(r.message) and CJK.search(r.fix)
    assert "{" not in r.message + r.fix, "an unfilled placeholder"
    assert STATUS[code] in (403, 409, 422, 503)  # the HTTP layer knows every code
    if STATUS[code] == 422:
        assert r.field is not None


def test_format_params() -> None:
    assert "5名" in reason("MEMBER_LIMIT_REACHED").message
    assert "6名" in reason("MEMBER_LIMIT_REACHED", limit=6).message
    r = reason("RELATIONSHIP_NOT_ALLOWED", relationship="孙子女", allowed="配偶、父母、子女")
    assert "「孙子女」" in r.message and "配偶、父母、子女" in r.message
    assert "2025-09-01" in reason("UNBIND_LOCKED", months=3, unlock_date="2025-09-01").fix


def test_statuses() -> None:
    assert status_of(error("BINDER_NOT_VERIFIED")) == 403
    assert status_of(error("INVALID_ID_NUMBER")) == 422
    assert status_of(error("MEMBER_LIMIT_REACHED")) == 409
    assert status_of(error("MONTHLY_BINDER_LIMIT")) == 409
    assert status_of(error("SYSTEM_BUSY")) == 503


def test_error_builds_a_domain_error() -> None:
    err = error("INVALID_ID_NUMBER")
    assert isinstance(err, DomainError)
    assert (err.code, status_of(err)) == ("INVALID_ID_NUMBER", 422)
    assert err.fields == {"id_number": "INVALID_ID_NUMBER"}
    assert err.to_body()["error"]["fix"] == REASONS["INVALID_ID_NUMBER"].fix
    limit = error("MEMBER_LIMIT_REACHED", limit=5)
    assert status_of(limit) == 409 and limit.fields is None and "5" in limit.message
    busy = error("SYSTEM_BUSY")
    assert status_of(busy) == 503 and headers_of(busy) == {"Retry-After": "30"}
    decided = limit.conflict("已达上限", {"state": "failed"})  # a submit that decided the application
    assert status_of(decided) == 409 and decided.to_body()["error"]["state"] == "failed"


def test_unknown_code() -> None:
    with pytest.raises(KeyError):
        reason("NOPE")
