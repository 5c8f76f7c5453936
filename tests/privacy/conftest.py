"""Fixtures of the privacy tests: the signed-in hospital of the money tests."""

from tests.money.conftest import institution  # noqa: F401  (a fixture, used by name)
