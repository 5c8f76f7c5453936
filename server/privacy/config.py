"""The ``[privacy]`` table of config/default.toml, typed and checked at start."""

from __future__ import annotations

from dataclasses import dataclass

from server.settings import Settings, typed_table

__all__ = ["PrivacyConfig"]


@dataclass(frozen=True)
class PrivacyConfig:
    """Retention, export links and the privacy job (docs/privacy.md)."""

    # Uploaded materials of a decided application (bound, failed, unbound, cancelled) are
    # purged this many days after the decision (PIPL art. 19). Never while under review,
    # waiting for the binder (needs_action) or for a correction.
    materials_retention_days: int = 90
    # Materials of an application never submitted, this many days after its last change.
    draft_retention_days: int = 90
    # How often the privacy job runs (retention purge, unfinished deletions), seconds.
    job_interval_seconds: float = 3600.0
    # Materials purged per database round of the job.
    job_batch: int = 200
    # A deletion still ``started`` this long after its last attempt is finished by the job.
    deletion_resume_after_seconds: float = 60.0
    # Download links in GET /me/export stay valid this long, seconds.
    export_link_seconds: int = 600

    @classmethod
    def from_settings(cls, settings: Settings) -> PrivacyConfig:
        config = typed_table(cls, settings.section("privacy"), "privacy")
        config.validate()
        return config

    def validate(self) -> None:
        for name in ("materials_retention_days", "draft_retention_days", "job_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"privacy.{name} must be >= 1")
        if self.job_interval_seconds <= 0 or self.deletion_resume_after_seconds < 0:
            raise ValueError("privacy.job_interval_seconds must be > 0")
        if not 30 <= self.export_link_seconds <= 86_400:
            raise ValueError("privacy.export_link_seconds must be between 30 and 86400")

    def rule(self, name: str) -> str:
        """``privacy.<name>=<value>``: the setting a purge followed, for its log row."""
        return f"privacy.{name}={getattr(self, name)}"
