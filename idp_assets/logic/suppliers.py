"""Pure supplier-matching logic: normalisation, identifiers, evidence scoring, decision.

Evidence, strongest first:

1. exact identifiers printed on the document or given by the e-invoice XML: VAT ID
   (spacing variants such as ``DE 123 456 789`` normalised), IBAN (mod-97 checked),
   tax number (German Steuernummer ``201/113/40209``, GSTIN, SIREN…), GLN (GS1 check digit).
   An identifier hit is only accepted when the document does not contradict it
   (name similarity or postcode+city/street agreement), because buyers' identifiers
   and shared sample IDs appear on documents too.
2. name + address similarity: names normalised (case, punctuation, OCR digit/letter
   confusions inside words) with legal forms stripped (GmbH, AG, KG, e.K., Sdn Bhd, Ltd, Inc,
   SARL, BV…).  Every candidate is searched for in the text (token-aligned), and the printed
   name segment (up to the legal form) must be *explained* by the candidate, so that
   ``MR. D.I.Y. (KUCHAI) SDN BHD`` is not taken for ``MR. D.I.Y. SDN BHD``.  Postcode, city and
   street found in the text add evidence.
3. optional: an LLM adjudicates close calls (`adjudicate`), off by default.

A name match needs ``score >= accept`` *and* a margin over the runner-up; everything else is
reported as ``new`` with the candidates (precision first: a wrong match books an invoice to the
wrong vendor).  `Thresholds` holds the calibrated defaults (see `idp_assets/bench_suppliers.py
calibrate` and the README section "Supplier recognition").
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz import fuzz

# ------------------------------------------------------------------------------------------------ names

LEGAL_FORMS = {
    # German / Austrian / Swiss
    "gmbh", "mbh", "ag", "kg", "ohg", "gbr", "ug", "ek", "ev", "eg", "kgaa", "se", "co", "haftungsbeschrankt",
    # English-speaking, Asian
    "ltd", "limited", "inc", "incorporated", "llc", "llp", "plc", "corp", "corporation", "pvt", "pte", "pty",
    "company", "sdn", "bhd", "berhad", "sb", "plt", "lp",
    # French, Benelux, Nordic, Southern Europe
    "sarl", "sas", "sasu", "sa", "eurl", "sci", "bv", "nv", "vof", "cv", "srl", "spa", "sl", "oy", "ab", "as", "aps",
}
_SDN_BHD_OCR = re.compile(r"\b(?:s[dao0ie1l][mnh]\.?\s*b[hn][dl]|s\s*b)\b")  # OCR'd 'SDN BHD', 'SON BHD', 'SIN BHD'
_NON_WORD = re.compile(r"[^\w]+")
_OCR_FOLD = str.maketrans({"0": "o", "1": "i", "5": "s", "8": "b", "|": "i"})


def fold(text: str) -> str:
    """Case and compatibility forms folded; '&' spelled out; dots/apostrophes inside abbreviations joined."""
    s = unicodedata.normalize("NFKC", text or "").casefold()  # 'ß' -> 'ss'; umlauts are kept
    s = re.sub(r"(?<=[a-z])[!|](?=[a-z])", "", s)  # OCR: 'RES!AURANT' (a lost letter read as punctuation)
    s = s.replace("&", " and ")
    s = re.sub(r"(?<=\w)[.'\u2019](?=\w)", "", s)  # D.I.Y. -> DIY, Nando's -> Nandos
    s = re.sub(r"[.'\u2019]", " ", s)
    return s


def _fold_token(t: str) -> str:
    # OCR digit/letter confusions only inside mixed tokens ('D1Y' -> 'diy'); pure numbers stay numbers
    if any(c.isalpha() for c in t) and any(c.isdigit() for c in t):
        return t.translate(_OCR_FOLD)
    return t


def name_tokens(name: str, *, drop_numbers: bool = False) -> list[str]:
    s = _SDN_BHD_OCR.sub(" ", fold(name))
    toks = [_fold_token(t) for t in _NON_WORD.sub(" ", s).replace("_", " ").split()]
    toks = [t for t in toks if t not in LEGAL_FORMS]
    while toks and toks[-1] == "and":
        toks.pop()
    while toks and toks[0] == "and":
        toks.pop(0)
    if drop_numbers:
        toks = [t for t in toks if not t.isdigit()]
    return toks


def normalize_name(name: str) -> str:
    """Normalised name with legal forms stripped: 'MR. D.I.Y. (JOHOR) SDN BHD' -> 'mr diy johor'."""
    return " ".join(name_tokens(name))


def normalize_id(value: str | None) -> str:
    return re.sub(r"[^A-Z0-9]", "", (value or "").upper())


def normalize_postcode(value: str | None) -> str:
    return re.sub(r"[^A-Z0-9]", "", (value or "").upper())


# ------------------------------------------------------------------------------------------------ identifiers

# VAT number bodies per country prefix (EU VIES formats + GB/CH/NO), after removing separators
_VAT_FORMATS = {
    "AT": r"U\d{8}", "BE": r"[01]\d{9}", "BG": r"\d{9,10}", "CY": r"\d{8}[A-Z]", "CZ": r"\d{8,10}", "DE": r"\d{9}",
    "DK": r"\d{8}", "EE": r"\d{9}", "EL": r"\d{9}", "GR": r"\d{9}", "ES": r"[A-Z0-9]\d{7}[A-Z0-9]", "FI": r"\d{8}",
    "FR": r"[A-HJ-NP-Z0-9]{2}\d{9}", "HR": r"\d{11}", "HU": r"\d{8}", "IE": r"\d[A-Z0-9+*]\d{5}[A-Z]{1,2}",
    "IT": r"\d{11}", "LT": r"\d{9}|\d{12}", "LU": r"\d{8}", "LV": r"\d{11}", "MT": r"\d{8}", "NL": r"\d{9}B\d{2}",
    "PL": r"\d{10}", "PT": r"\d{9}", "RO": r"\d{2,10}", "SE": r"\d{12}", "SI": r"\d{8}", "SK": r"\d{10}",
    "GB": r"\d{9}|\d{12}|GD\d{3}|HA\d{3}", "XI": r"\d{9}|\d{12}", "CHE": r"\d{9}", "NO": r"\d{9}(?:MVA)?",
}
_VAT_RE = re.compile(r"(?<![A-Z0-9])(?=(CHE|[A-Z]{2})[ \t]?[-.]?[ \t]?([0-9A-Z](?:[ \t.\-]?[0-9A-Z+*]){1,13}))")  # overlapping
_IBAN_RE = re.compile(r"(?<![A-Z0-9])([A-Z]{2}\d{2}(?:[ \t]?[A-Z0-9]){10,32})")
_STNR_RE = re.compile(r"(?<![\d/])(\d{2,3}/\d{3,4}/\d{4,5}(?:/\d)?)(?![\d/])")  # German Steuernummer
_GSTIN_RE = re.compile(r"(?<![A-Z0-9])(\d{2}[A-Z]{5}\d{4}[A-Z][0-9A-Z]Z[0-9A-Z])(?![A-Z0-9])")  # India GSTIN
_DIGITS13_RE = re.compile(r"(?<!\d)(\d{13})(?!\d)")
_LABELLED_NUMBER_RE = re.compile(
    r"(?i)(?:steuer[- ]?nr\.?|steuernummer|tax (?:no|number|id)\.?|siren|siret|gst(?: reg)?(?: id)?(?: no)?\.?)"
    r"[ \t]*[:.]?[ \t]*([0-9][0-9 ]{6,16}[0-9])"
)


def vat_valid(vat: str) -> bool:
    s = normalize_id(vat)
    cc = "CHE" if s.startswith("CHE") else s[:2]
    fmt = _VAT_FORMATS.get(cc)
    return bool(fmt and re.fullmatch(fmt, s[len(cc):]) and any(c.isdigit() for c in s[len(cc):]))


def iban_valid(iban: str) -> bool:
    s = normalize_id(iban)
    if len(s) < 15 or len(s) > 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    num = "".join(str(int(c, 36)) for c in s[4:] + s[:4])
    return int(num) % 97 == 1


def gln_valid(gln: str) -> bool:
    """GS1 mod-10 check digit of a 13-digit Global Location Number."""
    s = re.sub(r"\D", "", gln or "")
    if len(s) != 13:
        return False
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(s[:12]))
    return (10 - total % 10) % 10 == int(s[12])


def find_identifiers(text: str) -> dict[str, set[str]]:
    """VAT IDs, IBANs, tax numbers and GLNs printed in a text, normalised (separators removed)."""
    up = (text or "").upper()
    vats: set[str] = set()
    for m in _VAT_RE.finditer(up):
        cc, body = m.group(1), normalize_id(m.group(2))
        for end in range(len(body), 1, -1):  # 'DE123456789 HRB' -> the longest prefix that is a valid VAT ID
            if vat_valid(cc + body[:end]):
                vats.add(cc + body[:end])
                break
    ibans: set[str] = set()
    for m in _IBAN_RE.finditer(up):
        groups = m.group(1).split()
        for j in range(len(groups), 0, -1):
            cand = normalize_id("".join(groups[:j]))
            if len(cand) >= 15 and iban_valid(cand):
                ibans.add(cand)
                break
    vats = {v for v in vats if not any(i.startswith(v) for i in ibans)}  # 'DE89 3704 0044…' is an IBAN
    taxes = {normalize_id(x) for x in _STNR_RE.findall(up)} | set(_GSTIN_RE.findall(up))
    taxes |= {normalize_id(x) for x in _LABELLED_NUMBER_RE.findall(text or "")}
    glns = {x for x in _DIGITS13_RE.findall(re.sub(r"(?<=\d) (?=\d)", "", up)) if gln_valid(x)}
    taxes |= glns  # a 13-digit ELSTER tax number can pass the GLN check digit too: look it up as both
    return {"vat_id": vats, "iban": ibans, "tax_number": taxes, "gln": glns}


# ------------------------------------------------------------------------------------------------ data


@dataclass
class Supplier:
    supplier_id: str
    name: str
    vat_id: str | None = None
    iban: str | None = None
    city: str | None = None
    postal_code: str | None = None
    aliases: list[str] = field(default_factory=list)
    tax_number: str | None = None
    gln: str | None = None
    street: str | None = None
    country: str | None = None

    def names(self) -> list[str]:
        return [self.name, *self.aliases]


@dataclass
class Thresholds:
    """Decision thresholds (calibrated on the development corpus; see module docstring)."""

    # calibrated with `idp bench suppliers calibrate` on the development corpus: zero wrong matches and
    # every left-out supplier 'new' for accept in [0.70, 0.84] at margin 0.04; 0.80 is two thirds up
    accept: float = 0.80  # minimum combined name+address score for a name match
    margin: float = 0.04  # minimum lead over the runner-up (a different supplier)
    id_name_corroboration: float = 0.7  # an identifier hit needs this name similarity (or the address) when the document prints another address
    retrieve_limit: int = 15  # candidates per query string from the master
    llm_band: float = 0.12  # close calls within this band below `accept` go to the LLM (when enabled)


@dataclass
class DocEvidence:
    """What a document offers for matching (built once per document)."""

    text: str
    supplier_name: str | None = None
    name_from_xml: bool = False
    ids: dict[str, set[str]] = field(default_factory=dict)
    ids_from_fields: dict[str, set[str]] = field(default_factory=dict)
    lines: list[list[str]] = field(default_factory=list)  # normalised tokens per text line (legal forms kept)
    flat: str = ""  # normalised text, tokens joined by single spaces, lines by ' | '
    postcodes: set[str] = field(default_factory=set)

    @property
    def all_ids(self) -> dict[str, set[str]]:
        out = {k: set(v) for k, v in self.ids.items()}
        for k, v in self.ids_from_fields.items():
            out.setdefault(k, set()).update(v)
        return out


def _line_tokens(line: str) -> list[str]:
    s = fold(line)
    return [_fold_token(t) for t in _NON_WORD.sub(" ", s).replace("_", " ").split()]


def build_evidence(text: str, supplier_name: str | None = None, *, name_from_xml: bool = False,
                   field_ids: dict[str, set[str]] | None = None, max_lines: int = 400) -> DocEvidence:
    raw = []
    for ln in (text or "").splitlines()[:max_lines]:
        raw.append(ln)
        if ":" in ln:  # 'Titulaire du compte : NETPRESSE' -> also the part after the label
            raw.append(ln.rsplit(":", 1)[1])
    lines = [t for t in (_line_tokens(ln) for ln in raw) if t]
    # names wrapped over two lines in letterheads ('AMPANG 210' / 'FIRST CITY PARKING SDN BHD')
    head = lines[:20]
    lines += [a + b for a, b in zip(head, head[1:]) if not any(t in LEGAL_FORMS for t in a[1:]) and len(a) + len(b) <= 10]
    flat = " | ".join(" ".join(t) for t in lines)
    pcs = {normalize_postcode(m) for m in re.findall(r"(?<![\w])(\d{4,6}(?: ?[A-Z]{2})?)(?![\w])", (text or "").upper())}
    pcs |= {p[:4] for p in pcs if len(p) == 6 and p[4:].isalpha()}
    return DocEvidence(text=text or "", supplier_name=supplier_name, name_from_xml=name_from_xml,
                       ids=find_identifiers(text), ids_from_fields={k: set(v) for k, v in (field_ids or {}).items() if v},
                       lines=lines, flat=flat, postcodes=pcs)


def query_strings(ev: DocEvidence, limit: int = 20) -> list[str]:
    """Name-like strings of the document to retrieve candidates with (trigram / fuzzy search)."""
    out: list[str] = []

    def add(s: str) -> None:
        s = s.strip()
        if len(s) >= 3 and s not in out and sum(c.isalpha() for c in s) >= 3:
            out.append(s)

    if ev.supplier_name:
        add(normalize_name(ev.supplier_name))
    header = ev.lines[:10]
    with_form = [t for t in ev.lines if any(x in LEGAL_FORMS for x in t[1:])][:6]
    short = [t for t in ev.lines[10:] if len(t) <= 5 and any(len(x) >= 4 and x.isalpha() for x in t)]
    for toks in header + with_form + short:
        seg = _segment(toks, 0)
        add(" ".join(x for x in seg if not x.isdigit())[:60])
        if len(out) >= limit:
            break
    return out[:limit]


def _segment(toks: list[str], start: int, max_len: int = 8) -> list[str]:
    """Tokens from `start` up to (not including) the first legal-form token: the printed name."""
    seg = []
    for t in toks[start:start + max_len]:
        if t in LEGAL_FORMS and seg:
            break
        seg.append(t)
    return seg


# ------------------------------------------------------------------------------------------------ scoring


def _ratio(a: str, b: str) -> float:
    return fuzz.ratio(a, b) / 100.0


class TokenWeights:
    """IDF weights of name tokens in the master: a rare token ('amtech') decides more than a
    common one ('restaurant', 'trading').  Built by the master back end, cached per version."""

    def __init__(self, df: dict[str, int] | None = None, n: int = 0):
        self.df, self.n = df or {}, n

    @classmethod
    def from_names(cls, names) -> "TokenWeights":
        df: dict[str, int] = {}
        n = 0
        for name in names:
            n += 1
            for t in set(name_tokens(name)):
                df[t] = df.get(t, 0) + 1
        return cls(df, n)

    @classmethod
    def from_norms(cls, norms) -> "TokenWeights":
        """From already normalised names (space-separated tokens)."""
        df: dict[str, int] = {}
        n = 0
        for norm in norms:
            n += 1
            for t in set(norm.split()):
                df[t] = df.get(t, 0) + 1
        return cls(df, n)

    def rare_tokens(self, tokens, max_df: int = 200, limit: int = 40) -> list[str]:
        """Tokens of the document that occur in the master, but in at most `max_df` names, rarest first."""
        seen = {t for t in tokens if len(t) >= 3 and not t.isdigit() and 0 < self.df.get(t, 0) <= max_df}
        return sorted(seen, key=lambda t: (self.df[t], t))[:limit]

    def distinctive(self, query: str, max_df: int = 200) -> str:
        """A query string without its common words ('handel', 'restaurant'), which only slow a
        trigram search down; unknown words (OCR variants) stay."""
        toks = query.split()
        keep = [t for t in toks if self.df.get(t, 0) <= max_df]
        return " ".join(keep) if len(" ".join(keep)) >= 3 else ""

    def unknown_words(self, queries: list[str], limit: int = 6) -> list[str]:
        """Words (4+ letters) of name-like strings that no master name has exactly, longest first:
        the ones a similarity search can still connect to a supplier (OCR variants)."""
        out: list[str] = []
        for q in queries:
            for t in q.split():
                if len(t) >= 4 and sum(c.isalpha() for c in t) >= 3 and t not in self.df and t not in out:
                    out.append(t)
        return sorted(out, key=lambda t: (-len(t), t))[:limit]

    def __call__(self, tok: str) -> float:
        import math

        base = math.log(1.0 + (self.n + 1) / (self.df.get(tok, 0) + 1)) if self.n else 1.0
        return base * (0.5 if len(tok) <= 1 else 1.0)


def _coverage(n_toks: list[str], toks: list[str], weights) -> float:
    """IDF-weighted share of the name's tokens found among `toks` (credit 0 at similarity 0.5, 1 at 1.0).
    Each document token explains at most one name token ('JIAWEI JIAWEI' needs the word twice); pairs
    are assigned best-first, so an exact word is never used up by a fuzzy neighbour."""
    ws = [weights(t) if weights else 1.0 for t in n_toks]
    tot = sum(ws)
    if not tot:
        return 0.0
    pairs = sorted(((fuzz.ratio(t, u) / 100.0, i, j) for i, t in enumerate(n_toks) for j, u in enumerate(toks)),
                   reverse=True)
    used_n: set[int] = set()
    used_d: set[int] = set()
    got = 0.0
    for sim, i, j in pairs:
        if sim <= 0.5:
            break
        if i in used_n or j in used_d:
            continue
        used_n.add(i)
        used_d.add(j)
        got += ws[i] * min(1.0, (sim - 0.5) * 2.0)  # graded: an OCR slip keeps most of the credit
    return got / tot


def name_in_text(name: str, ev: DocEvidence, weights=None) -> tuple[float, str]:
    """How well a master name is printed in the document, best over its occurrences of
    0.15 * token-aligned span similarity + 0.45 * similarity to the printed name (the line up to its
    legal form) + 0.2 * IDF-weighted share of the name found + 0.2 * IDF-weighted share of the
    printed name explained by the candidate (so 'WAN SHENG' does not explain 'RESTORAN WAN SHENG')."""
    n_toks = name_tokens(name)
    if not n_toks:
        return 0.0, ""
    n = " ".join(n_toks)
    best, where = 0.0, ""
    k = len(n_toks)
    heads = n_toks[:3]
    for toks in ev.lines:
        # where the name may start: a word like one of its first three (the first may be lost: '& BEST')
        starts = sorted({max(0, i - j) for i, t in enumerate(toks) for j, h in enumerate(heads)
                         if fuzz.ratio(t, h) >= 60})
        for i in starts:
            for w in (k - 1, k, k + 1):
                if w < 1 or i + w > len(toks):
                    continue
                window = [t for t in toks[i:i + w] if t not in LEGAL_FORMS]
                span = _ratio(" ".join(window), n)
                if span < 0.6:
                    continue
                # the printed name around the span: up to the legal form (or one token past the name's
                # length) after it, and up to three words before it when the line is a short letterhead line
                # or while those words occur in supplier names ('Restoran' Wan Sheng, 'Amazon' Web Services),
                # not sentence text ('… this invoice Amazon Web Services, Inc.')
                end = next((j for j in range(i + 1, len(toks)) if toks[j] in LEGAL_FORMS), len(toks))
                end = min(end, i + k + 1)
                start = i
                while start > 0 and i - start < 3 and (len(toks) <= k + 3 or weights is None or toks[start - 1] in weights.df):
                    start -= 1
                seg = [t for t in toks[start:end] if (not t.isdigit() and len(t) > 1) or t in n_toks] or window
                seg_s = _ratio(" ".join(seg), n)
                s = (0.15 * span + 0.45 * seg_s + 0.2 * _coverage(n_toks, window + seg, weights)
                     + 0.2 * _coverage(seg, n_toks, weights))
                if s > best:
                    best, where = s, " ".join(toks)
    if len(n) <= 4:  # very short names ('OYO'): never certain on their own
        best = min(best, 0.9) if best >= 0.99 else best * 0.8
    return best, where


def name_similarity(a: str, b: str, weights=None) -> float:
    """Similarity of two names: edit-distance ratio (helped by token order) and IDF-weighted
    token coverage in both directions."""
    xt, yt = name_tokens(a), name_tokens(b)
    x, y = " ".join(xt), " ".join(yt)
    if not x or not y:
        return 0.0
    char = max(_ratio(x, y), 0.95 * fuzz.token_sort_ratio(x, y) / 100.0)
    cov = min(_coverage(yt, xt, weights), _coverage(xt, yt, weights))
    return 0.6 * char + 0.4 * cov


def address_score(s: Supplier, ev: DocEvidence) -> tuple[float, list[str]]:
    """Share of the supplier's address printed on the document (postcode exact; city, street fuzzy)."""
    parts, got, ev_txt = 0.0, 0.0, []
    if s.postal_code:
        parts += 0.4
        if normalize_postcode(s.postal_code) in ev.postcodes:
            got += 0.4
            ev_txt.append(f"postcode {s.postal_code}")
    for label, value, w in (("city", s.city, 0.3), ("street", s.street, 0.3)):
        if not value:
            continue
        parts += w
        v = " ".join(_line_tokens(value))
        if len(v) >= 3:
            al = fuzz.partial_ratio_alignment(v, ev.flat, score_cutoff=85)
            if al is not None:
                # token-aligned: 'bern' must not match inside 'berner'
                a, b = al.dest_start, al.dest_end
                while a > 0 and ev.flat[a - 1].isalnum():
                    a -= 1
                while b < len(ev.flat) and ev.flat[b].isalnum():
                    b += 1
                if _ratio(v, ev.flat[a:b]) >= 0.85:
                    got += w
                    ev_txt.append(f"{label} '{value}'")
    return (got / parts if parts else 0.0), ev_txt


@dataclass
class Scored:
    supplier: Supplier
    score: float
    name: float
    address: float
    evidence: list[str]
    id_hits: list[str] = field(default_factory=list)


def score_candidate(s: Supplier, ev: DocEvidence, weights=None) -> Scored:
    best_name, why = 0.0, ""
    for n in s.names():
        t, where = name_in_text(n, ev, weights)
        if t > best_name:
            best_name, why = t, f"name '{n}' printed as '{where}' ({t:.2f})"
        if ev.supplier_name:
            f = name_similarity(ev.supplier_name, n, weights)
            if not ev.name_from_xml:
                f *= 0.97  # a rule-extracted name is one reading of the text, not a declaration
            if f > best_name:
                best_name, why = f, f"name '{n}' ~ extracted supplier '{ev.supplier_name}' ({f:.2f})"
    addr, addr_ev = address_score(s, ev)
    has_addr = bool(s.postal_code or s.city or s.street)
    # address agreement lifts a good name; it never makes a match on its own (shared office buildings,
    # branches and near-miss names at the same address)
    score = best_name * (0.9 + 0.1 * addr) if has_addr else best_name * 0.95
    evidence = ([why] if why else []) + addr_ev
    return Scored(s, round(min(score, 1.0), 4), round(best_name, 4), round(addr, 4), evidence)


# ------------------------------------------------------------------------------------------------ decision


@dataclass
class MatchDecision:
    supplier: Supplier | None
    score: float
    method: str
    evidence: list[str]
    candidates: list[tuple[Supplier, float]]
    needs_review: bool = False


def _id_contradicted(sc: Scored, ev: DocEvidence, th: Thresholds, weights=None) -> bool:
    """An identifier hit is refused when the document contradicts it: the e-invoice XML declares a
    seller name that is not this supplier's (and the address does not agree either), or the master
    knows the supplier's address, the document prints an address (a postcode) that does not clearly
    agree with it, and the printed names do not agree either."""
    if sc.address >= 0.7:
        return False
    if ev.name_from_xml and ev.supplier_name:
        name = max(name_similarity(ev.supplier_name, n, weights) for n in sc.supplier.names())
        return name < th.id_name_corroboration
    has_addr = bool(sc.supplier.postal_code or sc.supplier.city or sc.supplier.street)
    # the document prints an address (a postcode) that is not clearly this supplier's (sc.address < 0.7)
    return has_addr and bool(ev.postcodes) and sc.name < th.id_name_corroboration


def decide_evidence(ev: DocEvidence, id_hits: list[tuple[Supplier, str, str]], name_candidates: list[Supplier],
                    th: Thresholds | None = None, adjudicate=None, weights=None) -> MatchDecision:
    """The match decision for one document.

    id_hits: (supplier, kind, value) for every master supplier whose identifier occurs on the document.
    name_candidates: suppliers retrieved by name similarity (any superset is fine).
    adjudicate: optional callable(ev, [Scored]) -> supplier_id | None for close calls (LLM).
    weights: `TokenWeights` of the master (IDF of name tokens); None weighs every token alike.
    """
    th = th or Thresholds()
    pool: dict[str, Supplier] = {}
    for s in [h[0] for h in id_hits] + list(name_candidates):
        pool.setdefault(s.supplier_id, s)
    scored = {sid: score_candidate(s, ev, weights) for sid, s in pool.items()}
    for s, kind, value in id_hits:
        scored[s.supplier_id].id_hits.append(f"{kind} {value}")
    ranked = sorted(scored.values(), key=lambda x: (-x.score, x.supplier.supplier_id))
    top3 = [(x.supplier, x.score) for x in ranked[:3]]

    # 1. identifiers
    id_sc = [scored[sid] for sid in dict.fromkeys(h[0].supplier_id for h in id_hits)]
    if id_sc:
        xml_ids = {v for vals in ev.ids_from_fields.values() for v in vals}
        ok = [x for x in id_sc if not _id_contradicted(x, ev, th, weights)]
        ok.sort(key=lambda x: (-x.score, x.supplier.supplier_id))
        if len(ok) == 1 or (len(ok) > 1 and ok[0].score - ok[1].score >= th.margin):
            w = ok[0]
            kinds = [h.split(" ", 1)[0] for h in w.id_hits]
            from_xml = any(h.split(" ", 1)[1] in xml_ids for h in w.id_hits)
            method = kinds[0]
            sc = 0.99 if from_xml or w.name >= th.accept else max(0.9, w.score)
            ev_ = [f"{h} {'in e-invoice XML' if h.split(' ', 1)[1] in xml_ids else 'printed on document'}" for h in w.id_hits]
            if len(id_sc) > 1:
                ev_.append(f"identifier shared by {len(id_sc)} suppliers; resolved by name/address")
            return MatchDecision(w.supplier, round(sc, 4), method, ev_ + w.evidence, top3)
        conflict = [f"{h} belongs to {x.supplier.supplier_id} '{x.supplier.name}' but name/address disagree "
                    f"(name {x.name:.2f}, address {x.address:.2f})" for x in id_sc for h in x.id_hits]
        # an identifier that points elsewhere vetoes a pure name match to another supplier
        return MatchDecision(None, round(ranked[0].score if ranked else 0.0, 4), "new", conflict, top3,
                             needs_review=True)

    # 2. name + address
    if not ranked:
        return MatchDecision(None, 0.0, "new", ["no candidate in the master"], [])
    best = ranked[0]
    runner = ranked[1].score if len(ranked) > 1 else 0.0
    # the lead needed shrinks when the runner-up is itself close to perfect and the best is better still
    needed = min(th.margin, 0.5 * (1.0 - runner)) if best.score >= 0.99 else th.margin
    if best.score >= th.accept and best.score - runner >= needed:
        ev_ = best.evidence + [f"runner-up {runner:.2f}"]
        return MatchDecision(best.supplier, best.score, "name", ev_, top3)
    close = best.score >= th.accept - th.llm_band
    if close and adjudicate is not None:
        sid = adjudicate(ev, ranked[:3])
        if sid and sid in scored:
            w = scored[sid]
            return MatchDecision(w.supplier, w.score, "llm", w.evidence + ["LLM adjudicated a close call"], top3)
    why = (f"best candidate {best.supplier.supplier_id} scored {best.score:.2f} "
           f"(accept >= {th.accept:.2f}, margin {best.score - runner:.2f} < {th.margin:.2f})"
           if best.score >= th.accept else f"best candidate scored {best.score:.2f} < {th.accept:.2f}")
    return MatchDecision(None, best.score, "new", [why], top3, needs_review=close)


def decide(supplier_name: str | None, text: str, by_identifier: list[tuple[Supplier, str]], name_candidates: list[Supplier],
           *, name_threshold: float | None = None, margin: float | None = None) -> MatchDecision:
    """Convenience wrapper: decision from a name, a text and (supplier, kind) identifier hits."""
    th = Thresholds()
    if name_threshold is not None:
        th.accept = name_threshold
    if margin is not None:
        th.margin = margin
    ev = build_evidence(text, supplier_name)
    hits = [(s, kind, getattr(s, kind, None) or "") for s, kind in by_identifier]
    return decide_evidence(ev, hits, name_candidates, th)


def name_score(query: str, candidate: Supplier) -> float:
    return max((name_similarity(query, n) for n in candidate.names()), default=0.0)


# ------------------------------------------------------------------------------------------------ LLM


def llm_prompt(ev: DocEvidence, cands: list[Scored]) -> str:
    lines = [f"{i + 1}. id={c.supplier.supplier_id} name={c.supplier.name!r} city={c.supplier.city!r} "
             f"postcode={c.supplier.postal_code!r} score={c.score:.2f}" for i, c in enumerate(cands)]
    return ("Which supplier issued this document? Answer with JSON {\"supplier_id\": <id or null>}; "
            "null unless you are sure.\nCandidates:\n" + "\n".join(lines) + "\nDocument (start):\n" + ev.text[:1500])


def parse_llm_answer(content: str, allowed: set[str]) -> str | None:
    m = re.search(r"\{.*\}", content or "", re.S)
    if not m:
        return None
    try:
        sid = json.loads(m.group(0)).get("supplier_id")
    except (ValueError, AttributeError):
        return None
    return sid if isinstance(sid, str) and sid in allowed else None


def make_llm_adjudicator(model: str, completion=None):
    """An `adjudicate` callable that asks a LiteLLM model (task alias) to pick among close candidates."""

    def adjudicate(ev: DocEvidence, cands: list[Scored]) -> str | None:
        fn = completion
        if fn is None:
            import litellm

            fn = litellm.completion
        resp = fn(model=model, messages=[{"role": "user", "content": llm_prompt(ev, cands)}], temperature=0)
        content = resp["choices"][0]["message"]["content"] if isinstance(resp, dict) else resp.choices[0].message.content
        return parse_llm_answer(content, {c.supplier.supplier_id for c in cands})

    return adjudicate
