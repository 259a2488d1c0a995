"""The supplier (seller) name: seller labels, the sender line, legal forms, the first prominent lines."""

from __future__ import annotations

import re
import unicodedata

from idp_assets.logic.field_rules.candidates import Candidate
from idp_assets.logic.field_rules.labels import label_alternation, vocabulary
from idp_assets.logic.numbers import find_amounts


_LEGAL_FORM = re.compile(
    r"(?i)(?<![\w-])(?:GmbH(?:[ \t]*&[ \t]*Co\.?[ \t]*KG)?|AG|KG|OHG|UG|e\.[ \t]?K\.|mbH|SE|a\.[ \t]?G\.|"
    r"Sdn\.?[ \t]*Bhd\.?|Bhd\.?|S/B|SB|PLT|Ltd\.?|Limited|Inc\.?|Incorporated|LLC|LLP|PLC|Corp\.?|Corporation|"
    r"Pvt\.?[ \t]*Ltd\.?|Private[ \t]+Limited|S\.?A\.?R\.?L\.?|SARL|SAS|S\.A\.|SA|B\.[ \t]?V\.?|BV|N\.[ \t]?V\.?|NV|"
    r"Enterprise|Trading|Co\.|Company)(?![\w-])"
)
# seller / buyer labels: idp_assets/logic/data/invoice_labels.json (BG-4 seller, BG-7 buyer)
_SELLER_LABEL = re.compile(r"(?i)^" + label_alternation("seller") + r"(?![\w-])[ \t]*:?[ \t]*(.*)$")
_SOLD_BY = re.compile(r"(?i)(?<![\w])sold[ \t]+by[ \t]*:?[ \t]*(.+)$")
_BUYER_LABEL = re.compile(r"(?i)^" + label_alternation("buyer") + r"(?![\w])")
# 'T.a.v. J. Jansen', 'z. Hd. Frau Muster', 'Attn: Accounts': the line above is the addressee (the buyer)
_ATTENTION = re.compile(r"(?i)^" + label_alternation("buyer_contact") + r"(?![\w])")
_NAME_LABEL = re.compile(r"(?i)^" + label_alternation("party_name") + r"[ \t]*:[ \t]*")
# the payee / payment account name (BT-59 / BT-85): 'Kontoinhaber: Beispiel GmbH', 'Beneficiary: ...'
_PAYEE_LABEL = re.compile(r"(?i)(?<![\w])" + label_alternation("payee") + r"(?![\w])[ \t]*:[ \t]*(.+)$")
# the legal particulars a company's letters and invoices must carry (registered office, register,
# share capital: BT-30 and the national rules cited in the vocabulary): the seller's own block
_REGISTRATION = re.compile(r"(?i)(?<![\w])" + label_alternation("legal_registration") + r"(?![\w])")
_DOC_TYPE_START = re.compile(r"(?i)^" + label_alternation("document_type") + r"(?![\w])")
_CONNECTORS = {"&", "+", "und", "and", "et", "en", "e", "y", "-"}
_ANY_LABEL = re.compile(r"(?i)" + label_alternation(*[f for f in vocabulary()["fields"] if f != "legal_registration"]))
_CONTACT = re.compile(r"(?i)@|www\.|https?:|\b(?:tel|fax|phone|t[ée]l[ée]?phone|telefon)\b")
_TITLE_LINE = re.compile(
    r"(?i)^[\W_]*(?:(?:simplified[ \t]+)?tax[ \t]+invoice|invoice|rechnung|facture|factuur|receipt|official[ \t]+receipt|"
    r"payment[ \t]+receipt|quittung|beleg|kopie|copy|original|page|seite|cash[ \t]+(?:sale|bill)|bill|"
    r"thank.*)[\W_]*$"
)
_TOTAL_WORD = re.compile(r"(?i)^(?:sub[ -]?)?total|^summe|^amount|^betrag")
_HEADER_WORDS = re.compile(
    r"(?i)\b(?:description|quantity|qty|unit|price|amount|total|disc\.?%?|taxes|menge|preis|betrag|"
    r"artikel|bezeichnung|omschrijving|prijs|bedrag|d[ée]signation|montant|item|pos)\b"
)
_POSTCODE = re.compile(r"(?<!\d)(?:[A-Z]{1,2}-)?\d{4,5}(?!\d)")
_SENDER_SPLIT = re.compile(r"[ \t]*(?:[|·•●]|[ \t]-[ \t]|,)[ \t]*")


def _clean_name(s: str) -> str:
    s = re.sub(r"\s+", " ", s).strip(" \t,;:-|·•●*~'\"“”‘’")
    return _NAME_LABEL.sub("", s)  # 'Name: Beispiel GmbH'



def _cut_after_legal_form(s: str) -> str:
    """'Beispiel GmbH Sitz der Gesellschaft' -> 'Beispiel GmbH' (up to the last legal-form token)."""
    ends = [m.end() for m in _LEGAL_FORM.finditer(s)]
    return s[: ends[-1]] if ends else s


def _name_key(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).casefold()
    return "".join(ch for ch in s if ch.isalnum())


MAX_NAME_WORDS = 10  # longer lines are sentences or columns the reading order merged


def _looks_like_name(s: str) -> bool:
    letters = sum(ch.isalpha() for ch in s)
    return (len(s) >= 3 and letters >= 3 and letters / max(len(s.replace(" ", "")), 1) >= 0.6
            and len(s.split()) <= MAX_NAME_WORDS)


def _capitalised(s: str) -> bool:
    """Most words start with a capital or a digit: a name, not a sentence ('The issuer put their
    company data below' is not a company)."""
    words = [w for w in re.findall(r"[^\W_][\w'.&-]*", s) if any(ch.isalpha() for ch in w)]
    if not words:
        return True
    return sum(1 for w in words if w[0].isupper() or w[0].isdigit() or not w[0].isalpha()) * 2 >= len(words) \
        or sum(1 for w in words if any(ch.isupper() for ch in w)) * 2 > len(words)


def _trailing_company(s: str) -> str:
    """The company name at the end of a long line that ends in a legal form ('*** Check the
    statement attached ... Beispiel Services, Inc.' -> 'Beispiel Services, Inc.'): the run of
    capitalised words (and connectors) before the legal form, stopping at a document-type word.
    Short lines come back unchanged."""
    words = s.split()
    if len(words) <= 6 or not _LEGAL_FORM.search(words[-1]):
        return s
    keep: list[str] = []
    for w in reversed(words):
        core = w.strip(",.;:()\"'")
        if _LEGAL_FORM.fullmatch(core) or _LEGAL_FORM.fullmatch(w.strip(",;:")):
            keep.append(w)
            continue
        if not core or _DOC_TYPE_START.fullmatch(core):
            break
        if core[0].isupper() or core[0].isdigit() or core.lower() in _CONNECTORS:
            keep.append(w)
            continue
        break
    while keep and keep[-1].strip(",.;:").lower() in _CONNECTORS:
        keep.pop()
    return " ".join(reversed(keep)) if len(keep) >= 2 else s


REGISTRATION_WALK = 4  # lines above a legal-particulars line searched for the company's name


def _is_label_word(s: str) -> bool:
    """A bare vocabulary label ('BIC', 'Name', 'Steuernummer') is never a company name."""
    return bool(_ANY_LABEL.fullmatch(s.strip(" .:")))


def _registration_name(lines, k: int) -> Candidate | None:
    """The company name of a legal-particulars line ('Sitz der Gesellschaft: ...', 'RCS Paris B ...',
    'Geschäftsführer: ...'): its own first segment where that is a name, else the name of the
    block above it (at most REGISTRATION_WALK lines, same page): over address lines (a number in a
    short line) and other particulars lines, the nearest line with a legal form, else the topmost
    name line before anything else. One vote per name line."""
    pno, li, ln = lines[k]
    m = _REGISTRATION.search(ln)
    if not m:
        return None
    head = _clean_name(_SENDER_SPLIT.split(ln[: m.start()])[0]) if m.start() else ""
    if (head and _looks_like_name(head) and not re.search(r"\d|:", head) and not _LEGAL_FORM.fullmatch(head)
            and not _CONTACT.search(head) and not _is_label_word(head)):
        return Candidate(_cut_after_legal_form(head), ln, pno, li, "legal_footer", 0.7)
    names: list[tuple[str, str, int]] = []
    for j in range(k - 1, max(-1, k - 1 - REGISTRATION_WALK), -1):
        jp, jl, prev = lines[j]
        if jp != pno:
            break
        if _REGISTRATION.search(prev):
            continue
        name = _clean_name(prev)
        if (_looks_like_name(name) and not re.search(r"\d{3,}|:", name) and not _CONTACT.search(name)
                and not _TITLE_LINE.match(name) and not _BUYER_LABEL.match(name) and not _is_label_word(name)):
            if _LEGAL_FORM.search(name) and not _LEGAL_FORM.fullmatch(name):
                return Candidate(_cut_after_legal_form(name), prev, jp, jl, "legal_footer", 0.7)
            names.append((name, prev, jl))
            continue
        if re.search(r"\d", prev) and len(prev.split()) <= 6:
            continue  # street, postcode and town
        break
    if names:
        # the name right above the particulars is the usual layout; a name further up past address
        # lines is a weaker guess (OCR may have read another column in between)
        name, raw, jl = names[-1]
        direct = len(names) == 1 and lines[k - 1][2] == raw
        return Candidate(name, raw, pno, jl, "legal_footer", 0.7 if direct else 0.45)
    return None


_ID_LINE = re.compile(r"(?i)^(?:GLN|GTIN|Lief|USt|VAT|Tax|Steuer)|^[^:]{1,30}:[ \t]*\S*\d")
SELLER_BLOCK_LINES = 6  # lines under a seller label searched for its name


def _seller_block_name(lines, k: int) -> list[Candidate]:
    """The name in the party block under a seller label standing alone ('Verkäufer' / 'Seller:'):
    a 'Name:' line, else the first line that looks like a name, skipping identifier lines
    ('Nummer: 549910', 'GLN 4000001123452') and parenthesised remarks; the block ends at a
    buyer label or the page end."""
    pno = lines[k][0]
    for j in range(k + 1, min(len(lines), k + 1 + SELLER_BLOCK_LINES)):
        jp, jl, ln = lines[j]
        if jp != pno or _BUYER_LABEL.match(ln):
            break
        m = _NAME_LABEL.match(ln)
        if m:
            name = _clean_name(ln[m.end():])
            if _looks_like_name(name) and not _is_label_word(name):
                return [Candidate(name, ln, jp, jl, "seller_label", 0.85)]
            continue
        if (re.fullmatch(r"\(.*\)", ln) or (_ID_LINE.match(ln) and not _LEGAL_FORM.search(ln))
                or ln.rstrip().endswith(":")):
            continue  # a remark, an identifier, or a label whose value the OCR put elsewhere
        seg = _trailing_company(_cut_after_legal_form(_clean_name(ln))) if _LEGAL_FORM.search(ln) else ln
        name = _clean_name(_SENDER_SPLIT.split(seg)[0])
        if _looks_like_name(name) and not re.search(r"\d{3,}", name) and not _is_label_word(name):
            return [Candidate(name, ln, jp, jl, "seller_label", 0.85 if j == k + 1 else 0.8)]
        break
    return []


def _supplier_candidates(lines) -> list[Candidate]:
    out: list[Candidate] = []
    buyer_until = -1
    first_page_lines = [x for x in lines if x[0] == 1]
    n1 = max(len(first_page_lines), 1)
    # the addressee: the line above an attention line ('T.a.v. ...') on the same page
    addressees = {k for k in range(len(lines) - 1) if lines[k + 1][0] == lines[k][0] and _ATTENTION.match(lines[k + 1][2])}
    for k, (pno, li, ln) in enumerate(lines):
        if _BUYER_LABEL.match(ln):
            buyer_until = k + 5
        in_buyer = k <= buyer_until or k in addressees
        pos_factor = 1.0 - 0.35 * min(k / n1, 1.0) if pno == 1 else 0.6

        m = _SELLER_LABEL.match(ln)
        if m and _LEGAL_FORM.fullmatch(_clean_name(m.group(1)) or "-"):
            m = None  # 'Lieferant GmbH' / 'Fournisseur SARL': the label word is the name itself
        if m:
            rest = _clean_name(m.group(1))
            if rest and _looks_like_name(rest) and not re.search(r"\d{3,}", rest) and not _is_label_word(rest):
                out.append(Candidate(rest, m.group(1), pno, li, "seller_label", 0.85))
            else:
                out.extend(_seller_block_name(lines, k))
        m = _PAYEE_LABEL.search(ln)
        if m:
            name = _clean_name(_SENDER_SPLIT.split(m.group(1))[0])
            if _looks_like_name(name) and not re.search(r"\d{3,}", name) and not _CONTACT.search(name):
                out.append(Candidate(name, m.group(1), pno, li, "payee_label", 0.6 * (0.3 if in_buyer else 1.0)))
        reg = _registration_name(lines, k)
        if reg is not None and not in_buyer:
            out.append(reg)
        m = _SOLD_BY.search(ln)
        if m:
            name = _clean_name(_SENDER_SPLIT.split(m.group(1))[0].rstrip("."))
            if _looks_like_name(name):
                out.append(Candidate(name, m.group(1), pno, li, "seller_phrase", 0.55))

        parts = [p for p in _SENDER_SPLIT.split(ln) if p.strip()]
        if len(parts) >= 3 and _POSTCODE.search(ln) and pno == 1:
            name = _clean_name(parts[0])
            if _looks_like_name(name) and not re.search(r"\d|:", name):
                out.append(Candidate(name, ln, pno, li, "sender_line", 0.75 * (0.5 if in_buyer else 1.0)))

        lf = _LEGAL_FORM.search(ln)
        if lf:
            seg = next((p for p in parts if _LEGAL_FORM.search(p)), ln)
            name = _clean_name(_trailing_company(_cut_after_legal_form(seg)))
            if (_looks_like_name(name) and len(name) <= 80 and _LEGAL_FORM.sub("", name).strip(" .,&()") != ""
                    and _capitalised(_LEGAL_FORM.sub("", name))
                    and "%" not in name and not find_amounts(name) and not _TOTAL_WORD.match(name)):
                # the legal form alone at line start ('Sdn Bhd' continuing the line above)
                if _LEGAL_FORM.match(name) and k > 0 and lines[k - 1][0] == pno:
                    prev = _clean_name(lines[k - 1][2])
                    if _looks_like_name(prev) and not _LEGAL_FORM.search(prev):
                        name = prev + " " + name
                w = 0.55 * pos_factor * (0.3 if in_buyer else 1.0)
                out.append(Candidate(name, seg, pno, li, "legal_form", w))
            elif _LEGAL_FORM.fullmatch(_clean_name(seg)) and k > 0 and lines[k - 1][0] == pno:
                prev = _clean_name(lines[k - 1][2])
                if _looks_like_name(prev):
                    w = 0.55 * pos_factor * (0.3 if in_buyer else 1.0)
                    out.append(Candidate(prev + " " + name, lines[k - 1][2] + " " + ln, pno, li, "legal_form", w))

    # first prominent lines of page 1
    rank = 0
    for idx, (pno, li, ln) in enumerate(first_page_lines[:8]):
        name = _clean_name(ln)
        if idx in addressees:  # page 1's lines come first in `lines`
            continue
        if rank >= 3:
            break
        if (not _looks_like_name(name) or _TITLE_LINE.match(name) or _BUYER_LABEL.match(name)
                or ln.rstrip().endswith(":") or _is_label_word(name)
                or (_DOC_TYPE_START.match(name) and re.search(r"\d", name))  # 'Rechnung Nr. 78'
                or find_amounts(name)):
            continue  # a label line is not a name
        if re.search(r"\d{4,}|@|www\.|http|\btel\b|\bfax\b", name, re.IGNORECASE):
            continue
        if len(_HEADER_WORDS.findall(name)) >= 2 or name.startswith("-"):
            continue  # a table header row / section heading
        w = (0.35, 0.25, 0.15)[rank]
        if name.upper() == name and any(ch.isalpha() for ch in name):
            w *= 1.3  # printed in capitals: typical of a letterhead / receipt header
        elif name.lower() == name:
            w *= 0.4  # all lower case: rarely a company name (handwriting, noise)
        out.append(Candidate(name, ln, pno, li, "first_lines", w))
        rank += 1
    return out
