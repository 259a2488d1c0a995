"""Checks: fields from the e-invoice XML, whether its values are printed on the page, validation findings."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal

from idp_assets.logic.field_rules.amounts import _fix_ocr_amounts
from idp_assets.logic.field_rules.candidates import _norm_line
from idp_assets.logic.field_rules.ids import iban_is_valid
from idp_assets.logic.numbers import currency_counts, find_amounts, find_dates, parse_amount
from idp_assets.logic.validation import (
    check_credit_note,
    check_currency,
    check_iban,
    check_tax_rate,
    check_vat_id,
    country_of,
)
from idp_assets.models import FieldValue


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
        # placeholder until the fitted model (field_rules.confidence) sets it: 1 = the value parses/validates
        out[name] = FieldValue(value=str(v), confidence=1.0 if ok else 0.0, source="einvoice_xml", page=None, raw=str(v))
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
    for finding in (
        check_iban(iban.value if iban is not None else None),
        check_credit_note((einvoice or {}).get("type_code") if einvoice and not einvoice.get("error") else None,
                          vals.get("total")),
    ):
        if finding:
            out.append(finding)

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
