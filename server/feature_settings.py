"""The settings tables that features own: ``[auth]``, ``[institution_api]``, ``[policy]``,
``[review]``, ``[limits]``, ``[family]``, ``[bot]``, ``[privacy]`` and ``[push]`` of config/default.toml.

Plain frozen dataclasses (every field has a default, the value of default.toml), read by
``server.settings.typed_table`` like the core tables of ``server/settings.py``: a key that
is not a field here is refused at start, naming the file and the key; a value of the wrong
type likewise. Nothing here imports a feature: the features read ``settings.<table>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "AuthSettings",
    "BotSettings",
    "FamilySettings",
    "InstitutionApiSettings",
    "LimitsSettings",
    "PolicySettings",
    "PrivacySettings",
    "PushKindSettings",
    "PushSettings",
    "ReviewSettings",
]


@dataclass(frozen=True)
class AuthSettings:
    """Mini-program sessions (server/domain/auth.py)."""

    # how long a process trusts Redis's "this login is not revoked"; 0: ask on every request
    revocation_cache_seconds: float = 2.0
    logins_per_ip_per_minute: int = 120  # wx.login code exchanges per client address


@dataclass(frozen=True)
class InstitutionApiSettings:
    """The hospitals' signed webhook (institution_api/)."""

    cache_seconds: float = 5.0  # how long an institution row (active flag, secret) is reused


@dataclass(frozen=True)
class LimitsSettings:
    """Write budgets per caller, per route, per minute (server/write_limits.py)."""

    user_writes_per_minute: int = 60  # a logged-in mini-program user
    anonymous_writes_per_minute: int = 120  # login / refresh, per client address
    reviewer_writes_per_minute: int = 120  # the demo reviewer tokens
    institution_writes_per_minute: int = 60000  # a signed hospital / pharmacy
    console_writes_per_minute: int = 300  # the console's forms, per client address


@dataclass(frozen=True)
class PolicySettings:
    """The policy engine (server/domain/policy.py)."""

    file: str = ""  # empty: config/policy.toml


@dataclass(frozen=True)
class ReviewSettings:
    """DEMO ONLY: the old static bearer tokens of /api/v1/review (name → token); they answer
    nothing in production, where staff log in at /review/ with their own accounts."""

    reviewers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FamilySettings:
    """亲情账户 (server/domain/family/): uploads and per-user abuse limits (count per window)."""

    upload_dir: str = ""  # empty: {data_dir}/uploads
    max_material_bytes: int = 8_388_608
    applications_per_window: int = 30
    applications_window_seconds: int = 3600
    submits_per_window: int = 60
    submits_window_seconds: int = 3600
    vouchers_per_window: int = 30
    vouchers_window_seconds: int = 60
    # the identity-guessing budget (server/domain/guessing.py), per user and per address
    identity_checks_per_user: int = 30
    identity_checks_per_ip: int = 200
    identity_checks_window_seconds: int = 86_400
    # disk-fill limits on uploads (server/domain/family/quota.py)
    max_materials_per_application: int = 12
    max_materials_per_kind: int = 4
    # kinds that are one sheet: a new upload replaces the application's earlier one
    single_material_kinds: tuple[str, ...] = ("id_card_front", "id_card_back", "birth_certificate")
    max_signatures_per_application: int = 10
    upload_budget_bytes: int = 104_857_600
    uploads_per_hour: int = 60


@dataclass(frozen=True)
class BotSettings:
    """The official-account bot (bot/service.py)."""

    timestamp_window_seconds: int = 300
    reply_budget_seconds: float = 4.0
    dedupe_ttl_seconds: int = 60
    retry_wait_seconds: float = 4.0
    dialogue_ttl_seconds: int = 600
    rate_limit_per_minute: int = 20
    diagnosis_days: int = 30
    max_body_bytes: int = 65_536
    # plain-mode pushes (no signature over the body) are accepted only when no
    # EncodingAESKey is configured or this is true; production refuses to start in plain
    # mode without it (server/settings.py)
    allow_plain_mode: bool = False
    # global budgets (all followers together) for WeChat user/info look-ups and for new
    # follower rows; beyond them a push is still answered, with no look-up and no new row
    user_info_per_minute: int = 120
    user_info_per_hour: int = 3000
    new_followers_per_minute: int = 120
    new_followers_per_hour: int = 3000
    # the menu's mini-program page; the mini-program's appid is wechat.mp_appid
    miniprogram_path: str = "pages/index/index"


@dataclass(frozen=True)
class PrivacySettings:
    """Retention, export links and the privacy job (server/privacy/, docs/privacy.md)."""

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


@dataclass(frozen=True)
class PushKindSettings:
    """Template ids and keyword maps of one notice kind (``[push.kinds.<kind>]``)."""

    oa_template: str = ""
    mp_template: str = ""
    oa_data: Mapping[str, str] = field(default_factory=dict)
    mp_data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PushSettings:
    """Notice delivery (server/push/; its ``PushConfig`` adds what comes from ``[wechat]``)."""

    lease_seconds: float = 60.0
    batch_size: int = 200
    lanes: int = 2
    max_attempts: int = 8
    backoff_base_seconds: float = 2.0
    backoff_cap_seconds: float = 600.0
    rate_per_second: float = 200.0
    rate_burst: int = 200
    idle_poll_seconds: float = 1.0
    queue_gauge_seconds: float = 5.0
    breaker_threshold: int = 10
    breaker_open_seconds: float = 5.0
    breaker_open_cap_seconds: float = 120.0
    token_early_refresh_seconds: float = 240.0
    force_refresh_per_day: int = 20
    force_refresh_interval_seconds: float = 30.0
    metrics_port: int = 9108
    mp_page: str = "pages/notices/index"
    miniprogram_state: str = "formal"
    subscription_report_limit: int = 30
    med_types: Mapping[str, str] = field(default_factory=dict)
    kinds: Mapping[str, PushKindSettings] = field(default_factory=dict)
