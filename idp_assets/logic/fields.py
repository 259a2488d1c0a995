"""Header fields of invoices and receipts: e-invoice XML first, then rules over the text.

Entry point: :func:`extract_fields`.  It returns the fields as
:class:`~idp_assets.models.FieldValue` objects plus a list of validation findings
``{"rule", "ok", "message"}``.

Rules (German, English, French, Dutch):

* label-driven regexes ("Rechnungsnummer", "Invoice No.", "N° de facture", ...), with
  the value on the same line, on the next line, or under a column header;
* receipt totals near TOTAL / ROUNDED / ROUNDING lines (OCR slips such as ``33, 90``
  tolerated);
* supplier from an explicit seller label, the sender line above the address window
  (``Kraxi GmbH · Flugzeugallee 17 · 12345 Papierfeld``), lines carrying a legal form
  (GmbH, Sdn Bhd, Ltd, SARL, B.V., ...) or, weakest, the first prominent lines;
* currency from codes, symbols and words.

Confidence is never a constant: for the winning value it combines the strength of the
rules that produced it (noisy-or over independent hits), how strongly a competing value
was supported, the OCR confidence of the words the value was read from (or the page's,
or a born-digital default) and whether the value validated (parses as a date / amount /
IBAN checksum / plausible date).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from idp_assets.models import FieldValue, OcrWord

from .numbers import (
    currency_counts,
    find_amounts,
    find_dates,
    parse_amount,
)
from .validation import check_currency, check_einvoice_vs_print, check_tax_rate, check_vat_id, country_of

__all__ = [
    "CORE_FIELDS",
    "FieldExtraction",
    "extract_fields",
    "iban_is_valid",
    "validate_fields",
]

CORE_FIELDS = ("supplier_name", "invoice_number", "date", "total", "currency")

# confidence assumed for a born-digital text layer when no OCR confidence is known
TEXT_LAYER_CONFIDENCE = 0.97
LAYOUT_FALLBACK_WEIGHT = 0.85  # support of a value read only from re-ordered layout lines
LAYOUT_FALLBACK_FIELDS = ("invoice_number", "date", "due_date", "iban", "vat_id")


class FieldExtraction(NamedTuple):
    fields: dict[str, FieldValue]
    validation: list[dict]


@dataclass
class Candidate:
    value: str
    raw: str
    page: int
    line: int
    rule: str
    strength: float
    validated: bool = True


# --------------------------------------------------------------------------- helpers

_SP = r"[ \t]*"
# label must not continue a longer word on the left ("Ursprungsbeleg-Nr", "Kunden-Nr")
_LB = r"(?<![\w\-/])"


def _norm_line(s: str) -> str:
    s = unicodedata.normalize("NFKC", s)
    return s.replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", "-")


def _labels(spec: Sequence[tuple[str, float]]) -> list[tuple[re.Pattern, float]]:
    return [(re.compile(_LB + "(?:" + rx + r")(?![\w])", re.IGNORECASE), w) for rx, w in spec]


def _lines(pages: Sequence[str]) -> list[tuple[int, int, str]]:
    """(page 1-based, line index within page, normalised line text)"""
    out = []
    for pno, text in enumerate(pages, start=1):
        for i, ln in enumerate((text or "").splitlines()):
            ln = _norm_line(ln).strip()
            if ln:
                out.append((pno, i, ln))
    return out


def _after(line: str, m: re.Match) -> str:
    return line[m.end():]


_SEP_PREFIX = re.compile(r"^[\s:#.\-=]*")


# --------------------------------------------------------------------------- invoice number

_INV_LABELS = _labels(
    [
        (r"Rechnungs[- ]?(?:nummer|nr\.?|no\.?)|Rechnung[ \t]*(?:Nr\.?|Nummer|No\.?|#)", 0.9),
        (r"Beleg[- ]?(?:nummer|nr\.?)|Re\.?[- ]?Nr\.?", 0.8),
        (r"Gutschrift(?:s[- ]?nummer|[ \t]*Nr\.?)", 0.85),
        (r"Invoice[ \t]*(?:No\.?|Number|Nr\.?|#|ID|Num\.?)|Inv\.?[ \t]*(?:No\.?|#)|INV#", 0.9),
        (r"Tax[ \t]+Invoice[ \t]*(?:No\.?|#)|Bill[ \t]*(?:No\.?|Number|#)|Receipt[ \t]*(?:No\.?|Number|#)", 0.75),
        (r"Document[ \t]*(?:No\.?|Number)|Doc\.?[ \t]*No\.?", 0.6),
        (r"N[°º][ \t]*de[ \t]*facture|Num[ée]ro[ \t]*de[ \t]*facture|Facture[ \t]*(?:n[°º]|No\.?|Nr\.?|num[ée]ro|#)", 0.9),
        (r"Factuur[ \t]*(?:nummer|nr\.?|no\.?)|Factuurnummer", 0.9),
        (r"Booking[ \t]*ID", 0.45),
        (r"Rechnung|Invoice|Facture|Factuur|Handelsrechnung", 0.4),
        (r"(?:Nr|No|N[°º])\.?", 0.3),
    ]
)
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


# --------------------------------------------------------------------------- dates

_DATE_LABELS = _labels(
    [
        (r"Rechnungs[- ]?datum|Beleg[- ]?datum|Datum[ \t]+der[ \t]+Rechnung|Rechnungsdatum", 0.9),
        (r"Invoice[ \t]*Date|Date[ \t]*of[ \t]*(?:issue|invoice)|Issue[ \t]*Date|Invoice[ \t]*Dt\.?|Bill[ \t]*Date", 0.9),
        (r"Factuur[ \t]*datum|Factuurdatum|Date[ \t]*de[ \t]*(?:la[ \t]*)?facture|Date[ \t]*d'[ée]mission", 0.9),
        (r"Datum|Date|Dated|Fecha|BIZDATE", 0.6),
        (r"vom|von|du|le", 0.35),
    ]
)
_NOT_ISSUE_DATE = re.compile(
    r"(?i)(?:Leistungs|Liefer|Bestell|Order|Lieferschein|Auftrag|Vertrags|Versand|Zahlungs|Buchungs)[- ]?(?:datum|date)"
    r"|Leistungszeitraum|Zeitraum|Due|F[äa]llig|Vervaldatum|[ée]ch[ée]ance|Check[ \t]*(?:In|Out)|Period|Termin|"
    r"Geburts|Orderdatum|valid|g[üu]ltig|expir|bis[ \t]*(?:zum)?$"
)


_INVOICE_CONTEXT = re.compile(r"(?i)rechnung|invoice|facture|factuur|gutschrift|beleg|(?:nr|no)\.?[ \t]*[:#]?[ \t]*\S*\d")


def _dates_in(text: str, today: date) -> list:
    return find_dates(text, today=today)


def _date_ok(d: date, today: date) -> bool:
    return date(1980, 1, 1) <= d <= today


# digits OCR commonly mistakes for the right one on receipts (read -> possibly meant)
_DIGIT_CONFUSIONS = {"4": "1", "6": "0", "8": "0", "7": "1", "9": "0", "5": "6"}
_BROKEN_DATE = re.compile(r"^[\s:.\-]*(\d{1,2})[ \t]*([/.\-])[ \t]*(\d{1,2})[ \t]*\2[ \t]*((?:19|20)\d{2}|\d{2})(?!\d)")
OCR_REPAIR_WEIGHT = 0.6


def _repair_date(rest: str, today: date) -> tuple[date, str] | None:
    """A labelled day-first date whose day or month is impossible (``45/07/2017``,
    ``30/64/2018``) read again with one common OCR digit confusion undone; only when
    exactly one reading is a valid date not in the future."""
    m = _BROKEN_DATE.match(rest)
    if not m:
        return None
    dd, mm, yy = m.group(1), m.group(3), m.group(4)
    year = int(yy) if len(yy) == 4 else 2000 + int(yy)
    if 1 <= int(dd) <= 31 and 1 <= int(mm) <= 12:
        return None  # not broken (the date parser rejected it for another reason)
    found = set()
    for part in ("d", "m"):
        s = dd if part == "d" else mm
        for i, ch in enumerate(s):
            alt = _DIGIT_CONFUSIONS.get(ch)
            if alt is None:
                continue
            fixed = s[:i] + alt + s[i + 1:]
            d_, m_ = (fixed, mm) if part == "d" else (dd, fixed)
            try:
                value = date(year, int(m_), int(d_))
            except ValueError:
                continue
            if value <= today:
                found.add(value)
    if len(found) != 1:
        return None
    return found.pop(), m.group(0).strip(" :.-")


def _date_candidates(lines, today: date) -> list[Candidate]:
    out: list[Candidate] = []
    for k, (pno, li, ln) in enumerate(lines):
        labelled_spans = []
        for rx, w in _DATE_LABELS:
            for m in rx.finditer(ln):
                before = ln[max(0, m.start() - 25): m.end()]
                if _NOT_ISSUE_DATE.search(before):
                    continue
                if w < 0.5 and not _INVOICE_CONTEXT.search(ln[: m.start()]):
                    continue  # 'vom' / 'du' only right after an invoice reference
                rest = _after(ln, m)
                ds = _dates_in(rest, today)
                if ds and ds[0].start <= 40:
                    d = ds[0]
                    out.append(Candidate(d.value.isoformat(), d.raw, pno, li, "label", w, _date_ok(d.value, today)))
                    labelled_spans.append(m.end() + d.start)
                    continue
                fixed = _repair_date(rest, today)
                if fixed is not None:
                    out.append(Candidate(fixed[0].isoformat(), fixed[1], pno, li, "label_ocr_repair", w * OCR_REPAIR_WEIGHT,
                                         _date_ok(fixed[0], today)))
                    continue
                if rest.strip(" :") == "":
                    for off, f in ((1, 0.8), (2, 0.55)):
                        if k + off < len(lines) and lines[k + off][0] == pno:
                            ds = _dates_in(lines[k + off][2], today)
                            if ds:
                                d = ds[0]
                                out.append(
                                    Candidate(
                                        d.value.isoformat(), d.raw, pno, lines[k + off][1], "label_next_line",
                                        w * f, _date_ok(d.value, today),
                                    )
                                )
                                break
        # every other date: weak evidence (first ones on the document a bit more)
        for d in _dates_in(ln, today):
            if d.start in labelled_spans:
                continue
            if _NOT_ISSUE_DATE.search(ln[max(0, d.start - 30): d.start]):
                continue
            w = 0.3 if not out and k < 40 else 0.15
            out.append(Candidate(d.value.isoformat(), d.raw, pno, li, "first_date" if w > 0.2 else "any_date", w,
                                 _date_ok(d.value, today)))
    return out


_DUE_LABELS = _labels(
    [
        (r"F[äa]lligkeit(?:sdatum)?|F[äa]llig[ \t]*(?:am|bis)?|Zahlungsziel|Zahlbar[ \t]*bis", 0.85),
        (r"Due[ \t]*Date|Payment[ \t]*Due|Date[ \t]*Due|Due[ \t]*On|Pay[ \t]*By", 0.85),
        (r"Vervaldatum|Date[ \t]*d'[ée]ch[ée]ance|[ÉE]ch[ée]ance", 0.85),
        (r"(?:zahlbar|[üu]berweisen)[^\n]{0,50}?bis(?:[ \t]*zum)?", 0.7),
    ]
)


def _due_date_candidates(lines, today: date) -> list[Candidate]:
    out: list[Candidate] = []
    for k, (pno, li, ln) in enumerate(lines):
        for rx, w in _DUE_LABELS:
            for m in rx.finditer(ln):
                rest = _after(ln, m)
                ds = find_dates(rest, today=today)
                if ds and ds[0].start <= 30:
                    out.append(Candidate(ds[0].value.isoformat(), ds[0].raw, pno, li, "label", w))
                elif rest.strip(" :") == "" and k + 1 < len(lines) and lines[k + 1][0] == pno:
                    ds = find_dates(lines[k + 1][2], today=today)
                    if ds:
                        out.append(Candidate(ds[0].value.isoformat(), ds[0].raw, pno, lines[k + 1][1],
                                             "label_next_line", w * 0.8))
    return out


# --------------------------------------------------------------------------- amounts

_TOTAL_LABELS = _labels(
    [
        (r"Gesamtbetrag|Rechnungsbetrag|Endbetrag|Endsumme|Gesamtsumme|Bruttosumme|Bruttobetrag|"
         r"Rechnungssumme[ \t]*brutto|Summe[ \t]*brutto|Summe[ \t]*gesamt|Rechnungsbeitrag|Brutto[ \t]*EUR", 0.9),
        (r"Grand[ \t]*Total|Total[ \t]*Amount(?:[ \t]*Due)?|Amount[ \t]*Due|Amt[ \t]*Due|Total[ \t]*Due|"
         r"Balance[ \t]*Due|Invoice[ \t]*Total|Total[ \t]*for[ \t]*this[ \t]*invoice|Total[ \t]*Payable|"
         r"Amount[ \t]*Payable|Nett?[ \t]*Total|Total[ \t]*\(?incl\.?(?:usive)?|Total[ \t]*Sales[ \t]*\(?Inclusive|"
         r"Total[ \t]*inclusive|Total[ \t]*\(?RM\)?", 0.85),
        (r"Rounded[ \t]*Total|Total[ \t]*Rounded|Total[ \t]*after[ \t]*rounding|Rounded[ \t]*Amount", 0.95),
        (r"Total[ \t]*TTC|Montant[ \t]*TTC|Net[ \t]*[àa][ \t]*payer|Total[ \t]*[àa][ \t]*payer|Total[ \t]*Facture|"
         r"Totaal[ \t]*te[ \t]*betalen|Factuur[ \t]*totaal|Te[ \t]*betalen", 0.9),
        (r"Zahlbetrag|Zu[ \t]*zahlen|Gross[ \t]*(?:Amt|Amount|Total)", 0.7),
        (r"Total|Totaal|Summe|Montant|TOTAL", 0.55),
    ]
)
_NOT_TOTAL = re.compile(
    r"(?i)sub[ \t-]*total|subtotaal|zwischensumme|netto|\bnet\b(?![ \t]*(?:[àa]|total))|\bHT\b|excl|exkl|exclusief|ohne|"
    r"untaxed|before[ \t]*tax|total[ \t]*(?:qty|quantity|items?|pcs|discount|savings|gst|tax|vat|mwst)|"
    r"(?:gst|tax|vat)[ \t]*(?:amount|total)|rabatt|discount|positionssumme|warenwert|gesamtbeitrag|"
    r"zuschl[äa]ge|abschl[äa]ge|ust[.-]?[ \t]*gesamt|steuer|excluding|total[ \t]*\d+(?:[.,]\d+)?[ \t]*%"
)
_FALLBACK_TOTAL_LABELS = _labels([(r"Sub[ \t-]*total|Subtotaal|Zwischensumme", 0.25), (r"Cash|Bar(?:zahlung)?|Paid", 0.2)])
_CURRENCY_ONLY = re.compile(r"(?i)^[(\[]?(?:RM|MYR|EUR|USD|GBP|CHF|INR|Rs\.?|[€$£¥₹])[)\]]?:?$")
_ROUNDING = re.compile(r"(?i)round")

_NET_LABELS = _labels(
    [
        (r"Nettobetrag|Rechnungssumme[ \t]*netto|Summe[ \t]*netto|Netto[ \t]*(?:summe|betrag|EUR)?|"
         r"Rechnungssumme[ \t]*ohne[ \t]*USt\.?|Total[ \t]*HT|Montant[ \t]*HT|Exclusief[ \t]*BTW|"
         r"Amount[ \t]*untaxed|Untaxed[ \t]*Amount|Net[ \t]*Amount|Total[ \t]*(?:excl\.?|excluding)[ \t]*(?:VAT|tax|GST)?|"
         r"Total[ \t]*Sales[ \t]*\(?Excluding[ \t]*GST\)?", 0.85),
        (r"Sub[ \t-]*total|Subtotaal|Zwischensumme", 0.45),
    ]
)
_TAX_LABELS = _labels(
    [
        (r"Summe[ \t]*Umsatzsteuer|USt\.?[ \t]*Gesamt|Umsatzsteuer[ \t]*gesamt|Steuerbetrag|MwSt\.?[- ]?Betrag|"
         r"Total[ \t]*(?:Tax|VAT|GST)|(?:Tax|VAT|GST)[ \t]*(?:Total|Amount)|Montant[ \t]*TVA|Total[ \t]*TVA|"
         r"BTW[ \t]*bedrag", 0.85),
        (r"(?:TVA|BTW|VAT|Tax|MwSt\.?|USt\.?|Umsatzsteuer|GST)[ \t]*@?[ \t]*\d{1,2}(?:[.,]\d{1,2})?[ \t]*%|"
         r"\d{1,2}(?:[.,]\d{1,2})?[ \t]*%[ \t]*(?:MwSt|USt|Umsatzsteuer|Mehrwertsteuer|VAT|TVA|BTW|GST|Tax)\.?", 0.5),
    ]
)


def _fix_ocr_amounts(line: str) -> str:
    # '33, 92' / '33 .90' -> '33,92' (OCR spacing inside numbers)
    return re.sub(r"(?<=\d)[ \t]?([.,])[ \t](?=\d{2}(?!\d))", r"\1", line)


def _plain(v: Decimal) -> str:
    """Plain decimal string with at least two decimals ('1939' -> '1939.00')."""
    return f"{v:.2f}" if -v.as_tuple().exponent <= 2 else f"{v:f}"


def _amount_after(line: str, start: int, which: str = "first"):
    ams = find_amounts(_fix_ocr_amounts(line[start:]))
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
    strong = _amount_candidates(lines, _TAX_LABELS[:1], negative=None, which="last", kind="tax")
    if strong:
        return strong
    # per-rate lines ('zzgl. Umsatzsteuer 7% von 129,37 9,06'): their sum, weakly
    per_rate = _amount_candidates(lines, _TAX_LABELS[1:], negative=re.compile(r"(?i)incl|inkl|summary"),
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


# --------------------------------------------------------------------------- supplier

_LEGAL_FORM = re.compile(
    r"(?i)(?<![\w-])(?:GmbH(?:[ \t]*&[ \t]*Co\.?[ \t]*KG)?|AG|KG|OHG|UG|e\.[ \t]?K\.|mbH|SE|a\.[ \t]?G\.|"
    r"Sdn\.?[ \t]*Bhd\.?|Bhd\.?|S/B|SB|PLT|Ltd\.?|Limited|Inc\.?|Incorporated|LLC|LLP|PLC|Corp\.?|Corporation|"
    r"Pvt\.?[ \t]*Ltd\.?|Private[ \t]+Limited|S\.?A\.?R\.?L\.?|SARL|SAS|S\.A\.|SA|B\.[ \t]?V\.?|BV|N\.[ \t]?V\.?|NV|"
    r"Enterprise|Trading|Co\.|Company)(?![\w-])"
)
_SELLER_LABEL = re.compile(
    r"(?i)^(?:Verk[äa]ufer|Rechnungsersteller|Lieferant|Seller|Supplier|Vendor|Service[ \t]*Provider|From|"
    r"Fournisseur|Vendeur|Leverancier|Issued[ \t]*by)(?![\w])[ \t]*:?[ \t]*(.*)$"
)
_SOLD_BY = re.compile(r"(?i)(?:sold[ \t]+by|Titulaire[ \t]+du[ \t]+compte[ \t]*:|Account[ \t]+holder[ \t]*:)[ \t]*(.+)$")
_BUYER_LABEL = re.compile(
    r"(?i)^(?:Rechnungsempf[äa]nger|Warenempf[äa]nger|Empf[äa]nger|K[äa]ufer|Kunde|Bill[ \t]*to|Ship[ \t]*to|"
    r"Invoice[ \t]*to|Sold[ \t]*to|Deliver[ \t]*to|Customer|Client|Herrn?|Frau|ATTN|Factuuradres|Afleveradres|"
    r"Lieferadresse|Adresse[ \t]*de[ \t]*facturation|Guest[ \t]*Name)\b"
)
_TITLE_LINE = re.compile(
    r"(?i)^[\W_]*(?:(?:simplified[ \t]+)?tax[ \t]+invoice|invoice|rechnung|facture|factuur|receipt|official[ \t]+receipt|"
    r"payment[ \t]+receipt|quittung|beleg|kopie|copy|original|page|seite|cash[ \t]+(?:sale|bill)|bill|"
    r"stylesheet.*|welcome.*|thank.*)[\W_]*$"
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
    return s


def _cut_after_legal_form(s: str) -> str:
    """'Kraxi GmbH Sitz der Gesellschaft' -> 'Kraxi GmbH' (up to the last legal-form token)."""
    ends = [m.end() for m in _LEGAL_FORM.finditer(s)]
    return s[: ends[-1]] if ends else s


def _name_key(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).casefold()
    return "".join(ch for ch in s if ch.isalnum())


def _looks_like_name(s: str) -> bool:
    letters = sum(ch.isalpha() for ch in s)
    return len(s) >= 3 and letters >= 3 and letters / max(len(s.replace(" ", "")), 1) >= 0.6


def _supplier_candidates(lines) -> list[Candidate]:
    out: list[Candidate] = []
    buyer_until = -1
    first_page_lines = [x for x in lines if x[0] == 1]
    n1 = max(len(first_page_lines), 1)
    for k, (pno, li, ln) in enumerate(lines):
        if _BUYER_LABEL.match(ln):
            buyer_until = k + 5
        in_buyer = k <= buyer_until
        pos_factor = 1.0 - 0.35 * min(k / n1, 1.0) if pno == 1 else 0.6

        m = _SELLER_LABEL.match(ln)
        if m:
            rest = _clean_name(m.group(1))
            if rest and _looks_like_name(rest) and not re.search(r"\d{3,}", rest):
                out.append(Candidate(rest, m.group(1), pno, li, "seller_label", 0.85))
            elif k + 1 < len(lines):
                j = k + 1
                while j < len(lines) - 1 and j <= k + 2 and re.fullmatch(r"\(.*\)", lines[j][2]):
                    j += 1  # '(Not to be used for payment remittance)'
                nxt = lines[j][2]
                if not re.match(r"(?i)^(?:GLN|Lief|USt|VAT)", nxt) or _LEGAL_FORM.search(nxt):
                    name = _clean_name(_SENDER_SPLIT.split(nxt)[0])
                    if _looks_like_name(name):
                        out.append(Candidate(name, nxt, pno, lines[j][1], "seller_label", 0.85))
                # ZUGFeRD-1 style: 'Lieferant' / 'GLN ... Lief-Nr' / 'MUSTERLIEFERANT GMBH'
                if k + 2 < len(lines) and re.match(r"(?i)^(?:GLN|Lief)", nxt):
                    nn = lines[k + 2][2]
                    name = _clean_name(nn)
                    if _looks_like_name(name):
                        out.append(Candidate(name, nn, pno, lines[k + 2][1], "seller_label", 0.8))
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
            name = _clean_name(_cut_after_legal_form(seg))
            if (_looks_like_name(name) and len(name) <= 80 and _LEGAL_FORM.sub("", name).strip(" .,&()") != ""
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
    for pno, li, ln in first_page_lines[:8]:
        name = _clean_name(ln)
        if rank >= 3:
            break
        if not _looks_like_name(name) or _TITLE_LINE.match(name) or _BUYER_LABEL.match(name):
            continue
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


# --------------------------------------------------------------------------- ids

_IBAN_LEN = {
    "DE": 22, "AT": 20, "CH": 21, "NL": 18, "BE": 16, "FR": 27, "IT": 27, "ES": 24, "GB": 22, "LU": 20,
    "IE": 22, "PL": 28, "CZ": 24, "DK": 18, "SE": 24, "FI": 18, "NO": 15, "PT": 25,
}


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check (and the country's length where known)."""
    s = re.sub(r"\s", "", iban or "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{8,30}", s):
        return False
    if s[:2] in _IBAN_LEN and len(s) != _IBAN_LEN[s[:2]]:
        return False
    digits = "".join(str(int(ch, 36)) for ch in s[4:] + s[:4])
    return int(digits) % 97 == 1


_IBAN_RX = re.compile(r"(?<![A-Z0-9])([A-Z]{2}\d{2}(?:[ \t]?[A-Z0-9]){10,32})")


def _iban_candidates(lines) -> list[Candidate]:
    out: list[Candidate] = []
    for pno, li, ln in lines:
        labelled = re.search(r"(?i)IBAN", ln) is not None
        for m in _IBAN_RX.finditer(ln.upper()):
            chunk = m.group(1)
            groups = chunk.split()
            # try the longest run of groups that validates
            for j in range(len(groups), 0, -1):
                cand = "".join(groups[:j])
                if len(cand) < 12:
                    break
                if iban_is_valid(cand):
                    out.append(Candidate(cand, " ".join(groups[:j]), pno, li, "iban" + ("_label" if labelled else ""),
                                         0.9 if labelled else 0.7))
                    break
            else:
                if labelled and len(groups) == 1 and 12 <= len(chunk) <= 34:
                    out.append(Candidate(chunk, chunk, pno, li, "iban_label", 0.4, validated=False))
    return out


_VAT_RX = re.compile(
    r"(?i)(?<![\w])(?:USt[-. \t]*Id(?:ent)?[-. \t]*Nr\.?|USt-?IdNr\.?|UStId|VAT[ \t]*(?:Reg(?:istration)?\.?[ \t]*)?"
    r"(?:No\.?|Number|ID|#)?|BTW(?:[- \t]*(?:nr\.?|nummer))?|TVA(?:[ \t]*intracom(?:munautaire)?)?|N°[ \t]*TVA|"
    r"Tax[ \t]*ID|VAT)[ \t]*[:.]?[ \t]*"
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


# --------------------------------------------------------------------------- scoring


class _Conf:
    def __init__(self, words_by_page, page_confidences):
        self.words = {}
        for pno, words in enumerate(words_by_page or [], start=1):
            d = defaultdict(list)
            for w in words or []:
                t = _tok(w.text)
                if t:
                    d[t].append(w.confidence)
            self.words[pno] = d
        self.pages = list(page_confidences or [])

    def of(self, raw: str, page: int) -> float:
        toks = [_tok(t) for t in (raw or "").split()]
        toks = [t for t in toks if t]
        d = self.words.get(page)
        if d and toks:
            confs = []
            for t in toks:
                if t in d:
                    confs.append(sum(d[t]) / len(d[t]))
            if confs:
                # every token counts; tokens not found as words take the page level
                page_c = self._page(page)
                confs += [page_c] * (len(toks) - len(confs))
                return max(0.0, min(1.0, sum(confs) / len(confs)))
        return self._page(page)

    def _page(self, page: int) -> float:
        if 1 <= page <= len(self.pages) and self.pages[page - 1] is not None:
            return float(self.pages[page - 1])
        if self.words.get(page):
            vals = [c for cs in self.words[page].values() for c in cs]
            return sum(vals) / len(vals)
        return TEXT_LAYER_CONFIDENCE


def _tok(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", s).casefold() if ch.isalnum())


def _choose(cands: list[Candidate], conf: _Conf, key=lambda v: v) -> tuple[Candidate, float, int] | None:
    """Winner by noisy-or support over candidates sharing a (normalised) value."""
    if not cands:
        return None
    groups: dict[str, list[Candidate]] = defaultdict(list)
    for c in cands:
        groups[key(c.value)].append(c)

    def support(cs: list[Candidate]) -> float:
        # one vote per (rule, location): repeated hits by the same rule on the same line count once
        seen = {}
        for c in cs:
            k = (c.rule, c.page, c.line)
            seen[k] = max(seen.get(k, 0.0), c.strength * (1.0 if c.validated else 0.5))
        p = 1.0
        for s in seen.values():
            p *= 1.0 - min(s, 0.99)
        return 1.0 - p

    scored = sorted(((support(cs), cs) for cs in groups.values()), key=lambda x: -x[0])
    best_s, best_cs = scored[0]
    second = scored[1][0] if len(scored) > 1 else 0.0
    top = max(best_cs, key=lambda c: c.strength)
    ocr = conf.of(top.raw, top.page)
    valid = 1.0 if top.validated else 0.5
    c = best_s * (1.0 - 0.5 * second) * (0.3 + 0.7 * ocr) * valid
    return top, max(0.01, min(0.99, c)), len({(x.rule, x.page, x.line) for x in best_cs})


def _fv(cand: Candidate, confidence: float, value: str | None = None) -> FieldValue:
    return FieldValue(
        value=value if value is not None else cand.value,
        confidence=round(confidence, 4),
        source="rules:" + cand.rule,
        page=cand.page,
        raw=cand.raw,
    )


# --------------------------------------------------------------------------- e-invoice

_EINV_MAP = {
    "supplier_name": "supplier_name",
    "invoice_number": "invoice_number",
    "date": "issue_date",
    "total": "gross_total",
    "currency": "currency",
    "vat_id": "seller_vat_id",
    "iban": "iban",
    "due_date": "due_date",
    "net_total": "net_total",
    "tax_total": "tax_total",
    "buyer_name": "buyer_name",
}


def _einvoice_fields(einv: dict) -> dict[str, FieldValue]:
    out: dict[str, FieldValue] = {}
    for name, key in _EINV_MAP.items():
        v = einv.get(key)
        if v in (None, ""):
            continue
        ok = True
        if name in ("date", "due_date"):
            try:
                date.fromisoformat(v)
            except ValueError:
                ok = False
        elif name in ("total", "net_total", "tax_total"):
            ok = parse_amount(v) is not None
        elif name == "iban":
            ok = iban_is_valid(v)
        elif name == "currency":
            ok = bool(re.fullmatch(r"[A-Z]{3}", v))
        out[name] = FieldValue(
            value=str(v), confidence=0.97 if ok else 0.6, source="einvoice_xml", page=None, raw=str(v)
        )
    return out


def _text_contains_number(text: str, number: str) -> bool:
    f = lambda s: "".join(ch for ch in unicodedata.normalize("NFKC", s).upper() if ch.isalnum())
    n = f(number)
    return bool(n) and n in f(text)


def _text_contains_amount(text: str, amount: str) -> bool:
    want = parse_amount(amount)
    if want is None:
        return False
    for ln in text.splitlines():
        for a in find_amounts(_fix_ocr_amounts(_norm_line(ln)), require_decimals=False):
            if a.value == want or a.value == -want:
                return True
    return False


def _printed_in(name: str, value: str | None, text: str) -> bool | None:
    """Whether an e-invoice value is printed on the page in any usual form (``None``: the
    field cannot be checked against text, e.g. a currency the page never names)."""
    if not value:
        return None
    if name in ("total", "net_total", "tax_total"):
        return _text_contains_amount(text, value)
    if name in ("date", "due_date"):
        return any(d.value.isoformat() == value for d in find_dates(text))
    if name == "currency":
        counts = currency_counts(text)
        return (value in counts) if counts else None
    return _text_contains_number(text, value)


# --------------------------------------------------------------------------- validation


def validate_fields(
    fields: dict[str, FieldValue],
    *,
    einvoice: dict | None = None,
    text: str = "",
    today: date | None = None,
) -> list[dict]:
    """Findings ``{"rule", "ok", "message"}`` for a set of extracted fields."""
    today = today or date.today()
    out: list[dict] = []

    def add(rule: str, ok: bool, message: str) -> None:
        out.append({"rule": rule, "ok": bool(ok), "message": message})

    if einvoice is not None and einvoice.get("error"):
        add("einvoice_parse", False, f"embedded e-invoice XML {einvoice.get('filename')!r} unreadable: {einvoice['error']}")
    elif einvoice is not None and text.strip():
        num = einvoice.get("invoice_number")
        if num:
            found = _text_contains_number(text, num)
            add("einvoice_invoice_number_in_text", found,
                f"XML invoice number {num!r} {'found' if found else 'NOT found'} in the printed text")
        tot = einvoice.get("gross_total")
        if tot:
            found = _text_contains_amount(text, tot)
            add("einvoice_total_in_text", found,
                f"XML GrandTotalAmount {tot} {'found' if found else 'NOT found'} in the printed text")

    vals = {k: parse_amount(v.value) if v.value is not None else None
            for k, v in fields.items() if k in ("net_total", "tax_total", "total")}
    if all(vals.get(k) is not None for k in ("net_total", "tax_total", "total")):
        diff = vals["net_total"] + vals["tax_total"] - vals["total"]
        ok = abs(diff) <= Decimal("0.02")
        add("totals_consistent", ok,
            f"net {vals['net_total']} + tax {vals['tax_total']} = {vals['net_total'] + vals['tax_total']} "
            f"{'matches' if ok else 'does not match'} total {vals['total']}")

    vat = fields.get("vat_id")
    iban_fv = fields.get("iban")
    for finding in (
        check_tax_rate(vals.get("net_total"), vals.get("tax_total"),
                       country_of(vat.value if vat else None, iban_fv.value if iban_fv else None)),
        check_vat_id(vat.value if vat else None),
        check_currency(fields["currency"].value if fields.get("currency") else None),
    ):
        if finding:
            out.append(finding)

    iban = fields.get("iban")
    if iban is not None and iban.value:
        ok = iban_is_valid(iban.value)
        add("iban_checksum", ok, f"IBAN {iban.value} {'passes' if ok else 'fails'} the mod-97 check")

    for name in ("date", "due_date"):
        fv = fields.get(name)
        if fv is None or not fv.value:
            continue
        try:
            d = date.fromisoformat(fv.value)
        except ValueError:
            add(f"{name}_valid", False, f"{name} {fv.value!r} is not an ISO date")
            continue
        if name == "date":
            ok = d <= today
            add("date_not_in_future", ok, f"invoice date {d} {'is not' if ok else 'IS'} after today ({today})")
    d1, d2 = fields.get("date"), fields.get("due_date")
    if d1 is not None and d2 is not None and d1.value and d2.value:
        try:
            ok = date.fromisoformat(d2.value) >= date.fromisoformat(d1.value)
            add("due_date_after_issue", ok, f"due date {d2.value} {'on/after' if ok else 'BEFORE'} invoice date {d1.value}")
        except ValueError:
            pass
    return out


# --------------------------------------------------------------------------- main entry


def extract_fields(
    ocr_text_by_page: Sequence[str | None],
    words_by_page: Sequence[Sequence[OcrWord]] | None = None,
    einvoice: dict | None = None,
    page_confidences: Sequence[float | None] | None = None,
    *,
    today: date | None = None,
    layout_text_by_page: Sequence[str | None] | Callable[[], Sequence[str | None]] | None = None,
) -> FieldExtraction:
    """Header fields of one document.

    ``ocr_text_by_page`` - text of each page (OCR or born-digital layer), page 1 first.
    ``words_by_page`` - the OCR words of each page (for per-value confidence), optional.
    ``einvoice`` - the result of :func:`idp_assets.logic.einvoice.extract_einvoice`;
    its values win (source ``"einvoice_xml"``), rules fill what the XML lacks.
    ``page_confidences`` - OCR confidence of each page (``None`` = unknown), optional.
    ``layout_text_by_page`` - the same pages with words re-ordered into visual lines
    (label and value side by side, e.g. from pdfplumber's word positions); used only for
    fields the primary text does not yield (source ``rules:layout_<rule>``, its support
    weighed down by ``LAYOUT_FALLBACK_WEIGHT``).  May be a callable, called only when one
    of ``LAYOUT_FALLBACK_FIELDS`` is missing (the layout pass costs a PDF re-read).

    Returns ``FieldExtraction(fields, validation)``: fields for supplier_name,
    invoice_number, date (ISO), total (plain decimal), currency (ISO 4217) and, when
    found, vat_id, iban, due_date, net_total, tax_total (and buyer_name from XML).
    """
    today = today or date.today()
    pages = [p or "" for p in ocr_text_by_page]
    lines = _lines(pages)
    conf = _Conf(words_by_page, page_confidences)
    fields: dict[str, FieldValue] = {}

    def put(name: str, cands: list[Candidate], key=lambda v: v, value_fn=None) -> None:
        got = _choose(cands, conf, key)
        if got:
            cand, c, _n = got
            fields[name] = _fv(cand, c, value_fn(cand) if value_fn else None)

    put("invoice_number", _invoice_number_candidates(lines), key=_tok)
    put("date", _date_candidates(lines, today))
    totals = _amount_candidates(lines, _TOTAL_LABELS, negative=_NOT_TOTAL, which="first", kind="total")
    if not totals:
        # receipts whose TOTAL line is unreadable: the paid cash (often exact) or a subtotal, weakly
        for c in _amount_candidates(lines, _FALLBACK_TOTAL_LABELS, negative=None, which="first", kind="fallback"):
            c.rule = "fallback_" + c.rule
            totals.append(c)
    put("total", totals)
    put("net_total", _amount_candidates(lines, _NET_LABELS, negative=re.compile(r"(?i)incl|inkl|brutto|TTC"),
                                        which="first", kind="net"))
    put("tax_total", _tax_candidates(lines))
    put("supplier_name", _supplier_candidates(lines), key=_name_key)
    put("iban", _iban_candidates(lines))
    put("vat_id", _vat_candidates(lines))
    put("due_date", _due_date_candidates(lines, today))

    if callable(layout_text_by_page) and any(n not in fields for n in LAYOUT_FALLBACK_FIELDS):
        layout_text_by_page = layout_text_by_page()  # computed only when a field is missing
    if layout_text_by_page and not callable(layout_text_by_page):
        # born-digital text layers can list a label and its value far apart (text-stream
        # order); the visual line order puts them side by side again
        llines = _lines([p or "" for p in layout_text_by_page])
        fallbacks = {
            "invoice_number": (lambda: _invoice_number_candidates(llines), _tok),
            "date": (lambda: _date_candidates(llines, today), lambda v: v),
            "due_date": (lambda: _due_date_candidates(llines, today), lambda v: v),
            "iban": (lambda: _iban_candidates(llines), lambda v: v),
            "vat_id": (lambda: _vat_candidates(llines), lambda v: v),
        }
        for name, (make, key) in fallbacks.items():
            if name in fields:
                continue
            cands = make()
            for c in cands:
                c.rule = "layout_" + c.rule
                c.strength *= LAYOUT_FALLBACK_WEIGHT
            put(name, cands, key=key)

    # currency: codes/symbols over the whole text, plus the currency attached to the total
    text = "\n".join(pages)
    counts = currency_counts(text)
    if counts:
        if "USD" in counts and any(k in counts for k in ("SGD", "HKD", "AUD", "CAD", "NZD")):
            del counts["USD"]
        ranked = counts.most_common()
        best, n = ranked[0]
        runner = ranked[1][1] if len(ranked) > 1 else 0
        share = n / (n + runner)
        support = 1.0 - 0.6 ** n
        raw = best
        # page/word confidence of the first line that shows it
        page = 1
        for pno, _li, ln in lines:
            if best in currency_counts(ln):
                page, raw = pno, ln
                break
        ocr = conf._page(page)
        c = support * share * (0.3 + 0.7 * ocr)
        fields["currency"] = FieldValue(value=best, confidence=round(max(0.01, min(0.99, c)), 4),
                                        source="rules:currency_marker", page=page, raw=raw[:80])

    cross: list[dict] = []
    if einvoice and not einvoice.get("error"):
        xml_fields = _einvoice_fields(einvoice)
        for name, fv in xml_fields.items():
            rule_fv = fields.get(name)
            c = fv.confidence
            same = None
            if rule_fv is not None and rule_fv.value is not None:
                same = (
                    _tok(rule_fv.value) == _tok(fv.value)
                    if name not in ("total", "net_total", "tax_total")
                    else parse_amount(rule_fv.value) == parse_amount(fv.value)
                )
            printed = bool(same) or (_printed_in(name, fv.value, text) if text.strip() else None)
            if same:
                c = min(0.995, c + 0.02)
            elif printed is False:
                c -= 0.07 if rule_fv is not None and rule_fv.value is not None else (0.1 if name == "invoice_number" else 0.0)
            if printed is not None and fv.value is not None:
                cross.append(check_einvoice_vs_print(name, fv.value, rule_fv.value if rule_fv else None, printed))
            fields[name] = fv.model_copy(update={"confidence": round(max(0.01, min(1.0, c)), 4)})

    validation = validate_fields(fields, einvoice=einvoice, text=text, today=today) + cross
    return FieldExtraction(fields, validation)
