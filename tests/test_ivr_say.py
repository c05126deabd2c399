"""``say``: values spelled as recorded fragments, in Chinese and English.

Expected results are written as the words the fragments say (joined without spaces
in Chinese, with spaces in English), so a table row reads like what the caller hears;
a few rows also pin the exact fragment names.
"""

from __future__ import annotations

import pytest

from switchd.ivr.model import SayKind
from switchd.ivr.say import LANGUAGES, SayError, all_fragments, fragment_text, fragments


def heard(kind: SayKind, value: str, language: str, currency: str | None = None) -> str:
    """What the caller hears: the fragments' texts, joined the way the language writes."""
    words = [fragment_text(language, f) for f in fragments(kind, value, language, currency)]
    return ("" if language == "zh" else " ").join(words)


K = SayKind

ZH = [
    # digits: each key; 1 is 幺 as in phone numbers; separators skipped
    (K.DIGITS, "0571#", "零五七幺井号"),
    (K.DIGITS, "*138-0013 8000", "星号幺三八零零幺三八零零零"),
    (K.DIGITS, "+86", "加八六"),
    # numbers: 万/亿 grouping, 零 rules, 十 at the start, 两 only as the first word
    (K.NUMBER, "0", "零"),
    (K.NUMBER, "2", "二"),
    (K.NUMBER, "10", "十"),
    (K.NUMBER, "12", "十二"),
    (K.NUMBER, "20", "二十"),
    (K.NUMBER, "22", "二十二"),
    (K.NUMBER, "105", "一百零五"),
    (K.NUMBER, "110", "一百一十"),
    (K.NUMBER, "200", "两百"),
    (K.NUMBER, "1010", "一千零一十"),
    (K.NUMBER, "1200", "一千二百"),
    (K.NUMBER, "2300", "两千三百"),
    (K.NUMBER, "10005", "一万零五"),
    (K.NUMBER, "12305", "一万二千三百零五"),
    (K.NUMBER, "20000", "两万"),
    (K.NUMBER, "22000", "两万二千"),
    (K.NUMBER, "100000", "十万"),
    (K.NUMBER, "100500", "十万零五百"),
    (K.NUMBER, "10010", "一万零一十"),
    (K.NUMBER, "100000005", "一亿零五"),
    (K.NUMBER, "100010000", "一亿零一万"),
    (K.NUMBER, "100001000", "一亿零一千"),
    (K.NUMBER, "110000000", "一亿一千万"),
    (K.NUMBER, "200000000", "两亿"),
    (K.NUMBER, "999999999999", "九千九百九十九亿九千九百九十九万九千九百九十九"),
    (K.NUMBER, "3.14", "三点一四"),
    (K.NUMBER, "0.50", "零点五零"),
    (K.NUMBER, "-12.5", "负十二点五"),
    (K.NUMBER, "-0", "零"),
    (K.NUMBER, "+7", "七"),
    (K.NUMBER, " 007 ", "七"),
    # amounts in yuan: 元角分, 零 when 角 is missing, 整 when there is no 角 or 分
    (K.AMOUNT, "123.45", "一百二十三元四角五分"),
    (K.AMOUNT, "123", "一百二十三元整"),
    (K.AMOUNT, "123.00", "一百二十三元整"),
    (K.AMOUNT, "123.4", "一百二十三元四角"),
    (K.AMOUNT, "123.05", "一百二十三元零五分"),
    (K.AMOUNT, "0.45", "四角五分"),
    (K.AMOUNT, "0.05", "五分"),
    (K.AMOUNT, "0", "零元整"),
    (K.AMOUNT, "10005.5", "一万零五元五角"),
    (K.AMOUNT, "-8.20", "负八元二角"),
    (K.AMOUNT, "999999999999.99", "九千九百九十九亿九千九百九十九万九千九百九十九元九角九分"),
    # dates: year digit by digit
    (K.DATE, "2026-12-07", "二零二六年十二月七日"),
    (K.DATE, "2026-02-21", "二零二六年二月二十一日"),
    (K.DATE, "1999-10-10", "一九九九年十月十日"),
    # times: 24-hour clock, 两点, 零 before single-digit minutes, 整 on the hour
    (K.TIME, "09:05", "九点零五分"),
    (K.TIME, "9:05", "九点零五分"),
    (K.TIME, "09:00", "九点整"),
    (K.TIME, "02:30", "两点三十分"),
    (K.TIME, "12:15", "十二点十五分"),
    (K.TIME, "00:00", "零点整"),
    (K.TIME, "17:30:15", "十七点三十分十五秒"),
    (K.TIME, "17:30:00", "十七点三十分"),
    (K.TIME, "09:00:08", "九点零分零八秒"),
    (K.DATETIME, "2026-12-07T09:05", "二零二六年十二月七日九点零五分"),
    (K.DATETIME, "2026-12-07 22:10:30", "二零二六年十二月七日二十二点十分三十秒"),
]

EN = [
    (K.DIGITS, "0571#", "zero five seven one hash"),
    (K.DIGITS, "*9 +1", "star nine plus one"),
    (K.NUMBER, "0", "zero"),
    (K.NUMBER, "7", "seven"),
    (K.NUMBER, "12", "twelve"),
    (K.NUMBER, "20", "twenty"),
    (K.NUMBER, "21", "twenty one"),
    (K.NUMBER, "115", "one hundred fifteen"),
    (K.NUMBER, "1234", "one thousand two hundred thirty four"),
    (K.NUMBER, "10005", "ten thousand five"),
    (K.NUMBER, "1000000", "one million"),
    (K.NUMBER, "2000300", "two million three hundred"),
    (K.NUMBER, "999999999999",
     "nine hundred ninety nine billion nine hundred ninety nine million "
     "nine hundred ninety nine thousand nine hundred ninety nine"),
    (K.NUMBER, "0.5", "zero point five"),
    (K.NUMBER, ".5", "zero point five"),
    (K.NUMBER, "12.", "twelve"),
    (K.NUMBER, "-3.05", "minus three point zero five"),
    (K.AMOUNT, "123.45", "one hundred twenty three dollars and forty five cents"),
    (K.AMOUNT, "1.01", "one dollar and one cent"),
    (K.AMOUNT, "100", "one hundred dollars"),
    (K.AMOUNT, "100.00", "one hundred dollars"),
    (K.AMOUNT, "0.45", "forty five cents"),
    (K.AMOUNT, "0", "zero dollars"),
    (K.AMOUNT, "-2.5", "minus two dollars and fifty cents"),
    (K.DATE, "2026-12-07", "December seventh twenty twenty six"),
    (K.DATE, "2026-01-01", "January first twenty twenty six"),
    (K.DATE, "2026-03-22", "March twenty second twenty twenty six"),
    (K.DATE, "2026-05-30", "May thirtieth twenty twenty six"),
    (K.DATE, "2026-06-11", "June eleventh twenty twenty six"),
    (K.DATE, "2005-07-04", "July fourth two thousand five"),
    (K.DATE, "2000-02-29", "February twenty ninth two thousand"),
    (K.DATE, "1905-11-03", "November third nineteen oh five"),
    (K.DATE, "1900-08-20", "August twentieth nineteen hundred"),
    (K.DATE, "2010-09-13", "September thirteenth twenty ten"),
    (K.TIME, "09:05", "nine oh five a.m."),
    (K.TIME, "09:00", "nine a.m."),
    (K.TIME, "00:00", "twelve a.m."),
    (K.TIME, "12:00", "twelve p.m."),
    (K.TIME, "13:30", "one thirty p.m."),
    (K.TIME, "23:59:01", "eleven fifty nine p.m. and one second"),
    (K.TIME, "10:45:30", "ten forty five a.m. and thirty seconds"),
    (K.DATETIME, "2026-12-07T14:05", "December seventh twenty twenty six at two oh five p.m."),
]


@pytest.mark.parametrize(("kind", "value", "expected"), ZH, ids=[f"{k}-{v}" for k, v, _ in ZH])
def test_chinese_table(kind: SayKind, value: str, expected: str) -> None:
    assert heard(kind, value, "zh") == expected


@pytest.mark.parametrize(("kind", "value", "expected"), EN, ids=[f"{k}-{v}" for k, v, _ in EN])
def test_english_table(kind: SayKind, value: str, expected: str) -> None:
    assert heard(kind, value, "en") == expected


def test_fragment_names_are_prompt_names_under_the_language() -> None:
    assert fragments(SayKind.NUMBER, "10005", "zh") == [
        "zh/say/1", "zh/say/ten_thousand", "zh/say/0", "zh/say/5"]
    assert fragments(SayKind.NUMBER, "115", "en") == ["en/say/1", "en/say/hundred", "en/say/15"]
    assert fragments(SayKind.DIGITS, "1#", "en") == ["en/say/1", "en/say/hash"]
    assert fragments("amount", "2", "zh") == ["zh/say/2", "zh/say/yuan", "zh/say/zheng"]


@pytest.mark.parametrize(("language", "currency", "value", "expected"), [
    ("zh", "USD", "123.45", "一百二十三美元四十五美分"),
    ("zh", "USD", "100", "一百美元整"),
    ("zh", "USD", "0.05", "五美分"),
    ("zh", "CNY", "1.5", "一元五角"),
    ("en", "CNY", "123.45", "one hundred twenty three yuan and forty five fen"),
    ("en", "CNY", "1", "one yuan"),
    ("en", "USD", "1", "one dollar"),
])
def test_amount_currency_overrides_the_language_default(
    language: str, currency: str, value: str, expected: str
) -> None:
    assert heard(SayKind.AMOUNT, value, language, currency) == expected


@pytest.mark.parametrize(("kind", "value", "needle"), [
    (K.NUMBER, "1000000000000", "too large"),
    (K.NUMBER, "-1000000000000", "too large"),
    (K.AMOUNT, "1000000000000.00", "too large"),
    (K.NUMBER, "1,234", "no thousands separators"),
    (K.NUMBER, "1e5", "digits with an optional sign"),
    (K.NUMBER, "", "digits with an optional sign"),
    (K.NUMBER, "0.1234567890123", "at most 12 digits after the point"),
    (K.AMOUNT, "12.345", "at most 2 digits after the point"),
    (K.AMOUNT, "abc", "e.g. 1234.56"),
    (K.DIGITS, "12a4", "'a' is not a key"),
    (K.DIGITS, " - ", "no digits"),
    (K.DATE, "2026-02-30", "YYYY-MM-DD"),
    (K.DATE, "07/12/2026", "YYYY-MM-DD"),
    (K.TIME, "24:00", "HH:MM"),
    (K.TIME, "09:60", "HH:MM"),
    (K.TIME, "9", "HH:MM"),
    (K.DATETIME, "2026-12-07", "YYYY-MM-DDTHH:MM"),
    (K.DATETIME, "2026-12-07T09:05+08:00", "without a zone"),
])
def test_bad_values_raise_say_error_naming_the_value(kind: SayKind, value: str, needle: str) -> None:
    for language in LANGUAGES:
        with pytest.raises(SayError) as err:
            fragments(kind, value, language)
        assert repr(value.strip()) in str(err.value) or repr(value) in str(err.value)
        assert needle in str(err.value)


def test_bad_language_kind_and_currency_are_say_errors() -> None:
    with pytest.raises(SayError, match="unknown language 'fr'; use zh or en"):
        fragments(SayKind.NUMBER, "1", "fr")
    with pytest.raises(SayError, match="unknown kind 'money'"):
        fragments("money", "1", "en")
    with pytest.raises(SayError, match="unknown currency 'EUR'; use CNY or USD"):
        fragments(SayKind.AMOUNT, "1", "en", "EUR")
    with pytest.raises(SayError, match="unknown say language"):
        all_fragments("de")
    with pytest.raises(SayError, match="not a en say fragment"):
        fragment_text("en", "en/say/nope")
    assert issubclass(SayError, ValueError)


def _sample_values() -> list[tuple[SayKind, str, str | None]]:
    """A spread of values that together use every fragment of both languages."""
    out: list[tuple[SayKind, str, str | None]] = [(K.DIGITS, "0123456789*#+", None)]
    for n in [*range(0, 120), 200, 1010, 2000, 12305, 20000, 100000005, 200000000,
              1_000_000, 2_000_000_000, 999_999_999_999]:
        out.append((K.NUMBER, str(n), None))
    out += [(K.NUMBER, "-1.5", None)]
    for value in ("0", "1", "2", "0.01", "1.01", "123.45", "123.05", "-5"):
        for currency in ("CNY", "USD"):
            out.append((K.AMOUNT, value, currency))
    out += [(K.DATE, f"2026-{m:02d}-{d:02d}", None) for m in range(1, 13) for d in (1, 28)]
    out += [(K.DATE, f"2026-01-{d:02d}", None) for d in range(1, 32)]
    out += [(K.DATE, "1905-01-01", None), (K.DATE, "1900-01-01", None)]
    out += [(K.TIME, f"{h:02d}:{m:02d}:{s:02d}", None)
            for h in range(24) for m in (0, 5, 30) for s in (0, 1, 30)]
    out += [(K.DATETIME, "2026-12-07T09:05", None)]
    return out


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_fragment_returned_is_listed_and_every_listed_one_is_used(language: str) -> None:
    listed = all_fragments(language)
    assert listed == sorted(set(listed))
    used: set[str] = set()
    for kind, value, currency in _sample_values():
        names = fragments(kind, value, language, currency)
        assert set(names) <= set(listed), (kind, value)
        used.update(names)
    assert used == set(listed)  # no dead recordings
    for name in listed:
        assert name.startswith(f"{language}/say/")
        assert fragment_text(language, name) == fragment_text(language, name.split("/")[-1])
        assert fragment_text(language, name).strip()


def test_fragment_names_are_safe_file_names() -> None:
    for language in LANGUAGES:
        for name in all_fragments(language):
            stem = name.split("/")[-1]
            assert stem.isascii() and stem.replace("_", "").isalnum(), name
