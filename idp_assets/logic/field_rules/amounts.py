"""Amounts: the total (receipt rounding and OCR slips tolerated), net total and tax total."""

from __future__ import annotations

import re
from decimal import Decimal

from idp_assets.logic.field_rules.candidates import Candidate, _labels
from idp_assets.logic.field_rules.labels import label_patterns
from idp_assets.logic.numbers import find_amounts


# label vocabulary: idp_assets/logic/data/invoice_labels.json (BT-112 gross total, BT-115 amount due)
_TOTAL_LABELS = label_patterns("total", "amount_due")
_NOT_TOTAL = re.compile(
    r"(?i)sub[ \t-]*total|subtotaal|zwischensumme|netto|\bnet\b(?![ \t]*(?:[àa]|total))|\bHT\b|excl|exkl|exclusief|ohne|"
    r"untaxed|before[ \t]*tax|total[ \t]*(?:qty|quantity|items?|pcs|discount|savings|gst|tax|vat|mwst)|"
    r"(?:gst|tax|vat)[ \t]*(?:amount|total)|rabatt|discount|positionssumme|warenwert|"
    r"zuschl[äa]ge|abschl[äa]ge|ust[.-]?[ \t]*gesamt|steuer|excluding|total[ \t]*\d+(?:[.,]\d+)?[ \t]*%"
)
_FALLBACK_TOTAL_LABELS = _labels([(r"Sub[ \t-]*total|Subtotaal|Zwischensumme", 0.25), (r"Cash|Bar(?:zahlung)?|Paid", 0.2)])
_CURRENCY_ONLY = re.compile(r"(?i)^[(\[]?(?:RM|MYR|EUR|USD|GBP|CHF|INR|Rs\.?|[€$£¥₹])[)\]]?:?$")
_ROUNDING = re.compile(r"(?i)round")

_NET_LABELS = label_patterns("net_total")  # BT-109
_TAX_LABELS = label_patterns("tax_total")  # BT-110
# per-rate tax lines ('MwSt 19 %', '7% USt'): a pattern, not vocabulary
_TAX_RATE_LABELS = _labels(
    [
        (r"(?:TVA|BTW|VAT|Tax|MwSt\.?|USt\.?|Umsatzsteuer|GST|IVA)[ \t]*@?[ \t]*\d{1,2}(?:[.,]\d{1,2})?[ \t]*%|"
         r"\d{1,2}(?:[.,]\d{1,2})?[ \t]*%[ \t]*(?:MwSt|USt|Umsatzsteuer|Mehrwertsteuer|VAT|TVA|BTW|GST|Tax|IVA)\.?", 0.5),
    ]
)


def _fix_ocr_amounts(line: str) -> str:
    # '33, 92' / '33 .90' -> '33,92' (OCR spacing inside numbers)
    return re.sub(r"(?<=\d)[ \t]?([.,])[ \t](?=\d{2}(?!\d))", r"\1", line)


def _plain(v: Decimal) -> str:
    """Plain decimal string with at least two decimals ('1939' -> '1939.00')."""
    return f"{v:.2f}" if -v.as_tuple().exponent <= 2 else f"{v:f}"


# OCR reading a receipt's decimal point as ':' or '-' ('TOTAL 28:90'); only right after an amount label
_OCR_DECIMAL = re.compile(r"^([^\d]{0,12}?\d{1,6})[:\-](\d{2})(?![\d:])")


def _amount_after(line: str, start: int, which: str = "first"):
    rest = _fix_ocr_amounts(line[start:])
    ams = find_amounts(rest)
    if not ams:
        ams = find_amounts(_OCR_DECIMAL.sub(r"\1.\2", rest, count=1))
    if not ams:
        return None
    return ams[0] if which == "first" else ams[-1]


def _amount_candidates(lines, labels, *, negative: re.Pattern | None, which: str, kind: str) -> list[Candidate]:
    out: list[Candidate] = []
    has_rounding = any(_ROUNDING.search(ln) for _, _, ln in lines)
    for k, (pno, li, ln) in enumerate(lines):
        for rx, w in labels:
            m = rx.search(ln)
            if not m:
                continue
            if negative is not None and negative.search(ln[max(0, m.start() - 12): m.end() + 25]):
                continue
            if kind == "total" and has_rounding and w < 0.9 and _ROUNDING.search(ln) is None:
                w *= 0.85  # a plain TOTAL on a receipt that also rounds is usually pre-rounding
            a = _amount_after(ln, m.end(), which)
            label_alone = ln[: m.start()].strip() == ""
            if a is not None:
                out.append(Candidate(_plain(a.value), a.raw, pno, li, "label", w))
            elif kind == "total" and not label_alone and ln[m.end():].strip() == "":
                # last column of a header row: the figures are in the rows below, the sum last
                j, last = k + 1, None
                while j < len(lines) and j <= k + 6 and lines[j][0] == pno:
                    ams = find_amounts(_fix_ocr_amounts(lines[j][2]))
                    toks = lines[j][2].split()
                    if len(ams) < 2 or len(ams) < 0.5 * len(toks):
                        break
                    last = (lines[j], ams[-1])
                    j += 1
                if last is not None:
                    (lp, ll, _), a = last
                    out.append(Candidate(_plain(a.value), a.raw, lp, ll, "label_column", w * 0.75))
            elif k + 1 < len(lines) and lines[k + 1][0] == pno:
                j = k + 1
                if _CURRENCY_ONLY.match(lines[j][2]) and j + 1 < len(lines) and lines[j + 1][0] == pno:
                    j += 1  # 'TOTAL' / 'RM' / '85.54' (one box per line)
                nxt = lines[j][2]
                if not any(r.search(nxt) for r, _ in labels):
                    a = _amount_after(nxt, 0, "first")
                    if a is not None:
                        out.append(Candidate(_plain(a.value), a.raw, pno, lines[j][1], "label_next_line", w * 0.7))
            break  # strongest matching label per line only
    return out


def _tax_candidates(lines) -> list[Candidate]:
    strong = _amount_candidates(lines, _TAX_LABELS, negative=None, which="last", kind="tax")
    if strong:
        return strong
    # per-rate lines ('zzgl. Umsatzsteuer 7% von 129,37 9,06'): their sum, weakly
    per_rate = _amount_candidates(lines, _TAX_RATE_LABELS, negative=re.compile(r"(?i)incl|inkl|summary"),
                                  which="last", kind="tax")
    if not per_rate:
        return []
    seen = {}
    for c in per_rate:
        seen.setdefault((c.page, c.line), c)
    total = sum((Decimal(c.value) for c in seen.values()), Decimal(0))
    c0 = next(iter(seen.values()))
    return [Candidate(f"{total:.2f}", "; ".join(c.raw for c in seen.values()), c0.page, c0.line, "tax_rate_lines",
                      0.45 if len(seen) == 1 else 0.35)]
