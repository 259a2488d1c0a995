"""Export records -> EN 16931 invoice -> CII / UBL, and what the official rules say about them.

* :func:`invoice_of_record` - the e-invoice model the record carries (``record["invoice"]``,
  read from XML), or one built from the fields and line items read from a print.  A print
  gives only what was read: unknown parties, addresses, prices stay out (never empty or ``0``).
* :func:`export_invoice` - ``(prepared invoice, derivations, gaps)`` for the writers.
* :func:`export_report` - rule and schema check of an export XML, each fatal failure explained
  by a gap of the data (or by the same failure in the source) or listed as ``unexplained``.
"""

from __future__ import annotations

from decimal import Decimal

from .model import Address, Invoice, InvoiceLine, Party, PaymentMeans, TaxSubtotal, Totals, amount, decimal, to_decimal
from .prepare import explains, for_export, gaps

__all__ = ["LINE_KEYS", "export_invoice", "export_report", "exports_validation", "invoice_of_record",
           "line_items_of_record"]

LINE_KEYS = ("line_id", "name", "quantity", "unit", "net_unit_price", "line_total")
PROFILE_BASICWL = "urn:factur-x.eu:1p0:basicwl"
PROFILE_EN16931 = "urn:cen.eu:en16931:2017"
# SEPA countries (IBAN prefixes): credit transfer code 58, else 30
_SEPA = frozenset("AD AT BE BG CH CY CZ DE DK EE ES FI FR GB GI GR HR HU IE IS IT LI LT LU LV MC MT NL NO PL PT RO "
                  "SE SI SK SM VA".split())


def _value(record: dict, name: str) -> str | None:
    f = (record.get("fields") or {}).get(name)
    if isinstance(f, dict):
        f = f.get("value")
    return str(f).strip() if f not in (None, "") else None


def _amount(s: str | None) -> str | None:
    from ..numbers import parse_amount

    if s is None:
        return None
    v = to_decimal(s)
    if v is None:
        v = parse_amount(s)
    return amount(v) if v is not None else None


def _num(s) -> str | None:
    """A quantity or price read from a print: plain decimal or a printed number."""
    from ..numbers import parse_amount

    v = to_decimal(s)
    if v is None and s is not None:
        v = parse_amount(str(s))
    return decimal(v) if v is not None else None


def line_items_of_record(record: dict) -> list[dict]:
    """Line items ``{line_id, name, quantity, unit, net_unit_price, line_total}`` of the
    record: the e-invoice table when there is one, else the mapped line items of the
    first table that has some."""
    tables = record.get("tables") or []
    for t in tables:
        if t.get("source") == "einvoice_xml" and t.get("rows"):
            head = t["rows"][0]
            return [{k: (r[head.index(k)] or None) if k in head else None for k in LINE_KEYS} for r in t["rows"][1:]]
    for t in tables:
        items = t.get("line_items") or []
        if not items:
            continue
        out = []
        for n, li in enumerate(items, start=1):
            def v(role):
                x = li.get(role)
                return x.get("value") if isinstance(x, dict) else None
            out.append({"line_id": str(n), "name": v("description"), "quantity": v("quantity"), "unit": v("unit"),
                        "net_unit_price": v("unit_price"), "line_total": v("line_total")})
        return out
    return []


def _single_rate(net: str | None, tax: str | None) -> Decimal | None:
    """The VAT rate when ``tax / net`` is one known rate (within rounding), else ``None``."""
    from ..validation import TAX_RATES

    n, t = to_decimal(net), to_decimal(tax)
    if n is None or t is None or n == 0:
        return None
    rate = t / n * 100
    for r in sorted({r for rs in TAX_RATES.values() for r in rs}, key=lambda r: abs(r - rate)):
        if (n * r / 100).quantize(Decimal("0.01")) == t.quantize(Decimal("0.01")):
            return r
        break
    return None


def invoice_of_record(record: dict) -> Invoice:
    """The record's e-invoice (``record["invoice"]``), else the invoice its fields describe."""
    if record.get("invoice"):
        return Invoice.model_validate(record["invoice"])
    net, tax, gross = (_amount(_value(record, k)) for k in ("net_total", "tax_total", "total"))
    if net is None and gross is not None and tax is not None:
        net = amount(to_decimal(gross) - to_decimal(tax))
    if tax is None and gross is not None and net is not None:
        tax = amount(to_decimal(gross) - to_decimal(net))
    rate = _single_rate(net, tax)
    vat = _value(record, "vat_id")
    vat = "".join(vat.split()).upper() if vat else None
    country = vat[:2] if vat and vat[:2].isalpha() else None
    seller = Party(name=_value(record, "supplier_name"), vat_id=vat,
                   address=Address(country="GR" if country == "EL" else country) if country else None)
    buyer = Party(name=_value(record, "buyer_name"))
    lines = []
    for n, li in enumerate(line_items_of_record(record), start=1):
        if not any(li.get(k) for k in ("name", "quantity", "net_unit_price", "line_total")):
            continue
        lines.append(InvoiceLine(
            id=li.get("line_id") or str(n), name=" ".join(li["name"].split()) if li.get("name") else None,
            quantity=_num(li.get("quantity")), unit=li.get("unit") or None, net_price=_num(li.get("net_unit_price")),
            net_amount=_amount(li.get("line_total")),
            tax_category="S" if rate else None, tax_rate=decimal(rate) if rate else None))
    iban = _value(record, "iban")
    iban = "".join(iban.split()).upper() if iban else None
    line_sum = None
    if lines and all(li.net_amount is not None for li in lines):
        line_sum = amount(sum((to_decimal(li.net_amount) for li in lines), Decimal("0")))
    return Invoice(
        specification_id=PROFILE_EN16931 if lines else PROFILE_BASICWL,
        number=_value(record, "invoice_number"),
        issue_date=_value(record, "date"),
        type_code="380",
        currency=_value(record, "currency"),
        due_date=_value(record, "due_date"),
        seller=seller,
        buyer=buyer,
        payment_means=[PaymentMeans(code="58" if iban[:2] in _SEPA else "30", account_id=iban)] if iban else [],
        tax_breakdown=[TaxSubtotal(category="S", rate=decimal(rate), basis=net, amount=tax)] if rate else [],
        totals=Totals(line_total=line_sum, tax_exclusive=net, tax_total=tax, tax_inclusive=gross, payable=gross),
        lines=lines,
    )


def export_invoice(record: dict) -> tuple[Invoice, list[dict], list[dict]]:
    """``(invoice ready to write, derivations, gaps)`` of an export record."""
    inv, derived = for_export(invoice_of_record(record))
    if not record.get("invoice"):
        if inv.seller.address is not None:
            derived.append({"term": "BT-40", "note": "seller country code from the VAT id prefix"})
        if inv.totals.payable is not None:
            derived.append({"term": "BT-115", "note": "amount due = the total read (no prepayment read)"})
        if inv.tax_breakdown:
            derived.append({"term": "BG-23", "note": f"one standard-rated VAT breakdown: tax / net = "
                                                    f"{inv.tax_breakdown[0].rate} %"})
        elif _value(record, "tax_total") or _value(record, "net_total"):
            derived.append({"term": "BG-23", "note": "no VAT breakdown: tax / net is not one VAT rate (mixed or "
                                                    "unreadable rates)"})
    return inv, derived, gaps(inv)


def export_report(xml: bytes, gap_list: list[dict], source_failed: set[str] | frozenset = frozenset()) -> dict:
    """Rules and schema of one export: ``passed`` (no fatal rule failed), ``failed`` assertions,
    ``explained`` (rule id -> reason), ``unexplained`` ids, ``xsd_valid`` / ``xsd_errors``."""
    from .schematron import check_rules, check_xsd

    report = check_rules(xml)
    ok, errors, schema = check_xsd(xml)
    explained, unexplained = {}, []
    for fid in sorted({f["id"] for f in report.fatal}):
        g = explains(gap_list, fid)
        if g is not None:
            explained[fid] = g["reason"]
        elif fid in source_failed:
            explained[fid] = "the source XML fails this rule too"
        else:
            unexplained.append(fid)
    return {
        "checked": report.checked,
        "reason": report.reason,
        "passed": report.passed,
        "failed": [{k: f[k] for k in ("id", "flag", "message")} for f in report.failed],
        "explained": explained,
        "unexplained": unexplained,
        "xsd_schema": schema,
        "xsd_valid": ok,
        "xsd_errors": errors[:10],
    }


def exports_validation(record: dict, files: dict[str, bytes]) -> dict | None:
    """The EN 16931 verdict on a record's ``cii.xml`` / ``ubl.xml`` exports: per syntax an
    :func:`export_report`, plus the derivations made and the gaps of the data.  ``None`` when
    the record has no invoice export."""
    if "cii.xml" not in files and "ubl.xml" not in files:
        return None
    _inv, derived, gap_list = export_invoice(record)
    source_failed = {str(v["rule"]).split(":", 1)[1] for v in record.get("validation") or []
                     if str(v.get("rule", "")).startswith("en16931:") and v.get("flag") == "fatal"}
    out: dict = {"derived": derived, "gaps": gap_list}
    for suffix in ("cii.xml", "ubl.xml"):
        if suffix in files:
            out[suffix.split(".")[0]] = export_report(files[suffix], gap_list, source_failed)
    out["passed"] = all(out[k]["passed"] for k in ("cii", "ubl") if k in out)
    out["explained"] = all(not out[k]["unexplained"] for k in ("cii", "ubl") if k in out)
    return out
