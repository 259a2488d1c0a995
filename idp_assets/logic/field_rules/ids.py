"""Identifiers: the invoice number (label-driven), the IBAN (mod-97 checksum) and the VAT ID."""

from __future__ import annotations

import re

from idp_assets.logic.field_rules.candidates import _SEP_PREFIX, Candidate, _after
from idp_assets.logic.field_rules.labels import label_alternation, label_patterns
from idp_assets.logic.numbers import find_dates
from idp_assets.logic.validation import iban_is_valid  # noqa: F401 - python-stdnum, re-exported


_INV_LABELS = label_patterns("invoice_number")  # idp_assets/logic/data/invoice_labels.json
_ID_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.\-]*[A-Za-z0-9]|[0-9]")


def _id_ok(tok: str) -> bool:
    if not tok or len(tok) < 3 or len(tok) > 40 or not re.search(r"\d", tok):
        return False
    if find_dates(tok) and find_dates(tok)[0].raw.strip() == tok:
        return False
    if re.fullmatch(r"\d{1,3}(?:[.,]\d{2})", tok):  # an amount
        return False
    if re.fullmatch(r"\d+[.,]\d+%?", tok):
        return False
    if re.fullmatch(r"\d{1,2}:\d{2}(?::\d{2})?", tok):  # a time of day
        return False
    return True


def _first_id(text: str) -> tuple[str, str] | None:
    text = _SEP_PREFIX.sub("", text)
    m = _ID_TOKEN.match(text)
    if not m:
        return None
    tok = m.group(0).rstrip(".-/")
    return (tok, tok) if _id_ok(tok) else None


def _invoice_number_candidates(lines) -> list[Candidate]:
    out: list[Candidate] = []
    for k, (pno, li, ln) in enumerate(lines):
        for rx, w in _INV_LABELS:
            for m in rx.finditer(ln):
                if w < 0.35 and not re.search(r"(?i)rechnung|invoice|facture|factuur|beleg|gutschrift",
                                              ln[: m.start()]):
                    continue  # bare 'Nr.' only after an invoice word ('HANDELSRECHNUNG (380) Nr. X')
                rest = _after(ln, m)
                got = _first_id(rest)
                if got:
                    out.append(Candidate(got[0], got[1], pno, li, "label", w))
                    continue
                if _SEP_PREFIX.sub("", rest).strip() or k + 1 >= len(lines) or lines[k + 1][0] != pno:
                    continue
                nxt = lines[k + 1][2]
                if ln[: m.start()].strip() == "":
                    got = _first_id(nxt)  # label alone on its line: value below
                    if got:
                        out.append(Candidate(got[0], got[1], pno, lines[k + 1][1], "label_next_line", w * 0.8))
                else:  # label is the last column header of the line: value under it
                    toks = nxt.split()
                    if len(toks) >= 2 and _id_ok(toks[-1].rstrip(".")):
                        tok = toks[-1].rstrip(".")
                        out.append(Candidate(tok, tok, pno, lines[k + 1][1], "label_column", w * 0.7))
    return out


_IBAN_RX = re.compile(r"(?<![A-Z0-9])([A-Z]{2}\d{2}(?:[ \t]?[A-Z0-9]){10,32})")


def _iban_candidates(lines) -> list[Candidate]:
    out: list[Candidate] = []
    for pno, li, ln in lines:
        labelled = re.search(r"(?i)IBAN", ln) is not None
        for m in _IBAN_RX.finditer(ln.upper()):
            chunk = m.group(1)
            groups = chunk.split()
            # try the longest run of groups that validates
            found = False
            for j in range(len(groups), 0, -1):
                cand = "".join(groups[:j])
                if len(cand) < 12:
                    break
                if iban_is_valid(cand):
                    out.append(Candidate(cand, " ".join(groups[:j]), pno, li, "iban" + ("_label" if labelled else ""),
                                         0.9 if labelled else 0.7))
                    found = True
                    break
            if not found:
                # labelled but failing the check (a misprint, a sample's made-up account): kept weakly and
                # unvalidated, so the fitted confidence is low and the field needs review
                keep = [groups[0]]
                for g in groups[1:]:
                    if len(g) > 5 or len("".join(keep + [g])) > 34:
                        break
                    keep.append(g)
                cand = "".join(keep)
                if labelled and 12 <= len(cand) <= 34 and (len(groups) == 1 or len(keep) >= 3):
                    out.append(Candidate(cand, " ".join(keep), pno, li, "iban_label", 0.4, validated=False))
    return out


_VAT_RX = re.compile(
    r"(?i)(?<![\w])" + label_alternation("vat_id") + r"[ \t]*[:.]?[ \t]*"
    r"([A-Z]{2}[ \t]?[0-9][0-9A-Z \t]{6,16}[0-9A-Z])"
)
_NOT_OWN_VAT = re.compile(r"(?i)(?:ihre|uw|your|votre|kunden|customer|buyer)[ \t\w.-]{0,12}$")


def _vat_candidates(lines) -> list[Candidate]:
    out: list[Candidate] = []
    for pno, li, ln in lines:
        for m in _VAT_RX.finditer(ln):
            if _NOT_OWN_VAT.search(ln[: m.start()]):
                continue
            toks = m.group(1).split()
            keep = [toks[0]]
            for t in toks[1:]:  # 'DE 232 446 240' but not 'DE123456789 HRB Nr.'
                if not re.fullmatch(r"[0-9][0-9A-Z]*", t) or len("".join(keep + [t])) > 14:
                    break
                keep.append(t)
            raw = " ".join(keep)
            val = raw.replace(" ", "").upper()
            val = re.match(r"[A-Z]{2}[0-9A-Z]{8,12}", val)
            if val:
                out.append(Candidate(val.group(0), raw, pno, li, "label", 0.8))
    return out
