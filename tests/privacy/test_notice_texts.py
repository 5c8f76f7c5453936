"""The one loader of legal texts (DocumentBook) with per-purpose texts, and the 共济告知书
moved onto it (issue #10) without changing what was accepted."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from server.domain import mutual_aid
from server.domain.documents import DocumentBook
from server.settings import Settings

HEAD = 'version = "1"\ntitle = "t"\npublished_at = 2024-01-01T00:00:00+08:00\ntext = "x"\n'


def test_purposes_have_their_own_hash(tmp_path: Path) -> None:
    (tmp_path / "n.toml").write_text(
        "[[versions]]\n" + HEAD + '[[versions.purposes]]\nid = "face"\ntitle = "人脸"\ntext = "甲"\n'
        '[[versions.purposes]]\nid = "notices"\ntitle = "通知"\ntext = "乙"\n',
        encoding="utf-8",
    )
    v = DocumentBook.load("n", config_dir=tmp_path).versions[0]
    assert [p.id for p in v.purposes] == ["face", "notices"]
    face = v.purpose("face")
    assert face is not None and face.sha256 == hashlib.sha256("甲".encode()).hexdigest()
    assert v.purpose("dna") is None


@pytest.mark.parametrize(
    ("purposes", "message"),
    [
        ('[[versions.purposes]]\nid = "Face"\ntitle = "t"\ntext = "x"\n', "lower_snake_case"),
        ('[[versions.purposes]]\nid = "a"\ntitle = "t"\ntext = "x"\n' * 2, "duplicate purpose 'a'"),
        ('[[versions.purposes]]\nid = "a"\ntitle = "t"\ntext = " "\n', "text must be a non-empty"),
        ("purposes = []\n", "purposes must be a non-empty list"),
    ],
)
def test_bad_purposes_are_refused(tmp_path: Path, purposes: str, message: str) -> None:
    body = "[[versions]]\n" + HEAD + purposes
    (tmp_path / "n.toml").write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        DocumentBook.load("n", config_dir=tmp_path)


def test_mutual_aid_notice_kept_its_hash_on_the_one_loader() -> None:
    n = mutual_aid.current_notice()
    assert n.version == "2026-01"
    # the hash clients accepted before the move (the stripped text of the old file)
    assert n.sha256 == "6dd38a892f606f6b589cbce7a99c53b67fa93c0ac80e24c0de342e9227164fea"
    assert n.as_dict() == {"version": n.version, "title": n.title, "text": n.text, "sha256": n.sha256}


def test_privacy_settings_are_typed_and_named_in_the_notice(tmp_path: Path) -> None:
    config = Settings.load("test.toml", env={}).privacy
    text = DocumentBook.load("privacy_notice").versions[-1].text
    assert f"{config.materials_retention_days}日" in text
    assert config.rule("materials_retention_days") == "privacy.materials_retention_days=90"
    with pytest.raises(ValueError, match="unknown setting privacy.retention"):
        Settings.load("test.toml", env={}, overrides={"privacy.retention": 3})
    with pytest.raises(ValueError, match="materials_retention_days must be >= 1"):
        Settings.load("test.toml", env={}, overrides={"privacy.materials_retention_days": 0})
