"""Pure supplier-matching logic: normalisation, identifiers, evidence scoring, decision.

Evidence (the seller's only - `idp_assets.logic.supplier_parties` removes buyer / delivery /
intermediary blocks before this module sees the text), strongest first:

1. identifiers printed on the document or declared by the e-invoice XML: VAT ID (spacing variants
   such as ``DE 123 456 789`` normalised; never a slice of an IBAN-shaped run), IBAN (mod-97 and the
   country's length), tax / company numbers (German Steuernummer, GSTIN, SIREN, labelled GST / company
   registration numbers), GLN (GS1 check digit).  An identifier hit is only accepted when the printed
   or declared name corroborates it: identifiers are shared (sample IDs, group registrations) and a
   buyer's identifier is printed on the page too.
2. name + address: names normalised (case, punctuation, OCR digit/letter confusions inside words,
   ``S/B`` = ``Sdn. Bhd.``) with legal forms stripped for similarity but compared separately
   (`legal_form`, `form_agreement`: another legal form is another entity).  Every candidate is searched
   for in the text (token-aligned); a word printed only approximately costs a little (the exact name
   beats its one-letter near-miss), a word not printed or a printed word the candidate lacks costs much
   (``MR. D.I.Y. (KUCHAI)`` is not ``MR. D.I.Y.``).  Postcode, city and street found in the text add
   evidence; a printed address that is none of the candidate's counts against it.
3. optional: an LLM adjudicates close calls (`adjudicate`), off by default.

A match needs ``score >= accept`` *and* a margin over the runner-up; a good candidate without that
lead is ``needs_review`` (with the candidates: a doubtful case is never a silent pick), and nothing
above ``accept`` is ``new`` (precision first: a wrong match books an invoice to the wrong vendor).
`Thresholds` holds the defaults (see `idp bench suppliers hard` and the README section
"Supplier recognition").
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

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
    s = re.sub(r"(?<=[a-z])[!|](?=[a-z])", "", s)  # OCR: 'HO!EL' (a lost letter read as punctuation)
    s = re.sub(r"(?<![\w/])s\s*/\s*b(?![\w/])", " sdn bhd ", s)  # Malaysian 'S/B' = Sdn. Bhd.
    s = s.replace("&", " and ")
    s = re.sub(r"(?<=\w)[.'\u2019](?=\w)", "", s)  # A.B.C. -> ABC, O'Brien's -> OBriens
    s = re.sub(r"[.'\u2019]", " ", s)
    return s


def _fold_token(t: str) -> str:
    # OCR digit/letter confusions only inside mixed tokens ('B0X' -> 'box'); pure numbers stay numbers
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


# legal-form families: spellings of one form share a key (source: the ISO 20275 Entity Legal Forms code
# list's abbreviations for DE, AT, CH, GB, US, FR, NL, BE, IN, SG, AU and the Malaysian Companies Act 2016 /
# LLP Act 2012 forms); a name printed with one form and a master row with another are different entities
_FORM_FAMILY = {
    "gmbh": "gmbh", "mbh": "gmbh", "ag": "ag", "kg": "kg", "ohg": "ohg", "gbr": "gbr", "ug": "ug", "ek": "ek",
    "ev": "ev", "eg": "eg", "kgaa": "kgaa", "se": "se", "ltd": "ltd", "limited": "ltd", "inc": "inc",
    "incorporated": "inc", "llc": "llc", "llp": "llp", "plc": "plc", "corp": "corp", "corporation": "corp",
    "pvt": "pvt", "pte": "pte", "pty": "pty", "sdn": "sdnbhd", "sb": "sdnbhd", "bhd": "bhd", "berhad": "bhd",
    "plt": "plt", "lp": "lp", "sarl": "sarl", "sas": "sas", "sasu": "sasu", "sa": "sa", "eurl": "eurl",
    "sci": "sci", "bv": "bv", "nv": "nv", "vof": "vof", "cv": "cv", "srl": "srl", "spa": "spa", "sl": "sl",
    "oy": "oy", "ab": "ab", "as": "as", "aps": "aps",
}


def legal_form_of(tokens: list[str]) -> str | None:
    """Canonical legal form of folded name tokens ('sdn', 'bhd' -> 'sdnbhd'; 'gmbh', 'co', 'kg' -> 'gmbh+kg'),
    None when the tokens carry none."""
    fams: list[str] = []
    for t in tokens:
        f = _FORM_FAMILY.get(t)
        if f and f not in fams:
            fams.append(f)
    if "sdnbhd" in fams and "bhd" in fams:
        fams.remove("bhd")
    if "pvt" in fams or "pte" in fams or "pty" in fams:
        fams = [f for f in fams if f != "ltd"]
    return "+".join(fams) or None


def legal_form(name: str) -> str | None:
    s = _SDN_BHD_OCR.sub(" sdn bhd ", fold(name))
    return legal_form_of([_fold_token(t) for t in _NON_WORD.sub(" ", s).replace("_", " ").split()])


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


# company registration numbers ('CO.REG : 933109-X', 'Company No. 12345678'; Malaysian SSM numbers end in a letter)
_COMPANY_NO_RE = re.compile(r"(?i)(?:co\.?\s*reg(?:istration)?\.?(?:\s*no)?|company\s*(?:reg(?:istration)?\.?\s*)?no)\.?"
                            r"\s*[:.]?\s*(\d{3,12}-?[A-Z]?)(?![\w])")


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
    if int(num) % 97 != 1:
        return False
    from stdnum import iban as _iban  # the country's IBAN length and BBAN format ('DE123456789HRB1234' is none)

    return _iban.is_valid(s) or s[:2] not in _IBAN_COUNTRIES

_IBAN_COUNTRIES = {"AD", "AE", "AT", "BA", "BE", "BG", "BH", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB",
                   "GR", "HR", "HU", "IE", "IS", "IT", "LI", "LT", "LU", "LV", "MC", "MT", "NL", "NO", "PL", "PT", "RO",
                   "SE", "SI", "SK", "SM"}


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
        cc = m.group(1)
        if cc not in _VAT_FORMATS:
            continue
        body = normalize_id(m.group(2))
        if sum(c.isdigit() for c in body) < 2:
            continue
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
    # an IBAN-shaped run that fails mod-97 (a misprint, a sample) is still not a VAT ID: 'DE67100483927221888272'
    # does not contain 'DE671004839'
    runs = [normalize_id(m.group(1)) for m in _IBAN_RE.finditer(up)]
    vats = {v for v in vats if not any(r.startswith(v) and len(r) > len(v) and r[len(v)].isdigit() for r in runs)}
    taxes = {normalize_id(x) for x in _STNR_RE.findall(up)} | set(_GSTIN_RE.findall(up))
    taxes |= {normalize_id(x) for x in _LABELLED_NUMBER_RE.findall(text or "")}
    taxes |= {normalize_id(x) for x in _COMPANY_NO_RE.findall(text or "")}
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
    other_party_names: list[str] = field(default_factory=list)  # buyer / delivery / intermediary names: never the seller
    address_postcodes: set[str] = field(default_factory=set)  # postal codes followed by a place name
    document_id: str | None = None

    @property
    def all_ids(self) -> dict[str, set[str]]:
        out = {k: set(v) for k, v in self.ids.items()}
        for k, v in self.ids_from_fields.items():
            out.setdefault(k, set()).update(v)
        return out


_ADDRESS_PC_RE = re.compile(r"(?<![\w.,/:-])(?:[A-Z]{1,2}[- ])?(\d{4,5})\s+(?=[^\W\d_]{2,})")


def _line_tokens(line: str) -> list[str]:
    s = fold(line)
    return [_fold_token(t) for t in _NON_WORD.sub(" ", s).replace("_", " ").split()]


def build_evidence(text: str, supplier_name: str | None = None, *, name_from_xml: bool = False,
                   field_ids: dict[str, set[str]] | None = None, max_lines: int = 400,
                   other_party_names: list[str] | None = None) -> DocEvidence:
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
    addr_pcs = {m for m in _ADDRESS_PC_RE.findall(text or "")}
    return DocEvidence(text=text or "", supplier_name=supplier_name, name_from_xml=name_from_xml,
                       ids=find_identifiers(text), ids_from_fields={k: set(v) for k, v in (field_ids or {}).items() if v},
                       lines=lines, flat=flat, postcodes=pcs, other_party_names=list(other_party_names or []),
                       address_postcodes=addr_pcs)


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
        seen = {t for t in tokens if len(t) >= 2 and t != "and" and not t.isdigit() and 0 < self.df.get(t, 0) <= max_df}
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
    best, where, _ = name_occurrence(name, ev, weights)
    return best, where


def _exactness(n_toks: list[str], printed: list[str], weights=None) -> float:
    """Factor for how exactly the name's words are printed: a word printed only approximately costs a
    little (an OCR slip, or a one-letter near-miss company: the exact one must win), a word not printed
    at all costs much ('GOLDEN (KL) ARCHES' is not 'GOLDEN ARCHES', a branch or another company)."""
    ws = [(weights(t) if weights else 1.0) for t in n_toks]
    tot = sum(ws) or 1.0
    fuzzy = missing = 0.0
    pset = set(printed)
    for t, w in zip(n_toks, ws):
        if t in pset:
            continue
        # an OCR slip: one edit (two in a long word); more is another word ('KEDEA' is not 'KEDAI')
        best = min((Levenshtein.distance(t, u) for u in printed), default=99)
        if best <= (2 if len(t) >= 9 else 1):
            fuzzy += w
        else:
            missing += w
    f = 1.0 - 0.1 * fuzzy / tot
    if missing:
        f *= 0.8 * (1.0 - 0.5 * missing / tot)
    return f


def _explained(seg: list[str], n_toks: list[str], weights=None) -> float:
    """Factor for printed name words the candidate does not have ('GOLDEN ARCHES RESTAURANTS' printed,
    'ARCHES RESTAURANTS' in the master): half the IDF-weighted share of unexplained words is lost."""
    words = [t for t in seg if t not in LEGAL_FORMS and not t.isdigit() and len(t) > 1]
    if not words:
        return 1.0
    ws = [(weights(t) if weights else 1.0) for t in words]
    un = sum(w for t, w in zip(words, ws) if max((fuzz.ratio(t, u) for u in n_toks), default=0) < 75)
    return 1.0 - 0.5 * un / (sum(ws) or 1.0)


def name_occurrence(name: str, ev: DocEvidence, weights=None) -> tuple[float, str, str | None]:
    """How well a master name is printed in the document, best over its occurrences of
    0.15 * token-aligned span similarity + 0.45 * similarity to the printed name (the line up to its
    legal form) + 0.2 * IDF-weighted share of the name found + 0.2 * IDF-weighted share of the
    printed name explained by the candidate (so 'WAN SHENG' does not explain 'RESTORAN WAN SHENG')."""
    n_toks = name_tokens(name)
    if not n_toks:
        return 0.0, "", None
    n = " ".join(n_toks)
    best, where = 0.0, ""
    form = None
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
                if 0 < start <= 3 and end < len(toks) and toks[end] in LEGAL_FORMS and all(t.isalpha() for t in toks[:start]):
                    start = 0  # 'KAIAM AIK CHAN SDN BHD': the name runs from the line start to its legal form
                seg = [t for t in toks[start:end] if (not t.isdigit() and len(t) > 1) or t in n_toks] or window
                seg_s = _ratio(" ".join(seg), n)
                s = (0.15 * span + 0.45 * seg_s + 0.2 * _coverage(n_toks, window + seg, weights)
                     + 0.2 * _coverage(seg, n_toks, weights))
                s *= _exactness(n_toks, window + seg, weights) * _explained(seg, n_toks, weights)
                if s > best:
                    best, where = s, " ".join(toks)
                    # the legal form printed right after the name ('99 SPEED MART S/B')
                    after = [t for t in toks[i:min(len(toks), max(end, i + w) + 3)] if t in LEGAL_FORMS and t not in n_toks]
                    if toks[i:i + 2] == ["sdn", "bhd"]:
                        after = []
                    form = legal_form_of(after)
    if len(n) <= 4:  # very short names ('OYO'): never certain on their own
        best = min(best, 0.9) if best >= 0.99 else best * 0.8
    return best, where, form


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


def form_agreement(doc_form: str | None, master_form: str | None) -> float:
    """Factor for legal-form agreement: 1 when either side prints none or both agree, 0.95 when one
    form contains the other ('GmbH' / 'GmbH & Co. KG' may be an OCR loss), 0.85 when they differ
    ('99 SPEED MART PLT' is not '99 SPEED MART S/B': 0.75)."""
    if not doc_form or not master_form or doc_form == master_form:
        return 1.0
    a, b = set(doc_form.split("+")), set(master_form.split("+"))
    return 0.95 if a <= b or b <= a else 0.75


def score_candidate(s: Supplier, ev: DocEvidence, weights=None) -> Scored:
    best_name, why, doc_form, which = 0.0, "", None, s.name
    for n in s.names():
        t, where, form = name_occurrence(n, ev, weights)
        if t > best_name:
            best_name, why, doc_form, which = t, f"name '{n}' printed as '{where}' ({t:.2f})", form, n
        if ev.supplier_name:
            xt, nt = name_tokens(ev.supplier_name), name_tokens(n)
            f = name_similarity(ev.supplier_name, n, weights) * _exactness(nt, xt, weights) * _explained(xt, nt, weights)
            if not ev.name_from_xml:
                f *= 0.97  # a rule-extracted name is one reading of the text, not a declaration
            if f > best_name:
                best_name, why, doc_form, which = (f, f"name '{n}' ~ extracted supplier '{ev.supplier_name}' ({f:.2f})",
                                                   legal_form(ev.supplier_name), n)
    addr, addr_ev = address_score(s, ev)
    has_addr = bool(s.postal_code or s.city or s.street)
    # address agreement lifts a good name; it never makes a match on its own (shared office buildings,
    # branches and near-miss names at the same address)
    score = best_name * (0.9 + 0.1 * addr) if has_addr else best_name * 0.95
    evidence = ([why] if why else []) + addr_ev
    master_form = legal_form(which) or (legal_form(s.name) if which != s.name else None)
    if s.postal_code and addr == 0.0 and ev.address_postcodes:
        # the document prints an address and none of it is this supplier's: the namesake in another city
        score *= 0.85
        evidence.append(f"address disagrees (master {s.postal_code} {s.city or ''}) (x0.85)")
    fa = form_agreement(doc_form, master_form)
    if fa < 1.0:
        score *= fa
        evidence.append(f"legal form printed '{doc_form}' vs master '{master_form}' (x{fa:.2f})")
    # a party the document names as buyer / delivery address / intermediary is not the seller
    for other in ev.other_party_names:
        if max(name_similarity(other, n, weights) for n in s.names()) >= 0.85:
            score *= 0.5
            evidence.append(f"'{other}' is named as another party (buyer/delivery/intermediary) on the document")
            break
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
    """An identifier hit is refused when the document does not corroborate it by name: identifiers are
    shared (sample IDs, group VAT registrations, a buyer's ID printed on the page), and a master row with
    the right identifier but another name - even at the same address - is another entity until a person
    says otherwise (`idp suppliers confirm`).  A candidate the document names as another party is refused."""
    if any("named as another party" in e for e in sc.evidence):
        return True  # the buyer's identifier printed on the page is not the seller's
    if sc.address >= 0.7:  # the supplier's own address is printed: a misread name still corroborates
        return sc.name < th.id_name_corroboration - 0.1
    return sc.name < th.id_name_corroboration


def _near_miss(a: str, b: str) -> bool:
    """Two master names one or two edits apart ('KHIAM AIK CHAN' / 'KIAM AIK CHAN')."""
    x, y = normalize_name(a), normalize_name(b)
    return x != y and Levenshtein.distance(x, y) <= 2


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
            # identifier agreement on top of the name/address score: declared (XML) counts more than printed
            sc = 1.0 - (1.0 - w.score) * (0.1 if from_xml else 0.2)
            ev_ = [f"{h} {'in e-invoice XML' if h.split(' ', 1)[1] in xml_ids else 'printed on document'}" for h in w.id_hits]
            if len(id_sc) > 1:
                ev_.append(f"identifier shared by {len(id_sc)} suppliers; resolved by name/address")
            return MatchDecision(w.supplier, round(sc, 4), method, ev_ + w.evidence, top3)
        conflict = [f"{h} belongs to {x.supplier.supplier_id} '{x.supplier.name}' but name/address disagree "
                    f"(name {x.name:.2f}, address {x.address:.2f})" for x in id_sc for h in x.id_hits]
        if len(ok) > 1:  # several corroborated suppliers share the identifier and none leads: a person decides
            return MatchDecision(None, round(ok[0].score, 4), "needs_review", conflict, top3, needs_review=True)
        # an identifier that points elsewhere vetoes a pure name match to another supplier; the document's
        # seller is proposed as new (its identifier conflict is in the evidence)
        return MatchDecision(None, round(ranked[0].score if ranked else 0.0, 4), "new", conflict, top3,
                             needs_review=False)

    # 2. name + address
    if not ranked:
        return MatchDecision(None, 0.0, "new", ["no candidate in the master"], [])
    best = ranked[0]
    runner = ranked[1].score if len(ranked) > 1 else 0.0
    # the lead needed shrinks when the runner-up is itself close to perfect and the best is better still
    needed = min(th.margin, 0.5 * (1.0 - runner)) if best.score >= 0.99 else th.margin
    if len(ranked) > 1 and best.name < 0.99 and _near_miss(best.supplier.name, ranked[1].supplier.name):
        needed = 2 * th.margin  # the page does not print either exactly and the two differ by a letter or two
    if best.score >= th.accept and best.score - runner >= needed:
        ev_ = best.evidence + [f"runner-up {runner:.2f}"]
        return MatchDecision(best.supplier, best.score, "name", ev_, top3)
    close = best.score >= th.accept - th.llm_band
    if close and adjudicate is not None:
        sid = adjudicate(ev, ranked[:3])
        if sid and sid in scored:
            w = scored[sid]
            return MatchDecision(w.supplier, w.score, "llm", w.evidence + ["LLM adjudicated a close call"], top3)
    if best.score >= th.accept:  # good enough, but not clearly better than the runner-up: a person decides
        why = (f"best candidate {best.supplier.supplier_id} scored {best.score:.2f} (accept >= {th.accept:.2f}), "
               f"runner-up {ranked[1].supplier.supplier_id} {runner:.2f}: margin {best.score - runner:.2f} < {needed:.2f}")
        return MatchDecision(None, best.score, "needs_review", [why], top3, needs_review=True)
    why = f"best candidate scored {best.score:.2f} < {th.accept:.2f}"
    return MatchDecision(None, best.score, "new", [why], top3, needs_review=False)


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
