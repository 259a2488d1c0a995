"""The flat e-invoice dict the field rules, tables and validation read (``invoice_number``,
``gross_total``, ``line_items`` ...), derived from the EN 16931 model."""

from __future__ import annotations

import re

from .model import Invoice
from .xmlsafe import collapse

__all__ = ["LINE_ITEM_HEADER", "clean_party_name", "to_legacy"]

LINE_ITEM_HEADER = ["line_id", "name", "quantity", "unit", "net_unit_price", "line_total"]

_ID_LINE = re.compile(
    r"(?i)^\s*(?:GLN|GTIN|ILN|Lief(?:eranten)?[-. ]?Nr|Kunden[-. ]?Nr|Supplier\s*(?:No|ID)|USt|VAT)\b[\s.:#-]*[\w./ -]*$"
)
_IBAN = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9]{8,30}$")


def clean_party_name(raw: str | None) -> str | None:
    """Seller/buyer Name with identifier lines (``GLN 4333741000005``, ``Lief-Nr: 1``) dropped."""
    if raw is None:
        return None
    lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
    kept = [ln for ln in lines if not (_ID_LINE.match(ln) and re.search(r"\d", ln))]
    return collapse(" ".join(kept or lines))


def to_legacy(inv: Invoice) -> dict:
    """The flat dict (amounts as canonical decimal strings, dates ISO); ``line_items`` hold the
    line values as written in the source where known.  ``en16931`` carries the whole model."""
    iban = bic = None
    for pm in inv.payment_means:
        if pm.account_id and _IBAN.match(pm.account_id) and not iban:
            iban, bic = pm.account_id, pm.bic
    if iban is None and inv.payment_means:
        bic = next((pm.bic for pm in inv.payment_means if pm.bic), None)
    lines = []
    for li in inv.lines:
        if li.as_written is not None:
            lines.append(dict(li.as_written))
        else:
            lines.append({"line_id": li.id, "name": collapse(li.name), "quantity": li.quantity, "unit": li.unit,
                          "net_unit_price": li.net_price, "line_total": li.net_amount})
    t = inv.totals
    return {
        "format": inv.syntax,
        "profile": collapse(inv.specification_id),
        "type_code": inv.type_code,
        "invoice_number": collapse(inv.number),
        "issue_date": inv.issue_date,
        "due_date": inv.due_date,
        "supplier_name": clean_party_name(inv.seller.name),
        "supplier_name_raw": collapse(inv.seller.name),
        "seller_vat_id": inv.seller.vat_id,
        "seller_tax_number": inv.seller.tax_number,
        "iban": iban,
        "bic": bic,
        "buyer_name": clean_party_name(inv.buyer.name),
        "buyer_vat_id": inv.buyer.vat_id,
        "currency": inv.currency,
        "line_total": t.line_total,
        "net_total": t.tax_exclusive,
        "tax_total": t.tax_total,
        "gross_total": t.tax_inclusive,
        "due_payable": t.payable,
        "line_items": lines,
        "en16931": inv.model_dump(mode="json"),
    }
