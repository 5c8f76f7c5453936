"""Fixtures of the privacy tests, borrowed by name: the signed-in hospital of the money
tests, the console (staff pages) of the console tests."""

from tests.console.conftest import capp, console, console_settings  # noqa: F401
from tests.money.conftest import institution  # noqa: F401
