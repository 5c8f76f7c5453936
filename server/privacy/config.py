"""The ``[privacy]`` table of config/default.toml: ``settings.privacy``, typed and
checked at start (server/feature_settings.py)."""

from __future__ import annotations

from server.feature_settings import PrivacySettings as PrivacyConfig

__all__ = ["PrivacyConfig"]
