"""Domain errors: one exception type that the error middleware turns into API.md's envelope."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule said no.

    ``code`` is the UPPER_SNAKE code of API.md, ``message`` the Chinese text shown to the
    user, ``status`` the HTTP status the error middleware answers with, ``fields`` the
    per-field codes of a 422, ``headers`` extra response headers (e.g. ``Retry-After``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields
        self.headers = headers or {}
        self.detail = detail

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        if self.detail:
            body.update(self.detail)
        return {"error": body}
