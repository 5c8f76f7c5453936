"""Fault tests reuse the 亲情账户 tests' ``make_client`` (the service with settings overridden)."""

from tests.family.conftest import make_client

__all__ = ["make_client"]
