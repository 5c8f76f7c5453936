"""Identity documents: format and checksum validation, birth date and sex extraction.

Pure functions, no I/O. ``parse_id`` is the single place that decides whether an
``id_type`` / ``id_number`` pair is well formed (API.md ``id_type`` values); it never
says whether the person exists (that is the insurance registry's job).

Formats accepted
----------------
* ``resident_id`` 居民身份证: 18 characters, GB 11643-1999 — 6-digit region code
  (plausible province prefix), birth date YYYYMMDD at [6:14], 3-digit sequence (odd =
  male), ISO 7064 MOD 11-2 check digit (``X`` for 10). First-generation 15-digit cards
  stopped being valid in 2013 and are refused.
* ``hk_mo_tw_residence_permit`` 港澳台居民居住证: same structure and checksum, region
  prefix 810000 (Hong Kong), 820000 (Macao) or 830000 (Taiwan).
* ``foreign_permanent_resident`` 外国人永久居留身份证: the 2023 card is 18 digits
  starting with ``9`` (9 + 2-digit province + 3-digit nationality + YYYYMMDD + 3-digit
  sequence + GB 11643 check digit); the 2017 card is 15 characters, 3 letters (ISO 3166
  alpha-3 nationality) + 12 digits. Only the 2023 form yields a birth date.
* ``birth_certificate`` 出生医学证明编号: one series letter + 9 digits (e.g. ``P510012345``).
* ``hk_mo_travel_permit`` 港澳居民来往内地通行证: ``H`` (Hong Kong) or ``M`` (Macao) +
  8 digits (2013 card) or + 10 digits (older booklet number).
* ``tw_travel_permit`` 台湾居民来往大陆通行证: 8 digits (2015 card).
* ``passport`` 护照: 5–17 letters/digits with at least one digit (foreign passports vary).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Literal

from server.domain.errors import DomainError

ID_TYPES: tuple[str, ...] = (
    "resident_id",
    "birth_certificate",
    "hk_mo_tw_residence_permit",
    "hk_mo_travel_permit",
    "tw_travel_permit",
    "passport",
    "foreign_permanent_resident",
)

ID_TYPE_LABELS: dict[str, str] = {
    "resident_id": "居民身份证",
    "birth_certificate": "出生医学证明",
    "hk_mo_tw_residence_permit": "港澳台居民居住证",
    "hk_mo_travel_permit": "港澳居民来往内地通行证",
    "tw_travel_permit": "台湾居民来往大陆通行证",
    "passport": "护照",
    "foreign_permanent_resident": "外国人永久居留身份证",
}

# Document types issued on the mainland to mainland residents; everything else is a
# "non-mainland document" for the policy's review rules.
MAINLAND_ID_TYPES: frozenset[str] = frozenset({"resident_id", "birth_certificate"})

Sex = Literal["M", "F"]

# GB 11643-1999 weights W_i = 2^(17-i) mod 11 and the check character for sum mod 11.
_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"

# Province-level prefixes of GB/T 2260 (plus 71 Taiwan, 81 Hong Kong, 82 Macao).
PROVINCE_PREFIXES: frozenset[str] = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
RESIDENCE_PERMIT_PREFIXES: dict[str, str] = {"HK": "810000", "MO": "820000", "TW": "830000"}
_PERMIT_AREAS = frozenset(RESIDENCE_PERMIT_PREFIXES.values())

_MIN_BIRTH = date(1900, 1, 1)

_RE_18 = re.compile(r"\d{17}[\dX]")
_RE_BIRTH_CERT = re.compile(r"[A-Z]\d{9}")
_RE_HK_MO_PERMIT = re.compile(r"[HM](\d{8}|\d{10})")
_RE_TW_PERMIT = re.compile(r"\d{8}")
_RE_PASSPORT = re.compile(r"(?=.*\d)[A-Z0-9]{5,17}")
_RE_FOREIGN_OLD = re.compile(r"[A-Z]{3}\d{12}")


@dataclass(frozen=True)
class IdDocument:
    """A well-formed identity document number (existence is not checked here)."""

    id_type: str
    id_number: str  # normalized: NFKC, stripped, upper case
    birth_date: date | None
    sex: Sex | None

    @property
    def label(self) -> str:
        return ID_TYPE_LABELS[self.id_type]

    @property
    def is_mainland(self) -> bool:
        return self.id_type in MAINLAND_ID_TYPES


def gb11643_check_digit(first17: str) -> str:
    """The GB 11643-1999 (ISO 7064 MOD 11-2) check character for 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("first17 must be exactly 17 ASCII digits")
    # sum(d_i * W_i) with W_i = 2^(17-i) mod 11 is 2 * sum(d_i * 2^(16-i)); and 13 ≡ 2
    # (mod 11), so the inner sum is int(first17, 13) mod 11: one C call instead of 17
    # multiplications (tests/unit/test_identity.py checks it against the weights)
    return _CHECK_CHARS[int(first17, 13) * 2 % 11]


def age_on(birth_date: date, on: date) -> int:
    """Full years (周岁) reached on ``on``.

    The birthday counts: someone born 2008-05-10 is 16 on 2024-05-10. A 29 February
    birthday is reached on 1 March in common years (the later choice, so a minimum-age
    rule never applies a day early).
    """
    years = on.year - birth_date.year
    if (on.month, on.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def normalize_id_number(id_number: str) -> str:
    """Full-width to half-width (NFKC), surrounding whitespace removed, upper case."""
    return unicodedata.normalize("NFKC", id_number).strip().upper()


def _invalid(id_type: str, why: str) -> DomainError:
    label = ID_TYPE_LABELS.get(id_type, "证件")
    return DomainError(
        "INVALID_ID_NUMBER",
        f"{label}号码不正确:{why}",
        fields={"id_number": "INVALID_ID_NUMBER"},
    )


def _birth_from(yyyymmdd: str, id_type: str, today: date) -> date:
    try:
        born = date(int(yyyymmdd[0:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        raise _invalid(id_type, "号码中的出生日期不存在") from None
    if born > today:
        raise _invalid(id_type, "号码中的出生日期晚于今天")
    if born < _MIN_BIRTH:
        raise _invalid(id_type, "号码中的出生日期早于1900年")
    return born


def _parse_gb11643(number: str, id_type: str, today: date) -> tuple[date, str]:
    """Shared checks of the 18-character GB 11643 layout; returns (birth date, check-ok number)."""
    if len(number) != 18:
        raise _invalid(id_type, f"应为18位,实际为{len(number)}位")
    if not _RE_18.fullmatch(number):
        raise _invalid(id_type, "前17位应为数字,最后一位为数字或X")
    born = _birth_from(number[6:14], id_type, today)
    if gb11643_check_digit(number[:17]) != number[17]:
        raise _invalid(id_type, "校验位不符,请逐位核对")
    return born, number


def _sex_from_sequence(number: str) -> Sex:
    return "M" if int(number[16]) % 2 == 1 else "F"


def parse_id(id_type: str, id_number: str, *, today: date) -> IdDocument:
    """Validate and normalize an ID document number.

    Raises ``DomainError("INVALID_FIELD", …, 422, fields={"id_type": "INVALID_CHOICE"})``
    for an unknown ``id_type`` and ``DomainError("INVALID_ID_NUMBER", …, 422,
    fields={"id_number": "INVALID_ID_NUMBER"})`` for a malformed number.
    """
    if id_type not in ID_TYPES:
        raise DomainError(
            "INVALID_FIELD",
            "不支持的证件类型",
            fields={"id_type": "INVALID_CHOICE"},
        )
    number = normalize_id_number(id_number)
    if not number:
        raise _invalid(id_type, "号码不能为空")
    if not number.isascii():
        # NFKC leaves Arabic-Indic, Devanagari … digits as they are, and str.isdigit / int()
        # accept them: an ID number is ASCII or it is no ID number (issue #17 finding 8)
        raise _invalid(id_type, "号码只能包含数字和英文字母")

    if id_type == "resident_id":
        if len(number) == 15 and number.isdigit():
            raise _invalid(id_type, "15位旧身份证已停止使用,请填写18位号码")
        born, number = _parse_gb11643(number, id_type, today)
        if number[:2] not in PROVINCE_PREFIXES or number[:6] in RESIDENCE_PERMIT_PREFIXES.values():
            raise _invalid(id_type, "前6位地区码无效")
        return IdDocument(id_type, number, born, _sex_from_sequence(number))

    if id_type == "hk_mo_tw_residence_permit":
        born, number = _parse_gb11643(number, id_type, today)
        if number[:6] not in RESIDENCE_PERMIT_PREFIXES.values():
            raise _invalid(id_type, "应以810000、820000或830000开头")
        return IdDocument(id_type, number, born, _sex_from_sequence(number))

    if id_type == "foreign_permanent_resident":
        if len(number) == 15:
            if not _RE_FOREIGN_OLD.fullmatch(number):
                raise _invalid(id_type, "旧版应为3位字母加12位数字")
            return IdDocument(id_type, number, None, None)
        if not number.startswith("9"):
            raise _invalid(id_type, "新版应为以9开头的18位号码")
        born, number = _parse_gb11643(number, id_type, today)
        # The sex coding of the sequence number is not documented for this card: unknown.
        return IdDocument(id_type, number, born, None)

    pattern = {
        "birth_certificate": (_RE_BIRTH_CERT, "应为1位字母加9位数字"),
        "hk_mo_travel_permit": (_RE_HK_MO_PERMIT, "应为H或M加8位或10位数字"),
        "tw_travel_permit": (_RE_TW_PERMIT, "应为8位数字"),
        "passport": (_RE_PASSPORT, "应为5至17位字母或数字"),
    }[id_type]
    if not pattern[0].fullmatch(number):
        raise _invalid(id_type, pattern[1])
    return IdDocument(id_type, number, None, None)


class CanonicalResidentIds:
    """A quick yes of ``parse_id`` for bulk loads (server/bulk: millions of rows).

    ``accepts(number)`` is True only when ``parse_id("resident_id", number, today=today)``
    accepts ``number`` exactly as written (already normalised: 18 ASCII characters, upper
    case). False means "not decided here": the caller asks ``parse_id``, which accepts
    another spelling (full-width digits, a lower-case x, spaces) or says what is wrong.
    The same rules in the same order as ``parse_id``; tests/unit/test_identity.py holds
    the two to agreeing.
    """

    def __init__(self, today: date) -> None:
        self.today = today
        # the valid birth dates met so far (YYYYMMDD): at most ~46,000 days since 1900
        self._births: set[str] = set()

    def accepts(self, number: str) -> bool:
        if len(number) != 18 or not number.isascii():
            return False
        first17 = number[:17]
        if not first17.isdigit() or _CHECK_CHARS[int(first17, 13) * 2 % 11] != number[17]:
            return False
        if number[:2] not in PROVINCE_PREFIXES or number[:6] in _PERMIT_AREAS:
            return False
        ymd = number[6:14]
        if ymd in self._births:
            return True
        try:
            born = date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:]))
        except ValueError:
            return False
        if not _MIN_BIRTH <= born <= self.today:
            return False
        self._births.add(ymd)
        return True


# --- test and demo data helpers -------------------------------------------------------


def _with_sex(seq: str, sex: Sex | None) -> str:
    if len(seq) != 3 or not seq.isdigit():
        raise ValueError("seq must be 3 digits")
    if sex is None:
        return seq
    last = int(seq[2])
    if (last % 2 == 1) != (sex == "M"):
        last ^= 1  # flip parity, stays a digit (0↔1, …, 8↔9)
    return seq[:2] + str(last)


def make_resident_id(
    region: str = "110101",
    birth: date = date(1980, 1, 1),
    seq: str = "123",
    sex: Sex | None = None,
) -> str:
    """A valid 18-digit number with this region, birth date and sex (for tests / demo data).

    ``sex`` adjusts the parity of the last sequence digit; ``None`` keeps ``seq`` as is.
    Also builds residence-permit numbers when ``region`` is 810000/820000/830000.
    """
    if len(region) != 6 or not region.isdigit():
        raise ValueError("region must be 6 digits")
    first17 = f"{region}{birth:%Y%m%d}{_with_sex(seq, sex)}"
    return first17 + gb11643_check_digit(first17)


def make_residence_permit(
    origin: Literal["HK", "MO", "TW"] = "HK",
    birth: date = date(1980, 1, 1),
    seq: str = "123",
    sex: Sex | None = None,
) -> str:
    """A valid 港澳台居民居住证 number."""
    return make_resident_id(RESIDENCE_PERMIT_PREFIXES[origin], birth, seq, sex)


def make_foreign_permanent_id(
    province: str = "11",
    nationality: str = "840",
    birth: date = date(1980, 1, 1),
    seq: str = "123",
) -> str:
    """A valid 2023-form 外国人永久居留身份证 number (9 + province + nationality + birth + seq)."""
    first17 = f"9{province}{nationality}{birth:%Y%m%d}{seq}"
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("province: 2 digits, nationality: 3 digits, seq: 3 digits")
    return first17 + gb11643_check_digit(first17)


def mask_id_number(id_number: str) -> str:
    """API.md masking: first 4 and last 4 characters kept (``1101**********1234``)."""
    if len(id_number) <= 8:
        return id_number[:1] + "*" * max(len(id_number) - 2, 0) + id_number[-1:]
    return id_number[:4] + "*" * (len(id_number) - 8) + id_number[-4:]
