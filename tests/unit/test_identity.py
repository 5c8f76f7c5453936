"""ID document validation: GB 11643 checksum, birth dates, other document formats."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.errors import DomainError
from server.domain.identity import (
    ID_TYPES,
    PROVINCE_PREFIXES,
    age_on,
    gb11643_check_digit,
    make_foreign_permanent_id,
    make_residence_permit,
    make_resident_id,
    mask_id_number,
    parse_id,
)
from server.http_errors import status_of

TODAY = date(2025, 6, 1)


def test_check_digit_of_the_standard_example() -> None:
    # The worked example of GB 11643-1999: 11010519491231002X.
    assert gb11643_check_digit("11010519491231002") == "X"
    assert parse_id("resident_id", "11010519491231002x", today=TODAY).id_number == (
        "11010519491231002X"
    )


def test_check_digit_rejects_non_digits() -> None:
    with pytest.raises(ValueError):
        gb11643_check_digit("1101051949123100X")


def test_resident_id_fields() -> None:
    number = make_resident_id(region="420102", birth=date(1990, 3, 15), seq="123", sex="F")
    doc = parse_id("resident_id", f"  {number} ", today=TODAY)
    assert doc.id_type == "resident_id"
    assert doc.birth_date == date(1990, 3, 15)
    assert doc.sex == "F"
    assert int(doc.id_number[16]) % 2 == 0
    assert parse_id("resident_id", make_resident_id(sex="M"), today=TODAY).sex == "M"


def test_full_width_input_is_normalized() -> None:
    number = make_resident_id()
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in number)
    assert parse_id("resident_id", full_width, today=TODAY).id_number == number


def _fails(id_type: str, number: str, today: date = TODAY) -> DomainError:
    with pytest.raises(DomainError) as info:
        parse_id(id_type, number, today=today)
    return info.value


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("", "empty"),
        ("110105194912310", "old 15-digit card"),
        (make_resident_id()[:17], "17 chars"),
        (make_resident_id() + "1", "19 chars"),
        ("1101051949123X002X", "letter inside"),
        ("110105194902300021", "30 February"),
        (make_resident_id(birth=date(1899, 12, 31)), "before 1900"),
        (make_resident_id(birth=TODAY + timedelta(days=1)), "born tomorrow"),
        (make_resident_id(region="990101"), "no such province"),
        (make_resident_id(region="010101"), "region starting with 0"),
        (make_resident_id(region="810000"), "a residence permit is not a resident ID"),
    ],
)
def test_invalid_resident_ids(number: str, why: str) -> None:
    err = _fails("resident_id", number)
    assert err.code == "INVALID_ID_NUMBER", why
    assert status_of(err) == 422
    assert err.fields == {"id_number": "INVALID_ID_NUMBER"}
    assert err.message.startswith("居民身份证")


def test_born_today_is_valid() -> None:
    assert parse_id("resident_id", make_resident_id(birth=TODAY), today=TODAY).birth_date == TODAY


def test_unknown_id_type() -> None:
    err = _fails("driving_licence", "123456")
    assert err.code == "INVALID_FIELD"
    assert status_of(err) == 422
    assert err.fields == {"id_type": "INVALID_CHOICE"}


@given(
    region=st.sampled_from(sorted(PROVINCE_PREFIXES - {"81", "82"})).map(lambda p: p + "0101"),
    birth=st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    seq=st.integers(0, 999).map(lambda n: f"{n:03d}"),
    sex=st.sampled_from(["M", "F", None]),
)
def test_generated_ids_always_parse(region: str, birth: date, seq: str, sex: str | None) -> None:
    number = make_resident_id(region=region, birth=birth, seq=seq, sex=sex)  # type: ignore[arg-type]
    doc = parse_id("resident_id", number, today=TODAY)
    assert doc.birth_date == birth
    assert doc.id_number == number
    if sex is not None:
        assert doc.sex == sex


@given(
    birth=st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    seq=st.integers(0, 999).map(lambda n: f"{n:03d}"),
    wrong=st.sampled_from("0123456789X"),
)
def test_a_changed_check_digit_never_parses(birth: date, seq: str, wrong: str) -> None:
    number = make_resident_id(birth=birth, seq=seq)
    if wrong == number[17]:
        wrong = "0" if wrong != "0" else "1"
    with pytest.raises(DomainError):
        parse_id("resident_id", number[:17] + wrong, today=TODAY)


@given(
    number=st.text(alphabet="0123456789", min_size=17, max_size=17),
    position=st.integers(0, 16),
    delta=st.integers(1, 9),
)
def test_a_single_digit_error_changes_the_check_digit(number: str, position: int, delta: int) -> None:
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert gb11643_check_digit(changed) != gb11643_check_digit(number)


def test_feb_29_birth() -> None:
    number = make_resident_id(birth=date(2008, 2, 29))
    assert parse_id("resident_id", number, today=TODAY).birth_date == date(2008, 2, 29)
    assert _fails("resident_id", make_resident_id()[:6] + "20070229" + "1234").code == (
        "INVALID_ID_NUMBER"
    )


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2008, 5, 10), date(2024, 5, 9), 15),
        (date(2008, 5, 10), date(2024, 5, 10), 16),
        (date(2008, 5, 10), date(2024, 5, 11), 16),
        (date(2008, 2, 29), date(2024, 2, 28), 15),
        (date(2008, 2, 29), date(2024, 2, 29), 16),  # leap year: the real birthday
        (date(2007, 2, 28), date(2024, 2, 28), 17),
        (date(2004, 2, 29), date(2021, 2, 28), 16),  # common year: not yet 17
        (date(2004, 2, 29), date(2021, 3, 1), 17),
        (date(2025, 6, 1), date(2025, 6, 1), 0),
    ],
)
def test_age_on(birth: date, on: date, age: int) -> None:
    assert age_on(birth, on) == age


@pytest.mark.parametrize(
    ("origin", "prefix"), [("HK", "810000"), ("MO", "820000"), ("TW", "830000")]
)
def test_residence_permits(origin: str, prefix: str) -> None:
    number = make_residence_permit(origin, birth=date(1985, 7, 1), sex="F")  # type: ignore[arg-type]
    doc = parse_id("hk_mo_tw_residence_permit", number, today=TODAY)
    assert doc.id_number.startswith(prefix)
    assert doc.birth_date == date(1985, 7, 1)
    assert doc.sex == "F"
    assert not doc.is_mainland


def test_residence_permit_needs_its_prefix_and_checksum() -> None:
    assert _fails("hk_mo_tw_residence_permit", make_resident_id()).code == "INVALID_ID_NUMBER"
    number = make_residence_permit("HK")
    bad = number[:17] + ("0" if number[17] != "0" else "1")
    assert _fails("hk_mo_tw_residence_permit", bad).code == "INVALID_ID_NUMBER"


def test_foreign_permanent_resident_cards() -> None:
    new = make_foreign_permanent_id(birth=date(1979, 12, 31))
    doc = parse_id("foreign_permanent_resident", new, today=TODAY)
    assert doc.birth_date == date(1979, 12, 31)
    assert doc.sex is None
    assert parse_id("foreign_permanent_resident", "usa110079123456", today=TODAY).id_number == (
        "USA110079123456"
    )
    for bad in ("US1110079123456", make_resident_id(), new[:17] + ("0" if new[17] != "0" else "1")):
        assert _fails("foreign_permanent_resident", bad).code == "INVALID_ID_NUMBER"


@pytest.mark.parametrize(
    ("id_type", "good", "bad"),
    [
        ("birth_certificate", ["P510012345", "o440123456"], ["510012345", "PP10012345", "P5100123456"]),
        ("hk_mo_travel_permit", ["H12345678", "M1234567890"], ["H1234567", "C12345678", "H123456789"]),
        ("tw_travel_permit", ["12345678"], ["1234567", "T1234567", "123456789"]),
        ("passport", ["E12345678", "EA1234567", "123456789", "X1234"], ["ABCDEFG", "E12", "E1234567-8"]),
    ],
)
def test_other_document_formats(id_type: str, good: list[str], bad: list[str]) -> None:
    for number in good:
        doc = parse_id(id_type, number, today=TODAY)
        assert doc.id_number == number.upper()
        assert doc.birth_date is None
    for number in bad:
        assert _fails(id_type, number).code == "INVALID_ID_NUMBER", number


def test_every_id_type_has_a_parser() -> None:
    samples = {
        "resident_id": make_resident_id(),
        "birth_certificate": "P510012345",
        "hk_mo_tw_residence_permit": make_residence_permit(),
        "hk_mo_travel_permit": "H12345678",
        "tw_travel_permit": "12345678",
        "passport": "E12345678",
        "foreign_permanent_resident": make_foreign_permanent_id(),
    }
    assert set(samples) == set(ID_TYPES)
    for id_type, number in samples.items():
        assert parse_id(id_type, number, today=TODAY).id_type == id_type


def test_mask() -> None:
    assert mask_id_number("110101198001011234") == "1101**********1234"
    assert mask_id_number("H12345678") == "H123*5678"


# --- the bulk fast path (issue 18): the same answers as the slow, obvious ones ----------


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_digit_is_the_weighted_sum_of_gb11643(first17: str) -> None:
    weights = [pow(2, 17 - i, 11) for i in range(17)]  # W_i = 2^(17-i) mod 11
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    assert gb11643_check_digit(first17) == "10X98765432"[total % 11]


def _spellings() -> st.SearchStrategy[str]:
    """Valid resident IDs and near misses: a changed character, case, width, length,
    area, birth date — the shapes a registry file holds."""
    valid = st.builds(
        make_resident_id,
        region=st.sampled_from(["110101", "440305", "810000", "710000", "990101", "000000", "830000"]),
        birth=st.dates(min_value=date(1890, 1, 1), max_value=date(2030, 12, 31)),
        seq=st.text(alphabet="0123456789", min_size=3, max_size=3),
    )

    def mutate(number: str, how: int, at: int, char: str) -> str:
        at %= len(number)
        return [
            number,
            number.lower(),
            number[:at] + char + number[at + 1 :],
            number[:at] + number[at + 1 :],
            number + char,
            f" {number} ",
            number.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789"}),  # full width
            number[:12] + "0231" + number[16:],  # 31 February
        ][how]

    return st.builds(mutate, valid, st.integers(0, 7), st.integers(0, 17),
                     st.sampled_from(list("0123456789XxA_ +٣")))


@given(_spellings())
def test_canonical_resident_ids_agree_with_parse_id(number: str) -> None:
    from server.domain.identity import CanonicalResidentIds

    quick = CanonicalResidentIds(TODAY)
    try:
        parsed = parse_id("resident_id", number, today=TODAY).id_number
    except DomainError:
        parsed = None
    if quick.accepts(number):  # a yes is parse_id's yes, for the number as written
        assert parsed == number
    elif parsed is not None:  # a "not here" is only ever for another spelling
        assert parsed != number
    assert quick.accepts(number) == (parsed == number)  # twice: the birth-date cache agrees
