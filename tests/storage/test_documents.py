"""Versioned legal texts: the shipped 个人承诺书 and the rules of DocumentBook."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from server.domain.documents import DEFAULT_CONFIG_DIR, DocumentBook

CST = timezone(timedelta(hours=8))


def write(config_dir: Path, name: str, body: str) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / f"{name}.toml"
    path.write_text(body, encoding="utf-8")
    return path


def shipped_plus_newer(config_dir: Path) -> DocumentBook:
    """config/commitment.toml with a 2026.1 version appended, in a tmp config dir."""
    shipped = (DEFAULT_CONFIG_DIR / "commitment.toml").read_text(encoding="utf-8")
    write(
        config_dir,
        "commitment",
        shipped + '\n[[versions]]\nversion = "2026.1"\ntitle = "医保亲情账户个人承诺书"\n'
        'published_at = 2026-03-01T00:00:00+08:00\ntext = "新版承诺书正文"\n',
    )
    return DocumentBook.load("commitment", config_dir=config_dir)


def test_shipped_commitment_has_dated_versions_with_the_required_promises() -> None:
    book = DocumentBook.load("commitment")
    assert [v.version for v in book.versions][:2] == ["2024.1", "2025.1"]
    newest = book.current(datetime(2025, 7, 1, tzinfo=UTC))
    assert newest.version == "2025.1" and newest.title == "医保亲情账户个人承诺书"
    for phrase in ("真实", "配偶、父母或子女", "监护人", "同意", "骗保", "个人信息", "罚款"):
        assert phrase in newest.text, phrase
    assert newest.published_at == datetime(2025, 6, 1, tzinfo=CST)
    assert newest.published_at.tzinfo is not None


def test_current_by_date_at_the_exact_boundary() -> None:
    book = DocumentBook.load("commitment")
    publish = datetime(2025, 6, 1, tzinfo=CST)  # 2025-05-31T16:00Z
    assert book.current(publish - timedelta(microseconds=1)).version == "2024.1"
    assert book.current(publish).version == "2025.1"
    assert book.current(publish.astimezone(UTC)).version == "2025.1"
    assert book.current(datetime(2024, 3, 1, tzinfo=UTC)).version == "2024.1"
    with pytest.raises(LookupError):
        book.current(datetime(2023, 12, 31, 15, 59, tzinfo=UTC))  # before 2024-01-01+08:00
    with pytest.raises(ValueError, match="timezone-aware"):
        book.current(datetime(2025, 7, 1))


def test_get_and_sha256_of_the_exact_text() -> None:
    book = DocumentBook.load("commitment")
    text = book.get("2025.1")
    assert text is not None
    assert text.sha256 == hashlib.sha256(text.text.encode("utf-8")).hexdigest()
    assert book.get("2024.1") is not None and book.get("2024.1").sha256 != text.sha256  # type: ignore[union-attr]
    assert book.get("1999.1") is None


def test_sha256_covers_every_character(tmp_path: Path) -> None:
    write(
        tmp_path,
        "notice",
        '[[versions]]\nversion = "1"\ntitle = "告知书"\n'
        'published_at = "2024-07-01T00:00:00+08:00"\ntext = """第一行\n第二行 """\n',
    )
    text = DocumentBook.load("notice", config_dir=tmp_path).versions[0]
    assert text.text == "第一行\n第二行 "  # TOML trims only the first newline
    assert text.sha256 == hashlib.sha256("第一行\n第二行 ".encode()).hexdigest()
    assert text.sha256 != hashlib.sha256("第一行\n第二行".encode()).hexdigest()


def test_check_signed_current_outdated_unknown(tmp_path: Path) -> None:
    book = shipped_plus_newer(tmp_path)
    v2025 = book.get("2025.1")
    v2026 = book.get("2026.1")
    assert v2025 is not None and v2026 is not None
    before = datetime(2026, 2, 28, 12, tzinfo=CST)
    after = datetime(2026, 3, 1, tzinfo=CST)

    assert book.check_signed(version="2025.1", sha256=v2025.sha256, now=before) == "current"
    # 2026.1 published between signing and submit: the old signature is outdated
    assert book.check_signed(version="2025.1", sha256=v2025.sha256, now=after) == "outdated"
    assert book.check_signed(version="2026.1", sha256=v2026.sha256, now=after) == "current"
    # a hash that is not that version's text, an unknown version, a text not yet published
    assert book.check_signed(version="2025.1", sha256=v2026.sha256, now=before) == "unknown"
    assert book.check_signed(version="2025.1", sha256="0" * 64, now=before) == "unknown"
    assert book.check_signed(version="2027.1", sha256=v2025.sha256, now=after) == "unknown"
    assert book.check_signed(version="2026.1", sha256=v2026.sha256, now=before) == "unknown"
    # hex case does not matter
    assert book.check_signed(version="2026.1", sha256=v2026.sha256.upper(), now=after) == "current"


def test_loads_any_named_document(tmp_path: Path) -> None:
    write(
        tmp_path,
        "mutual_aid_notice",
        '[[versions]]\nversion = "2024.7"\ntitle = "共济绑定告知书"\n'
        'published_at = 2024-07-01T00:00:00+08:00\ntext = "授权人知悉并同意……"\n',
    )
    book = DocumentBook.load("mutual_aid_notice", config_dir=tmp_path)
    assert book.current(datetime(2025, 1, 1, tzinfo=UTC)).title == "共济绑定告知书"


VALID = 'version = "1"\ntitle = "t"\npublished_at = 2024-01-01T00:00:00+08:00\ntext = "x"\n'


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "at least one \\[\\[versions\\]\\]"),
        ("versions = 3\n", "at least one \\[\\[versions\\]\\]"),
        ("[[versions]\n", "invalid TOML"),
        (
            "[[versions]]\n" + VALID + "[[versions]]\n" + VALID.replace("2024", "2025"),
            "duplicate version '1'",
        ),
        (
            "[[versions]]\n" + VALID + "[[versions]]\n" + VALID.replace('"1"', '"2"'),
            "another version",
        ),
        ("[[versions]]\n" + VALID.replace("+08:00", ""), "no UTC offset"),
        (
            "[[versions]]\n" + VALID.replace("2024-01-01T00:00:00+08:00", '"next monday"'),
            "not an ISO",
        ),
        (
            "[[versions]]\n" + VALID.replace("2024-01-01T00:00:00+08:00", "2024-01-01"),
            "with an offset",
        ),
        (
            "[[versions]]\n" + VALID.replace('text = "x"', 'text = "  \\n"'),
            "text must be a non-empty",
        ),
        ("[[versions]]\n" + VALID.replace('title = "t"\n', ""), "title must be a non-empty"),
        ("[[versions]]\n" + VALID.replace('version = "1"', "version = 1"), "version must be"),
    ],
    ids=[
        "empty",
        "not-a-list",
        "bad-toml",
        "duplicate-version",
        "same-instant",
        "naive-time",
        "unparseable-time",
        "date-only",
        "blank-text",
        "no-title",
        "numeric-version",
    ],
)
def test_invalid_files_raise_a_clear_value_error(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, "broken", body)
    with pytest.raises(ValueError, match=message) as e:
        DocumentBook.load("broken", config_dir=tmp_path)
    assert str(path) in str(e.value)


def test_missing_file_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file not found"):
        DocumentBook.load("nothing_here", config_dir=tmp_path)
    for name in ("../default", "commitment.toml", "", "Commitment"):
        with pytest.raises(ValueError, match="invalid document name"):
            DocumentBook.load(name, config_dir=tmp_path)
