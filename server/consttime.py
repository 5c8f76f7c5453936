"""Constant-time equality of secrets (signatures, tokens, MACs) from untrusted input.

``hmac.compare_digest`` on two ``str`` raises ``TypeError`` when either holds a non-ASCII
character — a header or query value an attacker chose (``X-Signature: é…``) turned every
check into a 500. :func:`same` compares the UTF-8 bytes instead: never raises, never
short-circuits. Every comparison of a secret goes through it; the security matrix
(tests/security/test_signatures.py) forbids ``==`` / ``!=`` on such values.
"""

from __future__ import annotations

import hmac

__all__ = ["same"]


def same(a: str | bytes, b: str | bytes) -> bool:
    """``a == b`` in time independent of where they differ (lengths may show)."""
    left = a.encode("utf-8", "surrogatepass") if isinstance(a, str) else a
    right = b.encode("utf-8", "surrogatepass") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
