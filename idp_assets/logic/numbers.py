"""Locale-tolerant parsing of amounts, dates and currencies found on invoices and receipts.

Pure functions, no I/O.  All parsers return ``None`` for input they cannot read
rather than raising, so that extraction rules can simply try them.

* :func:`parse_amount` - ``"1.234,56"``, ``"1,234.56"``, ``"-12,00"``, ``"12,00-"``,
  ``"RM 33.90"``, ``"(12.00)"``, ``"1 005,55 EUR"``, ``"1'234.50 CHF"`` -> ``Decimal``
* :func:`find_amounts` - every amount in a longer text, with its position
* :func:`parse_date` / :func:`find_dates` - ``"26.10.2022"``, ``"2022-10-26"``,
  ``"26 Oct 2022"``, ``"26/10/2022"`` (day first unless impossible), ``"Oct 26, 2022"``,
  ``"7. Mai 2014"``, ``"19 april 2014"``, two-digit years
* :func:`detect_currency` - ISO 4217 code from codes, symbols and words
  (``€`` -> EUR, ``RM`` -> MYR, ``Rs`` -> INR, ...)
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

__all__ = [
    "AmountMatch",
    "DateMatch",
    "currency_counts",
    "detect_currency",
    "find_amounts",
    "find_dates",
    "format_amount",
    "parse_amount",
    "parse_date",
]

# --------------------------------------------------------------------------- amounts

# currency markers that may surround an amount (removed before parsing)
_CURRENCY_MARK = re.compile(
    r"(?i)(?:US\$|HK\$|S\$|A\$|C\$|NZ\$|R\$|[€$£¥₹₩₽₺₫₪₱฿]|"
    r"\b(?:EUR|USD|GBP|CHF|MYR|INR|JPY|CNY|RMB|SGD|AUD|CAD|NZD|HKD|SEK|NOK|DKK|PLN|CZK|HUF|"
    r"RON|BGN|TRY|ZAR|BRL|MXN|IDR|THB|PHP|VND|KRW|AED|SAR|RUB)\b|\bRM\b|\bRs\.?|\bINR\b|\bEuro?s?\b)"
)
_APOSTROPHES = "'\u2019\u02bc`\u00b4"


def _normalise(text: str) -> str:
    s = unicodedata.normalize("NFKC", str(text))
    # unicode minus / dashes used as minus signs
    return s.replace("\u2212", "-").replace("\u2013", "-").replace("\u2014", "-")


def parse_amount(text: str | None, decimal_sep: str | None = None) -> Decimal | None:
    """Parse one monetary amount written in German, English (or Swiss/French) style.

    ``decimal_sep`` (``","`` or ``"."``) can be given when the document's locale is
    known; otherwise a lone separator followed by exactly three digits after a
    1-3 digit group (``"1.234"``, ``"1,234"``) is read as a thousands separator and
    any other lone separator as the decimal mark.  Returns ``None`` when the text is
    not a single number (``"abc"``, ``""``, ``"12.34.5,6,7"``).
    """
    if text is None:
        return None
    s = _normalise(text).strip()
    if not s:
        return None
    neg = False
    s = _CURRENCY_MARK.sub(" ", s).strip()
    if s.startswith("(") and s.endswith(")"):
        neg, s = True, s[1:-1].strip()
    s = _CURRENCY_MARK.sub(" ", s).strip()
    # thousands separators: spaces (incl. thin/no-break spaces after NFKC) and apostrophes
    s = re.sub(r"(?<=\d)[\s" + _APOSTROPHES + r"](?=\d{3}(?!\d))", "", s)
    s = s.replace(" ", "")
    if re.fullmatch(r"[-+]?\d[\d,.]*[.,](?:-|--)", s):  # German '12,-' = 12.00
        s = s.rstrip("-")[:-1]
    if s.endswith("-") and not s.startswith("-"):
        neg, s = (not neg), s[:-1]
    if s.startswith("+"):
        s = s[1:]
    if s.startswith("-"):
        neg, s = (not neg), s[1:]
    if re.fullmatch(r"\d+[.,]", s):  # '12.' -> 12
        s = s[:-1]
    if not s or not re.fullmatch(r"\d[\d,.]*\d|\d", s):
        return None
    if "," in s and "." in s:
        dec = "," if s.rfind(",") > s.rfind(".") else "."
        tho = "." if dec == "," else ","
        head, _, tail = s.rpartition(dec)
        if tail == "" or not re.fullmatch(r"\d{1,3}(?:" + re.escape(tho) + r"\d{3})*", head):
            return None
        s = head.replace(tho, "") + "." + tail
    elif "," in s or "." in s:
        sep = "," if "," in s else "."
        parts = s.split(sep)
        if len(parts) > 2:  # several separators of one kind: thousands grouping
            if not (1 <= len(parts[0]) <= 3 and all(len(p) == 3 for p in parts[1:])):
                return None
            s = "".join(parts)
        else:
            head, tail = parts
            if decimal_sep is not None:
                is_thousands = sep != decimal_sep and len(tail) == 3
            else:
                # '1,234' / '1.234' -> thousands; '0.500', '12,50', '1234.567' -> decimal
                is_thousands = len(tail) == 3 and 1 <= len(head) <= 3 and head not in ("0", "")
            s = head + tail if is_thousands else (head or "0") + "." + tail
    try:
        d = Decimal(s)
    except InvalidOperation:
        return None
    return -d if neg else d


@dataclass(frozen=True)
class AmountMatch:
    value: Decimal
    raw: str
    start: int
    end: int
    currency: str | None = None
    has_decimals: bool = True


# number with a decimal part (',' or '.' followed by exactly 2 digits), optional grouping
_NUM_DEC = r"\d{1,3}(?:[.,' \u00a0\u202f]\d{3})+[.,]\d{2}|\d+[.,]\d{2}"
_NUM_INT = r"\d{1,3}(?:[.,' ]\d{3})+|\d+"
_CUR_PREFIX = (
    r"(?:US\$|HK\$|S\$|A\$|C\$|R\$|[€$£¥₹]|\b(?:EUR|USD|GBP|CHF|MYR|INR|SGD|AUD|CAD|JPY|RM|Rs\.?))"
)
_CUR_SUFFIX = r"(?:[€$£¥₹]|\b(?:EUR|USD|GBP|CHF|MYR|INR|SGD|AUD|CAD|JPY|Euro?)\b)"
_AMOUNT_RE = re.compile(
    r"(?<![\w.,/:-])"
    r"(?P<paren>\()?"
    r"(?P<sign>[-+])?\s?"
    r"(?:(?P<cur1>" + _CUR_PREFIX + r")\s?(?P<sign2>-)?\s?)?"
    r"(?:(?P<dec>" + _NUM_DEC + r")|(?P<int>" + _NUM_INT + r"))"
    r"(?P<trail>-(?![\w]))?"
    r"(?:\s?(?P<cur2>" + _CUR_SUFFIX + r"))?"
    r"(?(paren)\))"
    r"(?![\w%]|[.,]\d|\s?%)"
)


def find_amounts(text: str, require_decimals: bool = True) -> list[AmountMatch]:
    """All amounts in ``text``, in order.

    Integers (``"1939"``) count only when ``require_decimals`` is false or when a
    currency marker is attached (``"Rs 1939"``, ``"$42"``).  Percentages are skipped.
    """
    s = _normalise(text)
    out: list[AmountMatch] = []
    for m in _AMOUNT_RE.finditer(s):
        cur = m.group("cur1") or m.group("cur2")
        has_dec = m.group("dec") is not None
        if not has_dec and require_decimals and not m.group("cur1"):
            continue  # bare integers only with a currency prefix ('Rs 1939', '$42')
        start, end = m.start(), m.end()
        if m.group("cur1") and m.group("cur2") and not m.group("paren"):
            end = m.start("cur2")  # '$ 112.90 $ 16.94': the second '$' belongs to the next amount
        raw = s[start:end].strip()
        val = parse_amount(raw)
        if val is None and m.group("cur1"):
            # a currency code glued to the figure ('RM7.00', 'EUR12,50'), as receipts and OCR print it
            val = parse_amount(s[start:m.start("cur1")] + m.group("cur1") + " " + s[m.end("cur1"):end].lstrip())
        if val is None:
            continue
        out.append(AmountMatch(val, raw, start, end, _currency_of_marker(cur) if cur else None, has_dec))
    return out


def format_amount(value: Decimal, style: str = "en", grouping: bool = True, places: int = 2) -> str:
    """Format ``value`` as ``1,234.56`` (``style="en"``) or ``1.234,56`` (``"de"``)."""
    q = Decimal(1).scaleb(-places) if places else Decimal(1)
    v = value.quantize(q)
    neg = v < 0
    ip, _, fp = f"{abs(v):f}".partition(".")
    if grouping:
        ip = f"{int(ip):,}"
    if style == "de":
        ip = ip.replace(",", ".")
        s = ip + ("," + fp if fp else "")
    else:
        s = ip + ("." + fp if fp else "")
    return ("-" + s) if neg else s


# --------------------------------------------------------------------------- dates

_MONTHS: dict[str, int] = {}
for _num, _names in enumerate(
    [
        "january januar janvier januari jan janv jän jaen",
        "february februar février fevrier februari feb febr fév fev",
        "march märz maerz mars maart mar mär mrz",
        "april avril apr avr",
        "may mai mei",
        "june juni juin jun",
        "july juli juillet jul juil",
        "august août aout augustus aug",
        "september septembre sep sept",
        "october oktober octobre okt oct",
        "november novembre nov",
        "december dezember décembre decembre dec dez déc",
    ],
    start=1,
):
    for _n in _names.split():
        _MONTHS[_n] = _num
_MONTH_ALT = "|".join(sorted((re.escape(k) for k in _MONTHS), key=len, reverse=True))

# a four-digit year may run straight into the time on receipts ('15/07/201712:07')
_D_NUM = re.compile(r"(?<![\d.,/-])(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})(?:(?![\d]|[.,/-]\d)|(?<=\d{4})(?=\d{1,2}:\d{2}))")
_D_ISO = re.compile(r"(?<![\d.,/-])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d]|[.,/-]\d)")
_D_COMPACT = re.compile(r"(?<![\d.,/-])((?:19|20)\d{2})(\d{2})(\d{2})(?![\d.,/-]?\d)")
_D_DMY_TXT = re.compile(
    r"(?i)(?<![\w])(\d{1,2})(?:st|nd|rd|th|er)?\.?[\s-]*(" + _MONTH_ALT + r")\.?(?![a-zäöüéû])[\s,.-]*(\d{4}|\d{2})(?!\d)"
)
_D_MDY_TXT = re.compile(
    r"(?i)(?<![\w])(" + _MONTH_ALT + r")\.?(?![a-zäöüéû])\s*(\d{1,2})(?:st|nd|rd|th)?\s*,?\s*(\d{4})(?!\d)"
)


@dataclass(frozen=True)
class DateMatch:
    value: date
    raw: str
    start: int
    end: int
    style: str  # 'dmy', 'mdy', 'ymd', 'text'


def _year(y: str, today: date | None = None) -> int:
    n = int(y)
    if len(y) == 4:
        return n
    ref = (today or date.today()).year
    full = 2000 + n
    return full if full <= ref + 10 else 1900 + n


def _mk(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def find_dates(text: str, day_first: bool = True, today: date | None = None) -> list[DateMatch]:
    """All dates in ``text``, in order of position (overlapping matches removed)."""
    s = _normalise(text).replace("~", "-")  # OCR reads '-' as '~' on thermal receipts
    found: list[DateMatch] = []
    for m in _D_ISO.finditer(s):
        d = _mk(int(m.group(1)), int(m.group(3)), int(m.group(4)))
        if d:
            found.append(DateMatch(d, m.group(0), m.start(), m.end(), "ymd"))
    for m in _D_NUM.finditer(s):
        a, b, y = int(m.group(1)), int(m.group(3)), _year(m.group(4), today)
        if day_first:
            d = _mk(y, b, a) or _mk(y, a, b)
            style = "dmy" if _mk(y, b, a) else "mdy"
        else:
            d = _mk(y, a, b) or _mk(y, b, a)
            style = "mdy" if _mk(y, a, b) else "dmy"
        if d:
            found.append(DateMatch(d, m.group(0), m.start(), m.end(), style))
    for m in _D_DMY_TXT.finditer(s):
        d = _mk(_year(m.group(3), today), _MONTHS[m.group(2).lower()], int(m.group(1)))
        if d:
            found.append(DateMatch(d, m.group(0), m.start(), m.end(), "text"))
    for m in _D_MDY_TXT.finditer(s):
        d = _mk(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)))
        if d:
            found.append(DateMatch(d, m.group(0), m.start(), m.end(), "text"))
    for m in _D_COMPACT.finditer(s):
        d = _mk(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if d:
            found.append(DateMatch(d, m.group(0), m.start(), m.end(), "ymd"))
    # drop matches overlapping an earlier/longer one
    found.sort(key=lambda x: (x.start, -(x.end - x.start)))
    out: list[DateMatch] = []
    for f in found:
        if out and f.start < out[-1].end:
            continue
        out.append(f)
    return out


def parse_date(text: str | None, day_first: bool = True, today: date | None = None) -> date | None:
    """The first date in ``text`` (``None`` if there is none).

    Numeric dates are read day-first (``03/04/2022`` = 3 April) unless ``day_first``
    is false or the day-first reading is impossible (``03/20/2023`` = 20 March).
    Two-digit years map to 20yy unless that is more than ten years after ``today``.
    """
    if not text:
        return None
    found = find_dates(text, day_first=day_first, today=today)
    return found[0].value if found else None


# --------------------------------------------------------------------------- currency

ISO_CODES = frozenset(
    "EUR USD GBP CHF MYR INR JPY CNY SGD AUD CAD NZD HKD SEK NOK DKK PLN CZK HUF RON BGN "
    "TRY ZAR BRL MXN IDR THB PHP VND KRW AED SAR RUB ILS".split()
)
# codes that also occur as ordinary words / syllables in (upper-case) receipt text
_WEAK_CODES = frozenset("RON BGN TRY ZAR BRL MXN IDR THB PHP VND KRW AED SAR RUB ILS CAD AUD NOK SEK DKK HUF".split())


def _next_to_number(s: str, start: int, end: int) -> bool:
    return bool(re.search(r"\d[\d.,]*\s?$", s[max(0, start - 12): start]) or re.match(r"^\s?[-(]?\d", s[end: end + 4]))


_SYMBOLS = {
    "US$": "USD", "HK$": "HKD", "S$": "SGD", "A$": "AUD", "C$": "CAD", "NZ$": "NZD", "R$": "BRL",
    "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY",
    "₫": "VND", "₪": "ILS", "₱": "PHP", "฿": "THB", "$": "USD",
}
_WORDS = {
    "euro": "EUR", "euros": "EUR", "us dollars": "USD", "us dollar": "USD", "dollars": "USD",
    "ringgit": "MYR", "rupees": "INR", "rupee": "INR", "pounds sterling": "GBP", "sterling": "GBP",
    "swiss francs": "CHF", "rmb": "CNY", "yuan": "CNY",
}
_CUR_TOKEN = re.compile(
    r"(?P<sym>US\$|HK\$|S\$|A\$|C\$|NZ\$|R\$|[€£¥₹₩₽₺₫₪₱฿$])"
    r"|(?<![A-Za-z])(?P<code>" + "|".join(sorted(ISO_CODES)) + r")(?![A-Za-z])"
    r"|(?<![A-Za-z])(?P<rm>RM)(?![A-Za-z])"
    r"|(?<![A-Za-z])(?P<rs>Rs)\.?(?=\s?\d)"
    r"|(?i:(?<![A-Za-z])(?P<word>euros?|us dollars?|dollars|ringgit|rupees?|pounds sterling|sterling|swiss francs|yuan)(?![A-Za-z]))"
)


def _currency_of_marker(marker: str) -> str | None:
    m = marker.strip().rstrip(".")
    if m.upper() in ISO_CODES:
        return m.upper()
    if m in _SYMBOLS:
        return _SYMBOLS[m]
    if m.upper() == "RM":
        return "MYR"
    if m.lower() == "rs":
        return "INR"
    if m.lower().startswith("eur"):
        return "EUR"
    return None


def currency_counts(text: str | None) -> Counter:
    """How often each ISO currency is indicated in ``text`` (codes, symbols, words)."""
    c: Counter = Counter()
    if not text:
        return c
    s = _normalise(text)
    for m in _CUR_TOKEN.finditer(s):
        if m.group("sym"):
            c[_SYMBOLS[m.group("sym")]] += 1
        elif m.group("code"):
            code = m.group("code")
            if code in _WEAK_CODES and not _next_to_number(s, m.start(), m.end()):
                continue  # 'SAR', 'TRY', 'PHP'... are also words: only next to an amount
            c[code] += 1
        elif m.group("rm"):
            c["MYR"] += 1
        elif m.group("rs"):
            c["INR"] += 1
        elif m.group("word"):
            c[_WORDS[m.group("word").lower()]] += 1
    return c


def detect_currency(text: str | None) -> str | None:
    """The ISO 4217 code the text indicates most often (first seen wins ties), else ``None``.

    A bare ``$`` counts as USD unless a more specific dollar (``S$``, ``HK$``, ``CAD``...)
    is also present.
    """
    c = currency_counts(text)
    if not c:
        return None
    if "USD" in c and any(k in c for k in ("SGD", "HKD", "AUD", "CAD", "NZD")):
        # '$' next to an explicit other dollar: the explicit one wins
        del c["USD"]
    best = max(c.values())
    s = _normalise(text or "")
    cands = [k for k, v in c.items() if v == best]
    if len(cands) == 1:
        return cands[0]
    # tie: the one indicated first
    pos = {}
    for m in _CUR_TOKEN.finditer(s):
        k = (
            _SYMBOLS.get(m.group("sym") or "", None)
            or m.group("code")
            or ("MYR" if m.group("rm") else None)
            or ("INR" if m.group("rs") else None)
            or _WORDS.get((m.group("word") or "").lower())
        )
        if k in cands and k not in pos:
            pos[k] = m.start()
    return min(cands, key=lambda k: pos.get(k, 1 << 30))
