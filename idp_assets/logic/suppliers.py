"""Pure supplier-matching logic: normalisation and scoring.

Evidence order: exact identifiers (VAT ID, IBAN) found on the document, then
name similarity on legal-form-stripped names.  A name match needs a score of at
least `name_threshold` *and* a margin over the runner-up, because a wrong match
books an invoice to the wrong vendor (precision first).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz import fuzz

LEGAL_FORMS = {
    "gmbh", "mbh", "ag", "kg", "ohg", "gbr", "ug", "ek", "e.k", "e.k.", "co", "kgaa", "se",
    "sdn", "bhd", "ltd", "limited", "inc", "incorporated", "llc", "llp", "plc", "corp", "corporation",
    "company", "sarl", "sas", "sa", "bv", "nv", "srl", "spa", "oy", "ab", "as", "enterprise", "enterprises",
}

_VAT_RE = re.compile(r"\b([A-Z]{2})[\s.\-]?((?:[0-9A-Z][\s.\-]?){8,12})\b")
_IBAN_RE = re.compile(r"\b([A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?)\b")


def normalize_name(name: str) -> str:
    s = unicodedata.normalize("NFKC", name or "").casefold()
    s = s.replace("&", " and ")
    s = re.sub(r"[.'\u2019]", "", s)
    s = re.sub(r"[^\w]+", " ", s)
    toks = [t for t in s.split() if t not in LEGAL_FORMS]
    return " ".join(toks)


def normalize_id(value: str | None) -> str:
    return re.sub(r"[^A-Z0-9]", "", (value or "").upper())


def iban_valid(iban: str) -> bool:
    s = normalize_id(iban)
    if len(s) < 15 or len(s) > 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    num = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(num) % 97 == 1


def find_identifiers(text: str) -> dict[str, set[str]]:
    """VAT IDs and IBANs printed on the document (spacing variants normalised)."""
    up = (text or "").upper()
    vats = {normalize_id(a + b) for a, b in _VAT_RE.findall(up)}
    ibans = {normalize_id(m) for m in _IBAN_RE.findall(up) if iban_valid(m)}
    return {"vat_id": vats, "iban": ibans}


@dataclass
class Supplier:
    supplier_id: str
    name: str
    vat_id: str | None = None
    iban: str | None = None
    city: str | None = None
    postal_code: str | None = None
    aliases: list[str] = field(default_factory=list)


@dataclass
class MatchDecision:
    supplier: Supplier | None
    score: float
    method: str
    evidence: list[str]
    candidates: list[tuple[Supplier, float]]


def name_score(query: str, candidate: Supplier) -> float:
    q = normalize_name(query)
    if not q:
        return 0.0
    best = 0.0
    for n in [candidate.name, *candidate.aliases]:
        c = normalize_name(n)
        if not c:
            continue
        # token_set handles extra words on the document; ratio guards against short-name subset hits
        s = 0.6 * fuzz.token_set_ratio(q, c) + 0.4 * fuzz.ratio(q, c)
        best = max(best, s / 100.0)
    return best


def decide(
    supplier_name: str | None,
    text: str,
    by_identifier: list[tuple[Supplier, str]],
    name_candidates: list[Supplier],
    *,
    name_threshold: float = 0.88,
    margin: float = 0.05,
) -> MatchDecision:
    if by_identifier:
        ids = {s.supplier_id for s, _ in by_identifier}
        if len(ids) == 1:
            s, how = by_identifier[0]
            return MatchDecision(s, 1.0, how, [f"{how} printed on document"], [(s, 1.0)])
    query = supplier_name or ""
    scored = sorted(((c, name_score(query, c)) for c in name_candidates), key=lambda t: -t[1])[:3]
    if scored:
        best, score = scored[0]
        runner = scored[1][1] if len(scored) > 1 else 0.0
        if score >= name_threshold and score - runner >= margin:
            ev = [f"name similarity {score:.2f} (runner-up {runner:.2f})"]
            if best.city and best.city.casefold() in (text or "").casefold():
                ev.append(f"city '{best.city}' on document")
            return MatchDecision(best, round(score, 4), "name", ev, scored)
    top = scored[0][1] if scored else 0.0
    return MatchDecision(None, round(top, 4), "new", ["no candidate above threshold"], scored)
