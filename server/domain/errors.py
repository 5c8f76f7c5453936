"""Domain errors: what a rule refused, in API.md's terms, without HTTP.

The one error middleware turns them into API.md's envelope; the HTTP status and headers
of each code are decided there (server/http_errors.py), never here.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule said no.

    ``code`` is the UPPER_SNAKE code of API.md, ``message`` the Chinese text shown to the
    user, ``fields`` the per-field codes of invalid input, ``detail`` extra members of the
    error body (e.g. ``fix``), ``retry_after`` the seconds after which trying again may
    succeed (rate limits, lock-outs, a busy dependency).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        detail: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fields = fields
        self.detail = detail
        self.retry_after = retry_after

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        if self.detail:
            body.update(self.detail)
        return {"error": body}

    def conflict(self, message: str, detail: dict[str, Any]) -> Conflict:
        """This rule's refusal as a conflict with the state of things (see :class:`Conflict`)."""
        return Conflict(
            self.code, message, fields=self.fields, detail=detail, retry_after=self.retry_after
        )


class Conflict(DomainError):
    """A rule's refusal met as a conflict with the state of things, whatever the rule's own
    error would be elsewhere: a submit that decided the application (it failed, or needs
    the binder's action; ``detail`` carries the new state), a counter binding its precheck
    refused. The code is the rule's."""
