"""The ``[push]`` table of config/default.toml (``settings.push``), with what push takes
from ``[wechat]``, checked at start."""

from __future__ import annotations

from dataclasses import dataclass, fields

from server.feature_settings import PushKindSettings as KindTemplates
from server.feature_settings import PushSettings
from server.push.templates import is_keyword
from server.settings import Settings

__all__ = ["KindTemplates", "PushConfig"]


@dataclass(frozen=True)
class PushConfig(PushSettings):
    """``[push]`` (server/feature_settings.py), plus the two values that come from ``[wechat]``."""

    mp_appid: str = ""
    send_timeout_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> PushConfig:
        table = {f.name: getattr(settings.push, f.name) for f in fields(PushSettings)}
        config = cls(
            **table,
            mp_appid=settings.wechat.mp_appid,
            send_timeout_seconds=settings.wechat.timeout_seconds,
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
