"""Personal-data encryption, blind indexes, masking, and settings loading."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.exceptions import InvalidTag

from server.domain.pii import PiiCipher, mask_id, mask_name, mask_phone, scrub
from server.settings import Settings
from tests.factories import production_env


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def test_encrypt_roundtrip_is_randomised_and_bound_to_purpose() -> None:
    c = PiiCipher({"a": _key()}, "a", "h" * 32)
    t1, t2 = c.encrypt("张三华", purpose="name"), c.encrypt("张三华", purpose="name")
    assert t1 != t2 and "张三华" not in t1 and t1.startswith("a$")
    assert c.decrypt(t1, purpose="name") == "张三华"
    with pytest.raises(InvalidTag):
        c.decrypt(t1, purpose="id_number")  # a name cannot be replayed as another field


def test_key_rotation_keeps_old_values_readable() -> None:
    old, new = _key(), _key()
    before = PiiCipher({"k1": old}, "k1", "h" * 32)
    token = before.encrypt("13812345678", purpose="phone")
    after = PiiCipher({"k1": old, "k2": new}, "k2", "h" * 32)
    assert after.decrypt(token, purpose="phone") == "13812345678"
    assert after.needs_rotation(token)
    assert after.encrypt("x").startswith("k2$") and not after.needs_rotation(after.encrypt("x"))


def test_tampered_ciphertext_is_refused() -> None:
    c = PiiCipher({"a": _key()}, "a", "h" * 32)
    kid, payload = c.encrypt("secret").split("$")
    raw = bytearray(base64.b64decode(payload))
    raw[-1] ^= 1
    with pytest.raises(InvalidTag):
        c.decrypt(kid + "$" + base64.b64encode(bytes(raw)).decode())


def test_blind_index_is_keyed_normalised_and_purpose_scoped() -> None:
    a = PiiCipher({"a": _key()}, "a", "key-one-0123456789")
    b = PiiCipher({"a": _key()}, "a", "key-two-0123456789")
    assert a.blind_index("11010119900307123x", purpose="id") == a.blind_index(" 11010119900307123X", purpose="id")
    assert a.blind_index("x", purpose="id") != b.blind_index("x", purpose="id")
    assert a.blind_index("x", purpose="id") != a.blind_index("x", purpose="name")


def test_masks() -> None:
    assert mask_name("张三华") == "张*华" and mask_name("张三") == "张*" and mask_name("欧阳娜娜") == "欧**娜"
    assert mask_id("110101199003071234") == "1101**********1234"
    assert mask_phone("13812345678") == "138****5678"
    assert scrub("身份证420102199003071232,电话13812345678") == "身份证4201**********1232,电话138****5678"


def test_environment_overrides_toml() -> None:
    s = Settings.load(env={"PORT": "9090", "REDIS_URL": "redis://127.0.0.1:1/0", "JWT_KEYS": "k1:" + "s" * 40})
    assert s.server.port == 9090 and s.redis.url == "redis://127.0.0.1:1/0"
    assert dict(s.jwt.keys) == {"k1": "s" * 40}


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="true or false"):
        Settings.load(env={"DEMO_DATA": "maybe"})
    with pytest.raises(ValueError, match="current_kid"):
        Settings.load(env={"JWT_CURRENT_KID": "nope"})


def test_production_accepts_real_secrets() -> None:
    env = {**production_env(), "PII_KEYS": "p1:" + _key()}
    with pytest.raises(ValueError, match="institution.demo_secret"):
        Settings.load(env=env)  # the demo institution secret still comes from default.toml
    s = Settings.load(env=env, overrides={"institution.demo_secret": "", "review.reviewers": {"ann": "r" * 32}})
    assert s.is_production
    real = {"institution.demo_secret": "", "review.reviewers": {"ann": "r" * 32}}
    # the demo mini-program appid (what the menu would open) and a WeChat on loopback
    # (a fake) are refused in production
    with pytest.raises(ValueError, match="wechat.mp_appid is the demo") as refused:
        Settings.load(env={**env, "WECHAT_MP_APPID": "wxdemo_mp"}, overrides=real)
    assert "oa_appid" not in str(refused.value)
    with pytest.raises(ValueError, match="wechat.api_base must point at WeChat"):
        Settings.load(env={**env, "WECHAT_API_BASE": "http://127.0.0.1:9999"}, overrides=real)


def test_feature_tables_are_typed_and_refuse_unknown_keys() -> None:
    """[bot] and [push] go through the same typed_table as the core sections."""
    from bot.service import BotConfig
    from server.push.config import PushConfig
    from server.settings import typed_table

    bot = typed_table(BotConfig, {"reply_budget_seconds": 3, "rate_limit_per_minute": "5"}, "bot")
    assert bot.reply_budget_seconds == 3.0 and isinstance(bot.reply_budget_seconds, float)
    assert bot.rate_limit_per_minute == 5
    with pytest.raises(ValueError, match="unknown setting bot.rate_limit"):
        typed_table(BotConfig, {"rate_limit": 5}, "bot")
    with pytest.raises(ValueError, match="unknown setting push.mp_appid"):
        # fields that come from elsewhere cannot be set in the table
        PushConfig.from_settings(Settings.load(env={}, overrides={"push.mp_appid": "x"}))
