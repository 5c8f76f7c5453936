"""Every table of config/default.toml is typed: unknown tables and keys, and values of the
wrong type, are refused at start, naming where they came from."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from server.settings import CONFIG_DIR, Settings, SettingsError


def test_every_table_of_default_toml_is_a_typed_field() -> None:
    with open(CONFIG_DIR / "default.toml", "rb") as f:
        tables = set(tomllib.load(f))
    typed = {f.name for f in fields(Settings)}
    assert tables <= typed, tables - typed
    s = Settings.load("test.toml", env={})
    # values reach the typed fields (the feature tables read with .get() before)
    assert s.family.identity_checks_per_ip == 200
    assert s.auth.revocation_cache_seconds == 2.0 and isinstance(s.auth.revocation_cache_seconds, float)
    assert s.institution_api.cache_seconds == 5.0
    assert s.review.reviewers == {"demo": "demo-reviewer-token"}
    assert s.push.kinds["reversal"].oa_template == "DEMO_OA_REVERSAL"
    assert s.push.med_types["11"] == "普通门诊"
    assert s.policy.file == ""


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[famliy]\nupload_dir = 'x'\n", "unknown settings table famliy"),
        ("[family]\nupload_dirr = 'x'\n", "unknown setting family.upload_dirr"),
        ("[push.kinds.reversal]\noa_tempalte = 'x'\n", "unknown setting push.kinds.reversal.oa_tempalte"),
        ("[auth]\nlogins_per_ip_per_minute = 'many'\n", "auth.logins_per_ip_per_minute must be an integer"),
        ("[server]\ndemo_data = 1\n", "server.demo_data must be true or false"),
        ("[server]\nport = true\n", "server.port must be an integer"),
        ("[review]\nreviewers = 'nobody'\n", "review.reviewers must look like"),
        ("[review.reviewers]\nann = 5\n", "review.reviewers.ann must be a string"),
        ("family = 3\n", "family must be a table"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "local.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(SettingsError) as refused:
        Settings.load("test.toml", str(path), env={})
    assert str(refused.value).startswith(f"{path}: ")
    assert message in str(refused.value)


def test_environment_values_are_parsed_or_refused_naming_the_variable() -> None:
    assert Settings.load("test.toml", env={"PORT": "9000", "DEMO_DATA": "yes"}).server.port == 9000
    with pytest.raises(SettingsError, match="environment variable PORT: server.port must be an integer"):
        Settings.load("test.toml", env={"PORT": "eighty"})
    with pytest.raises(SettingsError, match="environment variable RUN_WORKER: .* true or false"):
        Settings.load("test.toml", env={"RUN_WORKER": "sometimes"})

