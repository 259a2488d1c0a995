"""Header fields of invoices and receipts: e-invoice XML first, then rules over the text.

Entry point: :func:`extract_fields`.  It returns the fields as
:class:`~idp_assets.models.FieldValue` objects plus a list of validation findings
``{"rule", "ok", "message"}``.

Rules (German, English, French, Dutch, Italian, Spanish):

* label-driven regexes ("Rechnungsnummer", "Invoice No.", "N° de facture", ...), with
  the value on the same line, on the next line, or under a column header;
* receipt totals near TOTAL / ROUNDED / ROUNDING lines (OCR slips such as ``33, 90``
  tolerated);
* supplier from an explicit seller label, the sender line above the address window
  (``Beispiel GmbH · Hauptstraße 1 · 12345 Musterort``), lines carrying a legal form
  (GmbH, Sdn Bhd, Ltd, SARL, B.V., ...) or, weakest, the first prominent lines;
* currency from codes, symbols and words.

Confidence is fitted, not set: the rules' own score of the winning value (noisy-or over
independent label hits, the runner-up's support, OCR confidence of the value's words) is one
feature among others (value on the label's line, text layer / OCR / XML, competing values, the
validation findings about the field: check digits, net + tax = gross, dates) of a logistic
regression per field group, fitted on the development corpus with source families as folds
(`idp bench fields-calibrate`, parameters in ``logic/data/field_confidence.json``).  Fields below
the model's review threshold, or without a fitted model, are marked ``needs_review``.

Labels are data: ``logic/data/invoice_labels.json`` (EN 16931 term names and common labels in
German, English, French, Dutch, Italian and Spanish); payment terms ('zahlbar innerhalb von 14
Tagen') give the due date from the issue date.

The rules live in `idp_assets.logic.field_rules` (one module per kind of field); this module
puts them together and is the one to import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import NamedTuple

from idp_assets.logic.field_rules.amounts import (
    _FALLBACK_TOTAL_LABELS,
    _NET_LABELS,
    _NOT_TOTAL,
    _TOTAL_LABELS,
    _amount_candidates,
    _tax_candidates,
)
from idp_assets.logic.field_rules.arithmetic import rounding_adjusted, solve_totals
from idp_assets.logic.field_rules.candidates import Candidate, _lines
from idp_assets.logic.field_rules.checks import _einvoice_fields, _printed_in, validate_fields
from idp_assets.logic.field_rules.confidence import calibrated, checks_for
from idp_assets.logic.field_rules.dates import _date_candidates, _due_date_candidates, _payment_terms_candidates
from idp_assets.logic.field_rules.ids import _iban_candidates, _invoice_number_candidates, _vat_candidates, iban_is_valid
from idp_assets.logic.field_rules.labels import label_patterns
from idp_assets.logic.field_rules.parties import _name_key, _supplier_candidates
from idp_assets.logic.field_rules.references import (
    bic_candidates,
    buyer_candidates,
    document_type_candidates,
    reference_candidates,
)
from idp_assets.logic.field_rules.scoring import TEXT_LAYER_CONFIDENCE, _choose, _Conf, _fv, _tok  # noqa: F401
from idp_assets.logic.numbers import currency_counts, parse_amount
from idp_assets.logic.validation import check_einvoice_vs_print
from idp_assets.models import FieldValue, OcrWord

__all__ = [
    "CORE_FIELDS",
    "FieldExtraction",
    "extract_fields",
    "iban_is_valid",
    "validate_fields",
]

CORE_FIELDS = ("supplier_name", "invoice_number", "date", "total", "currency")

_AMOUNT_DUE_LABELS = label_patterns("amount_due")  # BT-115
LAYOUT_FALLBACK_WEIGHT = 0.85  # support of a value read only from re-ordered layout lines
LAYOUT_FALLBACK_FIELDS = ("invoice_number", "date", "due_date", "iban", "vat_id", "supplier_name")


class FieldExtraction(NamedTuple):
    fields: dict[str, FieldValue]
    validation: list[dict]
    # per field: what the fitted confidence model read (field_rules.confidence.feature_vector)
    evidence: dict[str, dict] | None = None


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
    evidence: dict[str, dict] = {}

    def put(name: str, cands: list[Candidate], key=lambda v: v, value_fn=None) -> None:
        got = _choose(cands, conf, key)
        if got:
            cand, c, _n, ev = got
            fields[name] = _fv(cand, c, value_fn(cand) if value_fn else None)
            evidence[name] = {**ev, "rule": cand.rule, "score": c}

    put("invoice_number", _invoice_number_candidates(lines), key=_tok)
    put("date", _date_candidates(lines, today))
    totals = _amount_candidates(lines, _TOTAL_LABELS, negative=_NOT_TOTAL, which="first", kind="total")
    if not totals:
        # receipts whose TOTAL line is unreadable: the paid cash (often exact) or a subtotal, weakly
        for c in _amount_candidates(lines, _FALLBACK_TOTAL_LABELS, negative=None, which="first", kind="fallback"):
            c.rule = "fallback_" + c.rule
            totals.append(c)
    totals = rounding_adjusted(lines, totals)
    amounts = solve_totals(lines, {"total": totals, "net_total": _net_candidates(lines),
                                   "tax_total": _tax_candidates(lines)})
    for name in ("total", "net_total", "tax_total"):
        put(name, amounts[name])
    buyer_names, buyer_vats, buyer_lines = buyer_candidates(pages)
    # seller and buyer are never confused: no seller name from a buyer / delivery block line, and
    # never the name that block gives the buyer (no name at all is better: needs_review)
    buyer_keys = {_name_key(c.value) for c in buyer_names}
    put("supplier_name", [c for c in _supplier_candidates(lines)
                          if (c.page, c.line) not in buyer_lines and _name_key(c.value) not in buyer_keys],
        key=_name_key)
    put("iban", _iban_candidates(lines))
    # the seller's VAT ID never comes from the buyer's or delivery address block
    put("vat_id", [c for c in _vat_candidates(lines) if (c.page, c.line) not in buyer_lines])
    put("due_date", _due_date_candidates(lines, today)
        + _payment_terms_candidates(lines, fields["date"].value if "date" in fields else None))

    if callable(layout_text_by_page) and (any(n not in fields for n in LAYOUT_FALLBACK_FIELDS)
                                          or not _amounts_add_up(fields)):
        layout_text_by_page = layout_text_by_page()  # only when a field is missing or the totals disagree
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
        fallbacks["supplier_name"] = (
            lambda: [c for c in _supplier_candidates(llines) if _name_key(c.value) not in buyer_keys], _name_key)
        for name, (make, key) in fallbacks.items():
            if name in fields:
                continue
            put(name, _as_layout(make()), key=key)
        if not _amounts_add_up(fields):
            before_evidence = dict(evidence)
            # the totals block read in visual lines ('Gesamtbetrag' ... '529,87' from separate OCR
            # columns), solved together with what the page text gave
            layout_amounts = {
                "total": _as_layout(_amount_candidates(llines, _TOTAL_LABELS, negative=_NOT_TOTAL, which="first",
                                                       kind="total")),
                "net_total": _as_layout(_net_candidates(llines)),
                "tax_total": _as_layout(_tax_candidates(llines)),
            }
            solved = solve_totals(llines, {k: amounts[k] + v for k, v in layout_amounts.items()})
            before = dict(fields)
            for name in ("total", "net_total", "tax_total"):
                put(name, solved[name])
            if not _amounts_add_up(fields):  # no better: keep what the page text gave, fill only gaps
                for name in ("total", "net_total", "tax_total"):
                    if name == "total" and _labelled_beats_fallback(before.get(name), fields.get(name)):
                        continue  # a total next to its label in the visual lines beats a paid/subtotal guess
                    if name in before:
                        fields[name] = before[name]
                        evidence[name] = before_evidence[name]

    # BT-3, BT-86, BT-13, BT-10, BT-44/48, BT-115: no fitted confidence model yet, so always needs_review
    put("document_type", document_type_candidates(lines))
    put("bic", bic_candidates(lines))
    put("order_reference", reference_candidates(lines, "order_reference"), key=_tok)
    put("buyer_reference", reference_candidates(lines, "buyer_reference"), key=_tok)
    put("buyer_name", buyer_names, key=_name_key)
    put("buyer_vat_id", buyer_vats)
    put("amount_due", _amount_candidates(lines, _AMOUNT_DUE_LABELS, negative=None, which="first", kind="due"))

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
        evidence["currency"] = {"rule": "currency_marker", "score": c, "support": support, "second": 1.0 - share,
                                "competitors": len(ranked) - 1, "ocr": ocr, "ocr_source": conf.is_ocr(page),
                                "validated": True}

    cross: list[dict] = []
    if einvoice and not einvoice.get("error"):
        xml_fields = _einvoice_fields(einvoice)
        for name, fv in xml_fields.items():
            rule_fv = fields.get(name)
            same = None
            if rule_fv is not None and rule_fv.value is not None:
                same = (
                    _tok(rule_fv.value) == _tok(fv.value)
                    if name not in ("total", "net_total", "tax_total")
                    else parse_amount(rule_fv.value) == parse_amount(fv.value)
                )
            printed = bool(same) or (_printed_in(name, fv.value, text) if text.strip() else None)
            if printed is not None and fv.value is not None:
                cross.append(check_einvoice_vs_print(name, fv.value, rule_fv.value if rule_fv else None, printed))
            fields[name] = fv
            evidence[name] = {"xml": True, "rule": "einvoice_xml", "score": 0.5, "printed": printed,
                              "agrees": bool(same), "validated": fv.confidence >= 0.5}

    validation = validate_fields(fields, einvoice=einvoice, text=text, today=today) + cross
    return FieldExtraction(apply_confidence_model(fields, evidence, validation), validation, evidence)


def _net_candidates(lines) -> list[Candidate]:
    return _amount_candidates(lines, _NET_LABELS, negative=re.compile(r"(?i)incl|inkl|brutto|TTC"),
                              which="first", kind="net")


def _as_layout(cands: list[Candidate]) -> list[Candidate]:
    """Candidates read from re-ordered layout lines: marked as such and weighed down."""
    for c in cands:
        c.rule = "layout_" + c.rule
        c.strength *= LAYOUT_FALLBACK_WEIGHT
    return cands


def _labelled_beats_fallback(before: FieldValue | None, after: FieldValue | None) -> bool:
    """Whether the layout pass found a labelled total where the page text had only a fallback
    (the cash paid, a subtotal): the label's own value is the better reading."""
    return (before is not None and after is not None and before.source.startswith("rules:fallback")
            and after.source.startswith("rules:layout_") and "fallback" not in after.source)


def _amounts_add_up(fields: dict[str, FieldValue]) -> bool:
    got = [parse_amount(fields[n].value) if n in fields else None for n in ("net_total", "tax_total", "total")]
    return None not in got and got[0] + got[1] == got[2]


def apply_confidence_model(fields: dict[str, FieldValue], evidence: dict[str, dict],
                           validation: list[dict]) -> dict[str, FieldValue]:
    """Each field's confidence from the fitted model (``data/field_confidence.json``) over its
    evidence and the validation findings about it; below the review threshold, or without a
    fitted model for it, the field is marked ``needs_review`` (and keeps the rules' own score)."""
    out = {}
    sums_fail = any(v.get("rule") == "totals_consistent" and not v.get("ok", True) for v in validation)
    for name, fv in fields.items():
        ev = evidence.setdefault(name, {"rule": fv.source, "score": fv.confidence})
        ev["check_pass"], ev["check_fail"] = checks_for(name, validation)
        ev["parts_disagree"] = sums_fail and name in ("net_total", "tax_total")
        if not ev.get("validated", True):
            ev["check_fail"] = True
        c, review = calibrated(name, ev)
        # a failed check always goes to a person, even where the development data held no such failure
        # for the model to learn a weight from
        review = review or bool(ev["check_fail"])
        out[name] = fv.model_copy(update={"confidence": fv.confidence if c is None else c, "needs_review": review})
    return out
