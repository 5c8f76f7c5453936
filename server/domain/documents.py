"""Versioned legal texts the user signs or accepts: 个人承诺书, 共济绑定告知书, the privacy
notice (个人信息保护告知书). This is the one loader of them all (issue #10).

Each text lives in ``config/<name>.toml`` as a list of dated versions::

    [[versions]]
    version = "2025.1"
    title = "医保亲情账户个人承诺书"
    published_at = 2025-06-01T00:00:00+08:00   # TOML offset date-time (or an ISO string)
    text = \"\"\"...\"\"\"

    [[versions.purposes]]                      # optional: texts consented to one by one
    id = "face"
    title = "人脸识别"
    text = \"\"\"...\"\"\"

What was signed is identified by its version and the SHA-256 of the exact UTF-8 text
(SPEC.md "commitment": version, full text hash, time, who, where from, kept immutable).
A newer version published before submit makes an older signature outdated
(``COMMITMENT_OUTDATED`` — issue #3). A purpose's text has its own SHA-256, so a consent
to one purpose stays valid under a newer version whose text for that purpose is the same
(PIPL art. 14, 29: separate consent; issue #12: ask again only for what changed).
"""

from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

DEFAULT_CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of the exact UTF-8 text (what a signature or a consent refers to)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PurposeText:
    """One purpose of a notice, consented to separately (e.g. ``face``)."""

    id: str
    title: str
    text: str
    sha256: str  # hex SHA-256 of text.encode("utf-8")

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "text": self.text}


@dataclass(frozen=True)
class LegalText:
    """One published version of a legal text."""

    version: str
    title: str
    text: str
    sha256: str  # hex SHA-256 of text.encode("utf-8"), exactly as served
    published_at: datetime  # timezone-aware
    purposes: tuple[PurposeText, ...] = ()

    def purpose(self, purpose_id: str) -> PurposeText | None:
        """The text of one purpose of this version, or None."""
        for p in self.purposes:
            if p.id == purpose_id:
                return p
        return None

    def as_dict(self) -> dict[str, str]:
        """What the mini-program shows and sends back: version, title, text, sha256."""
        return {"version": self.version, "title": self.title, "text": self.text, "sha256": self.sha256}


def _aware(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{where}: published_at {value!r} is not an ISO date-time") from None
    if not isinstance(value, datetime):
        raise ValueError(f"{where}: published_at must be a date-time with an offset")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{where}: published_at {value.isoformat()} has no UTC offset")
    return value


def _text_field(entry: dict[str, Any], field: str, where: str) -> str:
    value = entry.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {field} must be a non-empty string")
    return value


def _purposes(raw: Any, where: str) -> tuple[PurposeText, ...]:
    """The ``[[versions.purposes]]`` of one version: ids unique, title and text non-empty."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: purposes must be a non-empty list of [[versions.purposes]]")
    out: list[PurposeText] = []
    for j, entry in enumerate(raw):
        at = f"{where}.purposes[{j}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{at}: must be a table")
        pid = _text_field(entry, "id", at).strip()
        if not _NAME_RE.fullmatch(pid):
            raise ValueError(f"{at}: id {pid!r} must be lower_snake_case")
        if any(p.id == pid for p in out):
            raise ValueError(f"{at}: duplicate purpose {pid!r}")
        text = _text_field(entry, "text", at)
        out.append(PurposeText(pid, _text_field(entry, "title", at).strip(), text, sha256_hex(text)))
    return tuple(out)


class DocumentBook:
    """All versions of one legal text, oldest first."""

    def __init__(self, name: str, versions: list[LegalText]) -> None:
        self.name = name
        self.versions = sorted(versions, key=lambda v: v.published_at)
        self._published = [v.published_at for v in self.versions]
        self._by_version = {v.version: v for v in self.versions}

    @classmethod
    def load(cls, name: str, *, config_dir: Path | None = None) -> DocumentBook:
        """Read and validate ``<config_dir>/<name>.toml`` (default: the repository's config/).

        Raises ``ValueError`` naming the file and the problem: missing file, bad TOML, no
        ``[[versions]]``, a missing or empty field, a published_at without an offset,
        duplicate versions or two versions published at the same instant.
        """
        if not _NAME_RE.fullmatch(name):
            raise ValueError(f"invalid document name {name!r}")
        path = (config_dir or DEFAULT_CONFIG_DIR) / f"{name}.toml"
        try:
            with path.open("rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ValueError(f"{path}: file not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: invalid TOML: {e}") from None
        entries = data.get("versions")
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: needs at least one [[versions]] table")
        versions: list[LegalText] = []
        seen_versions: set[str] = set()
        seen_times: set[datetime] = set()
        for i, entry in enumerate(entries):
            where = f"{path}: versions[{i}]"
            if not isinstance(entry, dict):
                raise ValueError(f"{where}: must be a table")
            version = _text_field(entry, "version", where).strip()
            title = _text_field(entry, "title", where).strip()
            text = _text_field(entry, "text", where)
            published_at = _aware(entry.get("published_at"), where)
            if version in seen_versions:
                raise ValueError(f"{where}: duplicate version {version!r}")
            if published_at in seen_times:
                raise ValueError(f"{where}: another version is published at {published_at}")
            seen_versions.add(version)
            seen_times.add(published_at)
            versions.append(
                LegalText(
                    version=version,
                    title=title,
                    text=text,
                    sha256=sha256_hex(text),
                    published_at=published_at,
                    purposes=_purposes(entry.get("purposes"), where),
                )
            )
        return cls(name, versions)

    def current(self, now: datetime) -> LegalText:
        """The newest version published at or before ``now`` (aware).

        Raises ``LookupError`` when no version is published yet.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        i = bisect_right(self._published, now)
        if i == 0:
            raise LookupError(f"no version of {self.name} is published at {now.isoformat()}")
        return self.versions[i - 1]

    def get(self, version: str) -> LegalText | None:
        """The version named ``version``, published or scheduled, or None."""
        return self._by_version.get(version)

    def check_signed(
        self, *, version: str, sha256: str, now: datetime
    ) -> Literal["current", "outdated", "unknown"]:
        """Whether a signature of (version, text SHA-256) is valid at ``now``.

        * ``unknown``: no such version, the hash is not that version's text, or the version
          is not published yet at ``now`` (nobody can have been shown it);
        * ``outdated``: a real, published version, but a newer one is in force — sign again
          (``COMMITMENT_OUTDATED``);
        * ``current``: the version in force at ``now``.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        text = self.get(version)
        if text is None or sha256.lower() != text.sha256 or text.published_at > now:
            return "unknown"
        return "current" if self.current(now).version == version else "outdated"


@functools.lru_cache(maxsize=8)
def shipped(name: str) -> DocumentBook:
    """The repository's ``config/<name>.toml``, loaded (and checked) once per process."""
    return DocumentBook.load(name)
