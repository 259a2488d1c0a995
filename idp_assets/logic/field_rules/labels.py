"""The invoice label vocabulary (``idp_assets/logic/data/invoice_labels.json``) as regexes.

Labels are data, not code: per field (EN 16931 business term) a list of terms with language,
prior weight and source.  :func:`label_patterns` turns a field's terms into the
``[(regex, weight), ...]`` list the rules iterate (strongest first); :func:`payment_terms_days`
reads 'zahlbar innerhalb von 14 Tagen' / 'payable within 30 days' as a number of days;
:func:`line_column` maps a table header cell to an EN 16931 line term (BT-126 ... BT-153).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

from idp_assets.logic.field_rules.candidates import _LB

VOCABULARY_PATH = Path(__file__).resolve().parents[1] / "data" / "invoice_labels.json"

_ACCENTS = {
    "ä": "(?:ä|ae|a)", "ö": "(?:ö|oe|o)", "ü": "(?:ü|ue|u)", "ß": "(?:ß|ss)",
    "é": "[ée]", "è": "[èe]", "ê": "[êe]", "à": "[àa]", "á": "[áa]", "í": "[íi]", "ó": "[óo]", "ú": "[úu]",
    "ñ": "[ñn]", "ç": "[çc]", "°": "[°ºo]", "º": "[°ºo]",
}


@lru_cache(maxsize=1)
def vocabulary() -> dict:
    return json.loads(VOCABULARY_PATH.read_text(encoding="utf-8"))


def vocabulary_hash() -> str:
    return hashlib.sha256(VOCABULARY_PATH.read_bytes()).hexdigest()[:12]


def term_regex(term: str) -> str:
    """Regex source of one term: case is ignored by the caller; a run of spaces, dots and dashes
    inside the term matches any such run or none, a trailing '.' is optional, umlauts and accents
    also match their base letters."""
    term = unicodedata.normalize("NFC", term.strip())
    out = []
    for part in re.split(r"([ .\-]+)", term):
        if not part:
            continue
        if re.fullmatch(r"[ .\-]+", part):
            # 'USt-Id-Nr.' also matches 'USt.-Id.-Nr.', 'USt Id Nr' and 'UStIdNr'
            out.append(r"[.\- \t]*")
            continue
        out.append(_chars(part))
    if term.endswith("."):
        out[-1] = r"\.?"
    return "".join(out)


def _chars(part: str) -> str:
    out = []
    for ch in part:
        low = ch.lower()
        if low in _ACCENTS:
            out.append(_ACCENTS[low])
        elif ch == "'":
            out.append("['\u2019]")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def terms(field: str, languages: tuple[str, ...] | None = None) -> list[dict]:
    spec = vocabulary()["fields"].get(field)
    if spec is None:
        raise KeyError(f"no field {field!r} in {VOCABULARY_PATH.name}")
    return [t for t in spec["terms"] if languages is None or t["lang"] in languages or t["lang"] == "xx"]


def label_alternation(*fields: str, min_weight: float = 0.0) -> str:
    """One regex alternation of every term of the fields (longest first), for embedding."""
    ts = sorted({t["term"] for f in fields for t in terms(f) if t["weight"] >= min_weight}, key=len, reverse=True)
    return "(?:" + "|".join(term_regex(t) for t in ts) + ")"


@lru_cache(maxsize=None)
def label_patterns(*fields: str, exclude_weight_below: float = 0.0) -> list[tuple[re.Pattern, float]]:
    """``[(compiled label regex, weight)]`` for the fields' terms, one regex per weight, strongest
    first; a label must not continue a longer word on either side."""
    by_w: dict[float, set[str]] = {}
    for f in fields:
        for t in terms(f):
            if t["weight"] >= exclude_weight_below:
                by_w.setdefault(float(t["weight"]), set()).add(t["term"])
    out = []
    for w in sorted(by_w, reverse=True):
        alts = sorted(by_w[w], key=len, reverse=True)  # longest first: 'Invoice Date' before 'Invoice'
        rx = "|".join(term_regex(a) for a in alts)
        out.append((re.compile(_LB + "(?:" + rx + r")(?![\w])", re.IGNORECASE), w))
    return out


@lru_cache(maxsize=1)
def _payment_terms() -> list[re.Pattern]:
    out = []
    for p in vocabulary()["payment_terms"]:
        left, right = p["pattern"].split("{N}")
        rx = (term_regex(left) + r"[ \t]*" if left.strip() else "") + r"(\d{1,3})(?![.,]?\d)" + (
            r"[ \t]*" + term_regex(right) if right.strip() else "")
        out.append(re.compile(_LB + rx + r"(?![\w])", re.IGNORECASE))
    return out


def payment_terms_days(line: str) -> tuple[int, str] | None:
    """``(days, matched text)`` of the first payment-terms phrase in the line, else ``None``."""
    for rx in _payment_terms():
        m = rx.search(line)
        if m and 0 < int(m.group(1)) <= 180:
            return int(m.group(1)), m.group(0)
    return None


@lru_cache(maxsize=1)
def _line_columns() -> list[tuple[str, str, re.Pattern]]:
    out = []
    for name, spec in vocabulary()["line_columns"].items():
        alts = sorted((t["term"] for t in spec["terms"]), key=len, reverse=True)
        out.append((name, spec["bt"], re.compile("^(?:" + "|".join(term_regex(a) for a in alts) + r")$", re.I)))
    return out


def line_column(header: str) -> tuple[str, str] | None:
    """``(semantic name, BT id)`` of a line-item table header cell, or ``None``."""
    h = " ".join((header or "").split()).strip(" :")
    for name, bt, rx in _line_columns():
        if rx.match(h):
            return name, bt
    return None
