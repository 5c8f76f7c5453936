"""The ``[push]`` table of config/default.toml, typed and checked at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from server.push.templates import is_keyword
from server.settings import Settings, typed_table

__all__ = ["KindTemplates", "PushConfig"]


@dataclass(frozen=True)
class KindTemplates:
    """Template ids and keyword maps of one notice kind (config ``[push.kinds.<kind>]``)."""

    oa_template: str
    mp_template: str
    oa_data: Mapping[str, str]
    mp_data: Mapping[str, str]


@dataclass(frozen=True)
class PushConfig:
    """The ``[push]`` table of config/default.toml, typed."""

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
    mp_appid: str = ""
    send_timeout_seconds: float = 5.0
    med_types: Mapping[str, str] = field(default_factory=dict)
    kinds: Mapping[str, KindTemplates] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> PushConfig:
        raw = dict(settings.section("push"))
        kinds = {
            name: KindTemplates(
                oa_template=str(table.get("oa_template", "")),
                mp_template=str(table.get("mp_template", "")),
                oa_data=dict(table.get("oa_data", {})),
                mp_data=dict(table.get("mp_data", {})),
            )
            for name, table in dict(raw.pop("kinds", {})).items()
        }
        med_types = {str(k): str(v) for k, v in dict(raw.pop("med_types", {})).items()}
        config = typed_table(
            cls, raw, "push",
            mp_appid=settings.wechat.mp_appid,
            send_timeout_seconds=settings.wechat.timeout_seconds,
            med_types=med_types,
            kinds=kinds,
        )
        config.validate()
        return config

    @property
    def send_budget_seconds(self) -> float:
        """The longest one send may take, token refresh and its one retry included."""
        return 4 * self.send_timeout_seconds

    def validate(self) -> None:
        """Refuse settings that would stall or spin the worker."""
        margin = self.send_budget_seconds + 1
        if self.lease_seconds <= margin:
            # a chunk is only sent with more than this left on its lease
            raise ValueError(
                f"push.lease_seconds must exceed 4 × wechat.timeout_seconds + 1 = {margin:g}"
            )
        for name in ("batch_size", "lanes", "max_attempts", "rate_burst", "breaker_threshold"):
            if getattr(self, name) < 1:
                raise ValueError(f"push.{name} must be >= 1")
        if self.rate_per_second <= 0 or self.backoff_base_seconds <= 0:
            raise ValueError("push.rate_per_second and push.backoff_base_seconds must be > 0")
        for kind, t in self.kinds.items():
            for key in (*t.oa_data, *t.mp_data):
                if not is_keyword(key):
                    raise ValueError(f"push.kinds.{kind}: {key!r} is not a WeChat keyword")

    def mp_templates(self) -> set[str]:
        return {k.mp_template for k in self.kinds.values() if k.mp_template}
