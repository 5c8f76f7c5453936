"""A registry CSV of N valid rows, fast (≈ 2 µs a row): the bulk import's bench input.

GB 11643 numbers are built from precomputed partial check sums: the weighted sum of the
17 digits splits into area (6), birth date (8) and sequence (3) parts, so a number costs
three table look-ups and a modulo instead of 17 multiplications
(``identity.make_resident_id`` is the reference; ``tests/bulk`` checks the two agree).
Row *i* is a distinct person for any N below 900 million; the output is deterministic
for a given seed.
"""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

from server.domain.registry import HEADER, OPTIONAL

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
MAX_ROWS = 900_000_000

# real county-level codes across provinces (GB/T 2260)
AREAS = (
    "110101", "110105", "120101", "130102", "140105", "150102", "210102", "220102", "230102",
    "310104", "310115", "320102", "330106", "340102", "350102", "360102", "370102", "410105",
    "420102", "420106", "420111", "430102", "440305", "440106", "450102", "460105", "500103",
    "510104", "520102", "530102",
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国红梅玉兰志强文辉鹏飞晓东海燕春梅建华玉梅丹丹"
_START = date(1940, 1, 1)
_DAYS = 30_000  # birth dates 1940-01-01 … 2022-02-20


def _partial(digits: str, offset: int) -> int:
    return sum(int(c) * _WEIGHTS[offset + k] for k, c in enumerate(digits))


class IdFactory:
    """``number(i)``: the i-th distinct valid resident ID number."""

    def __init__(self) -> None:
        self.areas = [(a, _partial(a, 0)) for a in AREAS]
        self.seqs = [(f"{s:03d}", _partial(f"{s:03d}", 14)) for s in range(1000)]
        self.days: dict[int, tuple[str, int]] = {}

    def _day(self, k: int) -> tuple[str, int]:
        got = self.days.get(k)
        if got is None:
            text = (_START + timedelta(days=k)).strftime("%Y%m%d")
            got = self.days[k] = (text, _partial(text, 6))
        return got

    def number(self, i: int) -> str:
        seq, s_sum = self.seqs[i % 1000]
        j = i // 1000
        area, a_sum = self.areas[j % len(self.areas)]
        day, d_sum = self._day(self._day_index(j))
        return f"{area}{day}{seq}{_CHECK[(a_sum + d_sum + s_sum) % 11]}"

    def _day_index(self, j: int) -> int:
        # spread over the whole range (7919 is prime to 30,000: distinct for each area)
        return ((j // len(self.areas)) * 7919 + (j % len(self.areas)) * 131) % _DAYS

    def birth_year(self, i: int) -> int:
        return int(self._day(self._day_index(i // 1000))[0][:4])


def write_registry_csv(path: Path, rows: int, *, seed: int = 18, offset: int = 0) -> Path:
    """``rows`` valid rows (people ``offset`` … ``offset + rows - 1``) with the guardian column:
    60 % employees with a personal account and a balance, minors with two guardians."""
    if not 0 <= rows <= MAX_ROWS - offset:
        raise ValueError(f"rows must be 0..{MAX_ROWS - offset}")
    rng = random.Random(seed)
    ids = IdFactory()
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER + OPTIONAL)
        for i in range(offset, offset + rows):
            employee = rng.random() < 0.6
            guardians = ""
            if ids.birth_year(i) >= 2010:  # a minor: two registered guardians
                guardians = f"{ids.number(i + 7_000_000)};{ids.number(i + 8_000_000)}"
            w.writerow((
                rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2)))),
                "resident_id",
                ids.number(i),
                "employee" if employee else "resident",
                AREAS[(i // 1000) % len(AREAS)][:4] + "00",
                "true" if employee else "false",
                "true" if rng.random() < 0.9 else "false",
                "active" if rng.random() < 0.98 else "suspended",
                rng.randrange(0, 500_000) if employee else 0,
                guardians,
            ))
    return path
