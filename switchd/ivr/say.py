"""``say``: spell a value as a list of recorded fragments, in Chinese or English.

Pure. :func:`fragments` turns a value (a digit string, a number, an amount of
money, a date, a time) into prompt names such as ``"zh/say/5"`` or
``"en/say/hundred"``; the player plays them back to back from
``<prompts_dir>/<lang>/say/<fragment>.wav``. :func:`all_fragments` lists every
name :func:`fragments` can return (``flows check`` verifies the files exist,
``tools/make_prompts.py`` generates them), and :func:`fragment_text` gives the
words each file says.

Fragment names are ASCII (``"5"``, ``"ten_thousand"``, ``"dollars"``) so they are
safe file names everywhere and readable in the ``flows try`` trace.

Chinese (``zh``) rules:

* Numbers group by 万 and 亿: 12305 -> 一万二千三百零五, 10005 -> 一万零五,
  100000005 -> 一亿零五, 1010 -> 一千零一十. Zeros inside a number collapse into
  one 零; trailing zeros are silent; 一十 loses its 一 only at the start
  (十二, 十万, but 一百一十).
* 两 or 二: 两 only as the first word of a number and directly before a unit
  百 千 万 亿 (两百, 两千三百, 两万, 两亿); everywhere else 二 (二十, 十二,
  一千二百, 二元). Clock hours are the exception everyone expects: 两点.
* Decimals: 点 then each digit (三点一四); negatives start with 负.
* Digit strings (``digits``) read 1 as 幺, as in phone and account numbers
  (幺三八 for 138); ``*`` 星号, ``#`` 井号, ``+`` 加.
* Amounts, CNY: 一百二十三元四角五分; 零 between 元 and 分 when there are no 角
  (一百元零五分); 整 when there are neither 角 nor 分 (一百元整); below one yuan
  the 元 is left out (四角五分). USD: 一百二十三美元四十五美分, 一百美元整.
* Dates: the year digit by digit, then month and day as numbers:
  二零二六年十二月七日. Times on the 24-hour clock: 九点零五分, 十五点三十分,
  九点整, seconds as 秒 when given and not zero.

English (``en``, US style) rules:

* Numbers without "and": 1234 -> one thousand two hundred thirty four; up to
  billions; decimals "point" then each digit (zero point five); "minus".
* Digit strings: "zero" for 0, "star", "hash", "plus".
* Amounts: one hundred twenty three dollars and forty five cents (singular for
  one dollar / one cent, nothing said for zero cents, "zero dollars" for 0);
  CNY: "yuan" and "fen" (one hundred yuan and five fen).
* Dates: month, ordinal day, year in pairs: December seventh twenty twenty six;
  2000-2009 as "two thousand (one)", 1905 as "nineteen oh five".
* Times on the 12-hour clock: nine oh five a m, three thirty p m, nine a m,
  twelve p m for noon, twelve a m for midnight; seconds when given and not
  zero: nine oh five a m and thirty seconds.
* Date and time: the date, "at", the time.

Limits: numbers and amounts up to 999 999 999 999.99 (12 digits before the
point; amounts take at most 2 decimals, numbers at most 12). Anything larger or
malformed raises :class:`SayError` naming the value.
"""

from __future__ import annotations

import datetime as dt
import re

from switchd.ivr.model import SayKind

__all__ = ["LANGUAGES", "SayError", "all_fragments", "fragment_text", "fragments"]

#: The languages ``say`` speaks.
LANGUAGES = ("zh", "en")
#: Currencies an ``amount`` can be in; the default depends on the language.
CURRENCIES = ("CNY", "USD")
_DEFAULT_CURRENCY = {"zh": "CNY", "en": "USD"}

#: The largest integer part a number or amount may have.
MAX_INTEGER = 999_999_999_999
_MAX_DECIMALS = 12

_NUMBER_RE = re.compile(r"([+-]?)(\d*)(?:\.(\d*))?")
_DIGITS_IGNORED = " -"  # separators in "138-0013-8000" or "0571 8888": skipped, not said
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


class SayError(ValueError):
    """A value ``say`` cannot speak: the message names the value and what was expected."""


# -- the vocabularies: fragment name -> the words espeak-ng says for it ----------------

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_TEXT: dict[str, str] = {
    **{str(i): ch for i, ch in enumerate(_ZH_DIGITS)},
    "liang": "两",
    "yao": "幺",
    "ten": "十",
    "hundred": "百",
    "thousand": "千",
    "ten_thousand": "万",
    "hundred_million": "亿",
    "point": "点",
    "minus": "负",
    "plus": "加",
    "star": "星号",
    "hash": "井号",
    "yuan": "元",
    "jiao": "角",
    "fen": "分",
    "zheng": "整",
    "dollar": "美元",
    "cent": "美分",
    "year": "年",
    "month": "月",
    "day": "日",
    "oclock": "点",
    "minute": "分",
    "second": "秒",
}

_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_EN_ORDINALS = (
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth"
).split()


def _ordinal_name(n: int) -> str:
    """The fragment name of an ordinal: 1st 2nd 3rd 4th .. 19th 20th 30th."""
    suffix = "th" if 10 <= n % 100 <= 19 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_EN_TEXT: dict[str, str] = {
    **{str(i): w for i, w in enumerate(_EN_ONES)},
    **{str(10 * (i + 2)): w for i, w in enumerate(_EN_TENS)},
    **{_ordinal_name(i + 1): w for i, w in enumerate(_EN_ORDINALS)},
    "20th": "twentieth",
    "30th": "thirtieth",
    **{m.lower(): m for m in _EN_MONTHS},
    "hundred": "hundred",
    "thousand": "thousand",
    "million": "million",
    "billion": "billion",
    "point": "point",
    "minus": "minus",
    "plus": "plus",
    "star": "star",
    "hash": "hash",
    "dollar": "dollar",
    "dollars": "dollars",
    "cent": "cent",
    "cents": "cents",
    "yuan": "yuan",
    "fen": "fen",
    "and": "and",
    "oh": "oh",
    "am": "a.m.",
    "pm": "p.m.",
    "at": "at",
    "second": "second",
    "seconds": "seconds",
}

_TEXT = {"zh": _ZH_TEXT, "en": _EN_TEXT}


# -- public API ------------------------------------------------------------------------


def fragments(kind: SayKind | str, value: str, language: str, currency: str | None = None) -> list[str]:
    """The prompt names that say ``value`` as ``kind`` in ``language``, in order.

    ``kind``: digits, number, amount, date, time or datetime (:class:`SayKind`).
    ``value``: text (surrounding blanks ignored) -- ``"0571#"``, ``"-1234.5"``,
    ``"1234.56"``, ``"2026-12-07"``, ``"09:05"``/``"09:05:30"``, ``"2026-12-07T09:05"``.
    ``currency``: ``CNY`` or ``USD`` for amounts (None = CNY in zh, USD in en).
    Returns names like ``"zh/say/5"`` (files ``<prompts_dir>/zh/say/5.wav``).

    Raises SayError naming the value for an unknown kind, language or currency, a
    malformed value, or a number above 999 999 999 999.99.
    """
    if language not in LANGUAGES:
        raise SayError(f"cannot say {value!r}: unknown language {language!r}; use zh or en")
    try:
        kind = SayKind(kind)
    except ValueError:
        kinds = " ".join(k.value for k in SayKind)
        raise SayError(f"cannot say {value!r}: unknown kind {kind!r}; use one of {kinds}") from None
    if not isinstance(value, str):
        raise SayError(f"cannot say {value!r}: the value must be text")
    if currency is None:
        currency = _DEFAULT_CURRENCY[language]
    elif currency not in CURRENCIES:
        raise SayError(f"cannot say {value!r}: unknown currency {currency!r}; use CNY or USD")
    text = value.strip()
    zh = language == "zh"
    if kind is SayKind.DIGITS:
        names = _digits(text, zh)
    elif kind is SayKind.NUMBER:
        names = _number(text, zh)
    elif kind is SayKind.AMOUNT:
        names = _amount(text, zh, currency)
    elif kind is SayKind.DATE:
        names = _date(_parse_date(text, text), zh)
    elif kind is SayKind.TIME:
        names = _time(*_parse_time(text, text), zh)
    else:
        names = _datetime(text, zh)
    return [f"{language}/say/{n}" for n in names]


def all_fragments(language: str) -> list[str]:
    """Every prompt name :func:`fragments` can return for ``language``, sorted, unique.

    Raises SayError for an unknown language.
    """
    return sorted(f"{language}/say/{n}" for n in _vocabulary(language))


def fragment_text(language: str, fragment: str) -> str:
    """The words a fragment's recording says (what ``tools/make_prompts.py`` feeds espeak-ng).

    ``fragment`` is a full name (``"zh/say/5"``) or the bare fragment (``"5"``).
    Raises SayError for an unknown language or fragment.
    """
    vocab = _vocabulary(language)
    name = fragment.removeprefix(f"{language}/say/")
    try:
        return vocab[name]
    except KeyError:
        raise SayError(f"{fragment!r} is not a {language} say fragment") from None


def _vocabulary(language: str) -> dict[str, str]:
    try:
        return _TEXT[language]
    except KeyError:
        raise SayError(f"unknown say language {language!r}; use zh or en") from None


# -- digits ----------------------------------------------------------------------------

_KEY_NAMES = {"*": "star", "#": "hash", "+": "plus"}


def _digits(text: str, zh: bool) -> list[str]:
    out: list[str] = []
    for ch in text:
        if ch in _DIGITS_IGNORED:
            continue
        if "0" <= ch <= "9":
            out.append("yao" if zh and ch == "1" else ch)
        elif ch in _KEY_NAMES:
            out.append(_KEY_NAMES[ch])
        else:
            raise SayError(
                f"cannot say {text!r} as digits: {ch!r} is not a key; use 0-9, * # and +"
                " (spaces and dashes are skipped)"
            )
    if not out:
        raise SayError(f"cannot say {text!r} as digits: there are no digits")
    return out


# -- numbers ---------------------------------------------------------------------------


def _parse_decimal(text: str, what: str, max_decimals: int) -> tuple[bool, int, str]:
    """``text`` -> (negative, integer part, decimal digits as written)."""
    example = "1234.56" if what == "an amount" else "-1234.5"
    m = _NUMBER_RE.fullmatch(text)
    if m is None or not (m.group(2) or m.group(3)):
        raise SayError(
            f"cannot say {text!r} as {what}: write digits with an optional sign and decimal "
            f"point, e.g. {example} (no thousands separators)"
        )
    sign, whole, frac = m.group(1), m.group(2) or "0", m.group(3) or ""
    if len(frac) > max_decimals:
        raise SayError(
            f"cannot say {text!r} as {what}: at most {max_decimals} digits after the point"
        )
    integer = int(whole)
    if integer > MAX_INTEGER:
        raise SayError(
            f"cannot say {text!r} as {what}: too large, at most 12 digits before the point "
            "(999999999999.99 is the largest)"
        )
    negative = sign == "-" and (integer > 0 or frac.strip("0") != "")
    return negative, integer, frac


def _number(text: str, zh: bool) -> list[str]:
    negative, integer, frac = _parse_decimal(text, "a number", _MAX_DECIMALS)
    out = ["minus"] if negative else []
    out += _zh_int(integer) if zh else _en_int(integer)
    if frac:
        out.append("point")
        out += list(frac)  # digit names are the same in both vocabularies ("0".."9")
    return out


def _zh_int(n: int) -> list[str]:
    """0..999 999 999 999 in Chinese, grouped by 亿 and 万 (see the module rules)."""
    if n == 0:
        return ["0"]
    out: list[str] = []
    gap = False  # a whole 万 group of zeros was skipped since the last word
    for scale, unit in ((10**8, "hundred_million"), (10**4, "ten_thousand"), (1, None)):
        group = n // scale % 10000
        if group == 0:
            gap = bool(out)
            continue
        if out and (gap or group < 1000):
            out.append("0")  # 一万零五, 一亿零一千: the zeros before this group, said once
        if not out and group == 2 and unit is not None:
            out.append("liang")  # 两万, 两亿
        else:
            out += _zh_group(group, first=not out)
        if unit is not None:
            out.append(unit)
        gap = False
    return out


def _zh_group(group: int, *, first: bool) -> list[str]:
    """1..9999 with 千 百 十; ``first``: nothing was said before it in this number."""
    out: list[str] = []
    zero = False
    for digit, unit in zip(
        (group // 1000, group // 100 % 10, group // 10 % 10, group % 10),
        ("thousand", "hundred", "ten", None),
        strict=True,
    ):
        if digit == 0:
            zero = bool(out)
            continue
        if zero:
            out.append("0")
            zero = False
        if first and not out and digit == 1 and unit == "ten":
            out.append("ten")  # 十二, 十万 -- but 一百一十, 一万零一十
            continue
        if first and not out and digit == 2 and unit in ("thousand", "hundred"):
            out.append("liang")  # 两千, 两百
        else:
            out.append(str(digit))
        if unit is not None:
            out.append(unit)
    return out


def _en_int(n: int) -> list[str]:
    """0..999 999 999 999 in US English, no "and"."""
    if n == 0:
        return ["0"]
    out: list[str] = []
    for scale, word in ((10**9, "billion"), (10**6, "million"), (10**3, "thousand"), (1, None)):
        group = n // scale % 1000
        if group:
            out += _en_999(group)
            if word is not None:
                out.append(word)
    return out


def _en_999(n: int) -> list[str]:
    hundreds, rest = divmod(n, 100)
    out = [str(hundreds), "hundred"] if hundreds else []
    return out + (_en_99(rest) if rest else [])


def _en_99(n: int) -> list[str]:
    if n < 20:
        return [str(n)]
    tens, ones = divmod(n, 10)
    return [str(tens * 10)] + ([str(ones)] if ones else [])


# -- amounts ---------------------------------------------------------------------------


def _amount(text: str, zh: bool, currency: str) -> list[str]:
    negative, units, frac = _parse_decimal(text, "an amount", 2)
    cents = int(frac.ljust(2, "0")) if frac else 0
    out = ["minus"] if negative else []
    if zh and currency == "CNY":
        jiao, fen = divmod(cents, 10)
        if units or not cents:
            out += _zh_int(units) + ["yuan"]
        if not cents:
            return out + ["zheng"]
        if jiao:
            out += [str(jiao), "jiao"]
        elif units:
            out.append("0")  # 一百元零五分
        if fen:
            out += [str(fen), "fen"]
        return out
    if zh:  # USD in Chinese
        if units or not cents:
            out += _zh_int(units) + ["dollar"]
        if not cents:
            return out + ["zheng"]
        return out + _zh_int(cents) + ["cent"]
    # English
    if currency == "CNY":
        big, small = ("yuan", "yuan"), ("fen", "fen")
    else:
        big, small = ("dollar", "dollars"), ("cent", "cents")
    if units or not cents:
        out += _en_int(units) + [big[0] if units == 1 else big[1]]
        if cents:
            out.append("and")
    if cents:
        out += _en_int(cents) + [small[0] if cents == 1 else small[1]]
    return out


# -- dates and times -------------------------------------------------------------------


def _parse_date(text: str, value: str) -> dt.date:
    m = _DATE_RE.fullmatch(text)
    try:
        if m is None:
            raise ValueError("not YYYY-MM-DD")
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise SayError(
            f"cannot say {value!r} as a date: write YYYY-MM-DD with a real date, e.g. 2026-12-07"
        ) from None


def _parse_time(text: str, value: str) -> tuple[int, int, int | None]:
    m = _TIME_RE.fullmatch(text)
    if m is not None:
        hour, minute = int(m.group(1)), int(m.group(2))
        second = int(m.group(3)) if m.group(3) is not None else None
        if hour < 24 and minute < 60 and (second is None or second < 60):
            return hour, minute, second
    raise SayError(
        f"cannot say {value!r} as a time: write HH:MM or HH:MM:SS on the 24-hour clock, "
        "e.g. 09:05 or 17:30:15"
    )


def _date(day: dt.date, zh: bool) -> list[str]:
    if zh:
        return [*f"{day.year}", "year", *_zh_int(day.month), "month", *_zh_int(day.day), "day"]
    return [_EN_MONTHS[day.month - 1].lower(), *_en_ordinal(day.day), *_en_year(day.year)]


def _en_ordinal(n: int) -> list[str]:
    """1..31 as ordinal fragments: 7 -> seventh; 21 -> twenty first."""
    if n < 20 or n % 10 == 0:
        return [_ordinal_name(n)]
    tens, ones = divmod(n, 10)
    return [str(tens * 10), _ordinal_name(ones)]


def _en_year(year: int) -> list[str]:
    """How years are read: 2026 twenty twenty six, 2005 two thousand five, 1905 nineteen oh
    five, 1900 nineteen hundred, 2000 two thousand; below 1000 as a plain number."""
    hi, lo = divmod(year, 100)
    if year < 1000 or year % 1000 == 0 or 2000 <= year < 2010:
        return _en_int(year)
    if lo == 0:
        return _en_99(hi) + ["hundred"]
    if lo < 10:
        return _en_99(hi) + ["oh", str(lo)]
    return _en_99(hi) + _en_99(lo)


def _time(hour: int, minute: int, second: int | None, zh: bool) -> list[str]:
    if zh:
        out = ["liang"] if hour == 2 else _zh_int(hour)  # 两点, never 二点
        out.append("oclock")
        if minute == 0 and not second:
            return out + ["zheng"]  # 九点整
        if 0 < minute < 10:
            out.append("0")  # 九点零五分 (and 九点零分八秒 when only seconds)
        out += _zh_int(minute) + ["minute"]
        if second:
            if second < 10:
                out.append("0")
            out += _zh_int(second) + ["second"]
        return out
    out = _en_99(hour % 12 or 12)
    if minute:
        out += ["oh", str(minute)] if minute < 10 else _en_99(minute)
    out.append("am" if hour < 12 else "pm")
    if second:
        out += ["and", *_en_99(second), "second" if second == 1 else "seconds"]
    return out


def _datetime(text: str, zh: bool) -> list[str]:
    parts = re.split(r"[T ]", text, maxsplit=1)
    if len(parts) != 2:
        raise SayError(
            f"cannot say {text!r} as a date and time: write YYYY-MM-DDTHH:MM[:SS] in local "
            "time without a zone, e.g. 2026-12-07T09:05"
        )
    try:
        day = _parse_date(parts[0], text)
        clock = _parse_time(parts[1], text)
    except SayError:
        raise SayError(
            f"cannot say {text!r} as a date and time: write YYYY-MM-DDTHH:MM[:SS] in local "
            "time without a zone, e.g. 2026-12-07T09:05"
        ) from None
    return _date(day, zh) + ([] if zh else ["at"]) + _time(*clock, zh)
