"""Typed settings: config/default.toml, optional overlays, then the environment.

Order (later wins): ``config/default.toml`` → each file in ``CONFIG_FILE`` (comma
separated) → environment variables (table in the README). ``Settings.load()`` never
reads globals at import time; the app factory receives the resulting object.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from server.feature_settings import (
    AuthSettings,
    BotSettings,
    FamilySettings,
    InstitutionApiSettings,
    LimitsSettings,
    PolicySettings,
    PrivacySettings,
    PushSettings,
    ReviewSettings,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "config"

# env var → dotted settings path (type taken from the default value)
ENV_MAP: dict[str, str] = {
    "APP_ENV": "server.env",
    "HOST": "server.host",
    "PORT": "server.port",
    "DATA_DIR": "server.data_dir",
    "DEMO_DATA": "server.demo_data",
    "RUN_WORKER": "server.run_worker",
    "TRUSTED_PROXIES": "server.trusted_proxies",  # "127.0.0.1,10.0.0.0/8" (server/proxy.py)
    "DATABASE_URL": "database.url",
    "DATABASE_SCHEMA": "database.schema",
    "REDIS_URL": "redis.url",
    "WECHAT_API_BASE": "wechat.api_base",
    "WECHAT_MP_APPID": "wechat.mp_appid",
    "WECHAT_MP_SECRET": "wechat.mp_secret",
    "WECHAT_OA_APPID": "wechat.oa_appid",
    "WECHAT_OA_SECRET": "wechat.oa_secret",
    "WECHAT_OA_TOKEN": "wechat.oa_token",
    "WECHAT_OA_ENCODING_AES_KEY": "wechat.oa_encoding_aes_key",
    "WECHAT_OA_PREVIOUS_ENCODING_AES_KEY": "wechat.oa_previous_encoding_aes_key",
    "JWT_CURRENT_KID": "jwt.current_kid",
    "JWT_KEYS": "jwt.keys",  # "kid1:secret1,kid2:secret2"
    "PII_CURRENT_KID": "pii.current_kid",
    "PII_KEYS": "pii.keys",  # "kid1:base64key,kid2:base64key"
    "PII_HASH_KEY": "pii.hash_key",
    "PUSH_METRICS_PORT": "push.metrics_port",  # the worker's /metrics (README "Push delivery")
}


@dataclass(frozen=True)
class ServerSettings:
    env: str = "local"
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str = "data"
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 8_388_608
    demo_data: bool = True
    run_worker: bool = True
    trusted_proxies: str = ""  # reverse proxies whose X-Real-IP is the client (server/proxy.py)
    # slow and numerous clients (server/serving.py; issue #17 finding 10)
    max_connections: int = 4096
    header_timeout_s: float = 15.0
    body_timeout_s: float = 120.0


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    schema: str = "migrate"


@dataclass(frozen=True)
class RedisSettings:
    url: str = ""


@dataclass(frozen=True)
class WeChatSettings:
    api_base: str = ""
    mp_appid: str = ""
    mp_secret: str = ""
    oa_appid: str = ""
    oa_secret: str = ""
    oa_token: str = ""
    oa_encoding_aes_key: str = ""
    oa_previous_encoding_aes_key: str = ""
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class FaceSettings:
    """WeChat 人脸核身 (server/domain/face_check.py): WeChat itself is the face service."""

    max_age_seconds: int = 600  # a check's finish_time at most this old (API.md: 10 minutes)
    sessions_per_window: int = 10  # face sessions (getuseridkey) a user opens per window
    sessions_window_seconds: int = 600


@dataclass(frozen=True)
class JwtSettings:
    current_kid: str = "k1"
    keys: Mapping[str, str] = field(default_factory=dict)
    issuer: str = "qinqing-yibao"
    audience: str = "miniapp"
    access_ttl_seconds: int = 900
    refresh_ttl_seconds: int = 2_592_000


@dataclass(frozen=True)
class PiiSettings:
    current_kid: str = "p1"
    keys: Mapping[str, str] = field(default_factory=dict)
    hash_key: str = ""


@dataclass(frozen=True)
class InstitutionSettings:
    demo_code: str = "H00001"
    demo_name: str = "演示人民医院"
    demo_region: str = "420100"
    demo_secret: str = ""
    signature_window_seconds: int = 300


@dataclass(frozen=True)
class ConsoleSettings:
    """The bureau's console at /review/ (docs/console.md): staff sessions and limits."""

    idle_timeout_seconds: int = 900  # a session unused this long ends
    session_max_seconds: int = 43_200  # and any session ends after this long
    secure_cookies: bool = True  # Secure cookies (browsers accept them on http://127.0.0.1)
    login_failures_per_name: int = 5  # failed logins per staff name per window, then 429
    login_failures_per_ip: int = 30  # failed logins per client address per window, then 429
    login_failure_window_seconds: int = 900
    claim_seconds: int = 900  # a reviewer's claim on an application expires after this
    counter_lookups_per_hour: int = 120  # registry look-ups per counter clerk
    # argon2id cost (argon2-cffi defaults: RFC 9106's second recommended profile)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65_536
    argon2_parallelism: int = 4
    # the password of the demo staff (demo-admin, demo-reviewer, demo-counter), created only
    # while server.demo_data is on; production refuses demo data and demo staff
    demo_staff_password: str = "demo-console-password"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    wechat: WeChatSettings = field(default_factory=WeChatSettings)
    face: FaceSettings = field(default_factory=FaceSettings)
    jwt: JwtSettings = field(default_factory=JwtSettings)
    pii: PiiSettings = field(default_factory=PiiSettings)
    institution: InstitutionSettings = field(default_factory=InstitutionSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    # the tables features own (server/feature_settings.py)
    auth: AuthSettings = field(default_factory=AuthSettings)
    institution_api: InstitutionApiSettings = field(default_factory=InstitutionApiSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    family: FamilySettings = field(default_factory=FamilySettings)
    bot: BotSettings = field(default_factory=BotSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    push: PushSettings = field(default_factory=PushSettings)

    # -- derived -----------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        p = Path(self.server.data_dir)
        return p if p.is_absolute() else ROOT / p

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite://{self.data_path / 'qinqing.sqlite3'}"

    @property
    def is_production(self) -> bool:
        return self.server.env == "production"

    # -- loading -----------------------------------------------------------------
    @classmethod
    def load(
        cls,
        *files: str | Path,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Merge default.toml, ``files``, ``CONFIG_FILE`` files, the environment, ``overrides``.

        Each layer is checked on its own first, so an unknown table or key, or a value of
        the wrong type, is refused naming the file (or variable) it came from."""
        env = os.environ if env is None else env
        default = CONFIG_DIR / "default.toml"
        data = cls._checked(_read_toml(default), str(default))
        extra_files = [*files, *[f for f in env.get("CONFIG_FILE", "").split(",") if f.strip()]]
        for f in extra_files:
            path = Path(f) if Path(f).is_absolute() else _resolve(f)
            _deep_merge(data, cls._checked(_read_toml(path), str(path)))
        for var, dotted in ENV_MAP.items():
            if var in env and env[var] != "":
                layer: dict[str, Any] = {}
                _set_path(layer, dotted, env[var])
                _deep_merge(data, cls._checked(layer, f"environment variable {var}"))
        layer = {}
        for dotted, value in (overrides or {}).items():
            _set_path(layer, dotted, value)
        _deep_merge(data, cls._checked(layer, "overrides"))
        settings = cls._from_dict(data)
        settings.validate()
        return settings

    @classmethod
    def _checked(cls, layer: dict[str, Any], source: str) -> dict[str, Any]:
        """``layer`` when it would load on its own (unknown names, wrong types: the error
        names ``source``)."""
        try:
            cls._from_dict(layer)
        except SettingsError as exc:
            raise SettingsError(f"{source}: {exc}") from None
        return layer

    @classmethod
    def _from_dict(cls, data: Mapping[str, Any]) -> Settings:
        return typed_table(cls, data, "")

    def validate(self) -> None:
        """Refuse unusable or, in production, demo configuration."""
        self.privacy.validate()
        if self.jwt.current_kid not in self.jwt.keys:
            raise ValueError("jwt.current_kid names no key in jwt.keys")
        if self.pii.current_kid not in self.pii.keys:
            raise ValueError("pii.current_kid names no key in pii.keys")
        parse_networks(self.server.trusted_proxies)  # a ValueError names a bad entry
        if self.database.schema not in ("migrate", "generate", "none"):
            raise ValueError("database.schema must be migrate, generate or none")
        if not self.is_production:
            return
        problems: list[str] = []
        secrets = {
            "wechat.mp_secret": self.wechat.mp_secret,
            "wechat.oa_secret": self.wechat.oa_secret,
            "wechat.oa_token": self.wechat.oa_token,
            "pii.hash_key": self.pii.hash_key,
            "institution.demo_secret": self.institution.demo_secret,
        }
        secrets.update({f"jwt.keys.{k}": v for k, v in self.jwt.keys.items()})
        defaults = _read_toml(CONFIG_DIR / "default.toml")
        for k, v in defaults.get("pii", {}).get("keys", {}).items():
            if self.pii.keys.get(k) == v:
                problems.append(f"pii.keys.{k} is the demo key")
        for name, value in secrets.items():
            if name == "institution.demo_secret" and not value:
                continue
            if not value or "demo" in value.lower() or "change-me" in value.lower():
                problems.append(f"{name} is a demo or empty secret")
        # [review] reviewers (the old static bearer tokens) answer nothing in production:
        # staff log in with their own accounts (review_console, issue #14).
        if not self.console.secure_cookies:
            problems.append("console.secure_cookies must be true in production")
        if self.console.argon2_memory_kib < 19_456 or self.console.argon2_time_cost < 2:
            problems.append("console.argon2_* is below the OWASP minimum (19 MiB, 2 passes)")
        if self.console.idle_timeout_seconds > 3600:
            problems.append("console.idle_timeout_seconds must be at most 3600 in production")
        if self.wechat.oa_encoding_aes_key == defaults["wechat"]["oa_encoding_aes_key"]:
            problems.append("wechat.oa_encoding_aes_key is the demo key")
        # plain mode: WeChat's signature does not cover the body (issue #17 finding 4)
        if not self.wechat.oa_encoding_aes_key and not self.bot.allow_plain_mode:
            problems.append(
                "wechat.oa_encoding_aes_key is empty (plain mode): configure safe mode, or set "
                "bot.allow_plain_mode = true"
            )
        if not self.wechat.api_base or _is_loopback(self.wechat.api_base):
            problems.append("wechat.api_base must point at WeChat in production")
        for name, appid in (("mp_appid", self.wechat.mp_appid), ("oa_appid", self.wechat.oa_appid)):
            if appid == defaults["wechat"][name] or not appid.startswith("wx"):
                problems.append(f"wechat.{name} is the demo or not a WeChat appid")
        if not self.database.url.startswith(("postgres://", "postgresql://", "asyncpg://")):
            problems.append("database.url must be PostgreSQL in production")
        if not self.redis.url:
            problems.append("redis.url is required in production")
        if self.server.demo_data:
            problems.append("server.demo_data must be false in production")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))


def _is_loopback(url: str) -> bool:
    """True for a URL on this machine (our fakes listen there; WeChat never does)."""
    host = (urlsplit(url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _resolve(name: str | Path) -> Path:
    p = Path(name)
    if p.exists():
        return p
    return CONFIG_DIR / p


def _read_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


class SettingsError(ValueError):
    """A setting that cannot be used: an unknown table or key, or a value of the wrong type."""


T = TypeVar("T")


def typed_table(klass: type[T], raw: object, name: str, **fixed: Any) -> T:
    """A settings table as the dataclass ``klass`` (every field with a default): unknown
    keys are refused, values are converted to the field's annotated type (``str``,
    ``int``, ``float``, ``bool``, ``Mapping[str, X]``, a nested table) or refused;
    ``fixed`` fields come from elsewhere (not settable in the table)."""
    where = f"[{name}]" if name else "the top level"
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{name} must be a table")
    hints = get_type_hints(klass)  # a dataclass: its fields, with their types
    values: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}" if name else str(key)
        if key in fixed or key not in hints:
            kind = "setting" if name else "settings table"
            raise SettingsError(f"unknown {kind} {dotted} (not a field of {where})")
        values[key] = _convert(value, hints[key], dotted)
    return klass(**values, **fixed)


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _convert(value: Any, hint: Any, name: str) -> Any:
    """``value`` as the annotated type ``hint`` (``str``, ``int``, ``float``, ``bool``,
    ``tuple[X, ...]``, ``Mapping[str, X]``, a nested table). Environment variables arrive as strings:
    they are parsed ("true"/"false", numbers, ``kid:secret,kid2:secret2`` tables)."""
    if isinstance(hint, type) and is_dataclass(hint):
        return typed_table(hint, value, name)
    if get_origin(hint) is tuple:  # tuple[X, ...]: a TOML array
        (item_type, _) = get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{name} must be an array (got {type(value).__name__})")
        return tuple(_convert(item, item_type, f"{name}[{i}]") for i, item in enumerate(value))
    if get_origin(hint) is Mapping:
        key_type, value_type = get_args(hint)
        if isinstance(value, str):  # "kid:secret,kid2:secret2"
            pairs = [item.split(":", 1) for item in value.split(",") if item.strip()]
            if any(len(p) != 2 for p in pairs):
                raise SettingsError(f"{name} must look like kid:secret,kid2:secret2")
            value = {k.strip(): v.strip() for k, v in pairs}
        if not isinstance(value, Mapping):
            raise SettingsError(f"{name} must be a table (got {type(value).__name__})")
        return {
            _convert(k, key_type, name): _convert(v, value_type, f"{name}.{k}")
            for k, v in value.items()
        }
    if hint not in _TYPE_NAMES:
        raise TypeError(f"{name}: settings of type {hint!r} are not supported")
    expected = f"{name} must be {_TYPE_NAMES[hint]} (got {type(value).__name__})"
    if isinstance(value, str) and hint is not str:
        text = value.strip()
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise SettingsError(expected)
        try:
            return hint(text)
        except ValueError:
            raise SettingsError(expected) from None
    if isinstance(value, bool) != (hint is bool):  # TOML true is no number, 1 no boolean
        raise SettingsError(expected)
    if hint is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, hint):
        raise SettingsError(expected)
    return value


# -- [server] trusted_proxies (server/proxy.py reads requests through them) ------------
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` → networks; a ValueError names a bad entry."""
    out: list[Network] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"server.trusted_proxies: {item!r} is no address or network") from None
    return tuple(out)
