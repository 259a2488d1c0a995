"""Document type (BT-3), BIC (BT-86), purchase order (BT-13) and buyer reference (BT-10), the buyer's
name (BT-44) and VAT ID (BT-48), the amount due (BT-115).

Labels and document-type words come from the vocabulary (``logic/data/invoice_labels.json``); the
BIC is checked by python-stdnum; the buyer is the first name of a buyer block found by
:func:`idp_assets.logic.supplier_parties.split_parties` (the same blocks that keep the buyer out of
the seller's evidence).
"""

from __future__ import annotations

import re

from idp_assets.logic.field_rules.candidates import Candidate, _after
from idp_assets.logic.field_rules.ids import _first_id
from idp_assets.logic.field_rules.labels import label_patterns, term_regex, terms
from idp_assets.logic.supplier_parties import split_parties
from idp_assets.logic.validation import check_bic, normalise_vat_id, vat_id_is_valid

TITLE_LINES = 15  # the document title sits in the first lines of page 1
_BIC_RX = re.compile(r"^[\s:.\-]*([A-Z]{4}[ \t]?[A-Z]{2}[ \t]?[A-Z0-9]{2}(?:[ \t]?[A-Z0-9]{3})?)(?![A-Z0-9])")


def _title_patterns() -> list[tuple[re.Pattern, str, float]]:
    out = []
    for t in sorted(terms("document_type"), key=lambda t: len(t["term"]), reverse=True):
        out.append((re.compile(r"^[\W_]*" + term_regex(t["term"]) + r"(?![\w])", re.IGNORECASE), t["code"], t["weight"]))
    return out


_TITLES = _title_patterns()


def document_type_candidates(lines) -> list[Candidate]:
    """UNTDID 1001 code of the title: a line of page 1's first lines that starts with a document-type
    word ('Gutschrift Nr. 12', 'CREDIT NOTE', 'Facture')."""
    out = []
    for pno, li, ln in lines:
        if pno != 1 or li >= TITLE_LINES:
            continue
        for rx, code, w in _TITLES:
            m = rx.match(ln)
            if m:
                out.append(Candidate(code, m.group(0).strip(), pno, li, "title", 0.8 if code != "380" else 0.6))
                break
    return out


def bic_candidates(lines) -> list[Candidate]:
    out = []
    for pno, li, ln in lines:
        for rx, w in label_patterns("bic"):
            for m in rx.finditer(ln):
                got = _BIC_RX.match(_after(ln, m).upper())
                if not got:
                    continue
                value = got.group(1).replace(" ", "").replace("\t", "")
                finding = check_bic(value)
                out.append(Candidate(value, got.group(1), pno, li, "label", w,
                                     validated=bool(finding and finding["ok"])))
            if out and out[-1].page == pno and out[-1].line == li:
                break
    return out


def reference_candidates(lines, field: str) -> list[Candidate]:
    """The identifier after an order / buyer-reference label, on its line or alone on the next one."""
    out = []
    for k, (pno, li, ln) in enumerate(lines):
        for rx, w in label_patterns(field):
            m = rx.search(ln)
            if not m:
                continue
            got = _first_id(_after(ln, m))
            if got:
                out.append(Candidate(got[0], got[1], pno, li, "label", w))
            elif (not _after(ln, m).strip(" :#") and not ln[: m.start()].strip() and k + 1 < len(lines)
                  and lines[k + 1][0] == pno):
                got = _first_id(lines[k + 1][2])
                if got:
                    out.append(Candidate(got[0], got[1], pno, lines[k + 1][1], "label_next_line", w * 0.8))
            break
    return out


def buyer_candidates(pages: list[str]) -> tuple[list[Candidate], list[Candidate], set[tuple[int, int]]]:
    """(buyer name, buyer VAT ID) candidates from the buyer blocks of each page, and the
    (page, line) of every buyer-block line (never evidence of the seller)."""
    names, vats, buyer_lines = [], [], set()
    for pno, text in enumerate(pages, start=1):
        parties = split_parties(text)
        buyer_lines.update((pno, i) for i, r in enumerate(parties.roles) if r in ("buyer", "delivery"))
        for name in parties.buyer_names[:1]:
            li = next((i for i, ln in enumerate(parties.lines) if name in ln), 0)
            names.append(Candidate(name.strip(), name, pno, li, "buyer_block", 0.7))
        for i, (ln, role) in enumerate(zip(parties.lines, parties.roles)):
            if role != "buyer":
                continue
            for m in _VAT_TOKEN.finditer(ln.upper()):
                value = normalise_vat_id(m.group(0))
                if vat_id_is_valid(value):  # a valid VAT ID in the buyer's block
                    vats.append(Candidate(value, m.group(0), pno, i, "buyer_block", 0.75))
    return names, vats, buyer_lines


_VAT_TOKEN = re.compile(r"(?<![A-Z0-9])[A-Z]{2}[ \t]?[0-9][0-9A-Z \t]{6,14}[0-9A-Z](?![A-Z0-9])")

