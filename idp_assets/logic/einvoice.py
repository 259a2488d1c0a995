"""ZUGFeRD / Factur-X / XRechnung (CII) e-invoices embedded in PDF/A-3 files.

* :func:`find_embedded_xml` - the invoice XML attached to a PDF (``factur-x.xml``,
  ``zugferd-invoice.xml``, ``ZUGFeRD-invoice.xml``, ``xrechnung.xml`` or any other XML
  attachment whose root is a CII invoice), read with pypdf.
* :func:`parse_cii` - ZUGFeRD 1.0 (``CrossIndustryDocument``) and ZUGFeRD 2.x /
  Factur-X / XRechnung-CII (``CrossIndustryInvoice``) into a plain dict.
* :func:`extract_einvoice` - both steps; never raises for bad input.
* :func:`line_items_rows` - the line items as table rows (header first).

XML is parsed with a hardened lxml parser (no DTD loading, no entity resolution, no
network, no huge trees) and documents that declare a DOCTYPE are rejected outright:
CII invoices never need one, and it is the vehicle of XXE and billion-laughs attacks.

factur-x's ``get_xml_from_pdf`` is deliberately not used: it parses attachments with
lxml's default (entity-expanding) parser and silently skips malformed XML, which would
turn a broken e-invoice into "no e-invoice".
"""

from __future__ import annotations

import io
import logging
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

__all__ = [
    "EInvoiceError",
    "KNOWN_XML_NAMES",
    "LINE_ITEM_HEADER",
    "extract_einvoice",
    "find_embedded_xml",
    "line_items_rows",
    "parse_cii",
    "safe_parser",
]

log = logging.getLogger(__name__)

KNOWN_XML_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml", "order-x.xml")
LINE_ITEM_HEADER = ["line_id", "name", "quantity", "unit", "net_unit_price", "line_total"]
MAX_XML_BYTES = 20 * 1024 * 1024

NS_ZF1 = "urn:ferd:CrossIndustryDocument:invoice:1p0"
NS_CII = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"


class EInvoiceError(ValueError):
    """The embedded XML is not a readable CII invoice (malformed, unsafe or wrong root)."""


def safe_parser() -> etree.XMLParser:
    """An lxml parser that cannot be made to read files, hit the network or blow up."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


# --------------------------------------------------------------------------- PDF attachments


def _attachments(pdf_bytes: bytes) -> list[tuple[str, bytes]]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf_bytes), strict=False)
    out: list[tuple[str, bytes]] = []
    try:
        items = list(reader.attachment_list)
    except Exception:  # older pypdf or odd name trees: fall back to the dict API
        items = []
        for name, contents in (reader.attachments or {}).items():
            for c in contents:
                out.append((name, c))
        return out
    for a in items:
        try:
            content = a.content
        except Exception as e:  # broken stream
            log.warning("unreadable PDF attachment %r: %s", getattr(a, "name", "?"), e)
            continue
        out.append((a.name or "", content or b""))
    return out


def _looks_like_cii(xml: bytes) -> bool:
    head = xml[:4096]
    return b"CrossIndustryInvoice" in head or b"CrossIndustryDocument" in head


def find_embedded_xml(pdf_bytes: bytes) -> tuple[str, bytes] | None:
    """``(filename, xml_bytes)`` of the e-invoice XML attached to the PDF, or ``None``.

    Known names win (case-insensitive); otherwise any ``*.xml`` attachment that looks
    like CII.  Unreadable PDFs give ``None`` (they are simply not e-invoices here).
    """
    try:
        atts = _attachments(pdf_bytes)
    except Exception as e:
        log.info("no attachments readable: %s", e)
        return None
    if not atts:
        return None
    for want in KNOWN_XML_NAMES:
        for name, content in atts:
            if name.lower() == want and content:
                return name, content
    for name, content in atts:
        if name.lower().endswith(".xml") and content and _looks_like_cii(content):
            return name, content
    return None


# --------------------------------------------------------------------------- XML helpers


def _ln(el: Any) -> str:
    try:
        return etree.QName(el).localname
    except (ValueError, TypeError):
        return ""


def _children(el, name: str):
    return [c for c in el if isinstance(c.tag, str) and _ln(c) == name]


def _path(el, *steps: str | tuple[str, ...]):
    """First element reached by following local names (a tuple = alternatives)."""
    cur = [el]
    for step in steps:
        alts = step if isinstance(step, tuple) else (step,)
        nxt = []
        for c in cur:
            for a in alts:
                nxt.extend(_children(c, a))
        if not nxt:
            return None
        cur = nxt
    return cur[0]


def _all(el, *steps: str | tuple[str, ...]):
    cur = [el]
    for step in steps:
        alts = step if isinstance(step, tuple) else (step,)
        cur = [ch for c in cur for a in alts for ch in _children(c, a)]
    return cur


def _desc(el, name: str):
    for d in el.iter():
        if isinstance(d.tag, str) and _ln(d) == name:
            return d
    return None


def _text(el) -> str | None:
    if el is None:
        return None
    t = "".join(el.itertext()).strip()
    return t or None


def _collapse(s: str | None) -> str | None:
    if s is None:
        return None
    s = " ".join(s.split())
    return s or None


_ID_LINE = re.compile(
    r"(?i)^\s*(?:GLN|GTIN|ILN|Lief(?:eranten)?[-. ]?Nr|Kunden[-. ]?Nr|Supplier\s*(?:No|ID)|USt|VAT)\b[\s.:#-]*[\w./ -]*$"
)


def _clean_party_name(raw: str | None) -> str | None:
    """Seller/buyer Name with identifier lines (``GLN 4333741000005``, ``Lief-Nr: 1``) dropped."""
    if raw is None:
        return None
    lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
    kept = [ln for ln in lines if not (_ID_LINE.match(ln) and re.search(r"\d", ln))]
    return _collapse(" ".join(kept or lines))


def _date102(el) -> str | None:
    """ISO date from a udt:DateTimeString (format 102 = YYYYMMDD; also tolerates ISO)."""
    if el is None:
        return None
    dts = _desc(el, "DateTimeString") if _ln(el) != "DateTimeString" else el
    if dts is None:
        dts = _desc(el, "DateString")
    raw = _text(dts) if dts is not None else _text(el)
    if not raw:
        return None
    fmt = dts.get("format") if dts is not None else None
    digits = re.sub(r"\D", "", raw)
    try:
        if fmt in (None, "102") and len(digits) >= 8:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])).isoformat()
        if fmt == "610" and len(digits) == 6:
            return date(int(digits[:4]), int(digits[4:6]), 1).isoformat()
    except ValueError:
        return None
    return None


def _amount(el, currency: str | None = None) -> str | None:
    """Text of an amount element as a plain decimal string (``None`` if absent/invalid)."""
    if el is None:
        return None
    raw = _text(el)
    if raw is None:
        return None
    try:
        Decimal(raw)
    except InvalidOperation:
        return None
    return raw


def _pick_amount(parent, name: str, currency: str | None) -> str | None:
    """``name`` child amount; with several (one per currency), the invoice currency's."""
    if parent is None:
        return None
    els = _children(parent, name)
    if not els:
        return None
    if currency and len(els) > 1:
        for e in els:
            if (e.get("currencyID") or "").upper() == currency.upper():
                return _amount(e)
    return _amount(els[0])


# --------------------------------------------------------------------------- parsing


def _parse_root(xml_bytes: bytes):
    if not isinstance(xml_bytes, (bytes, bytearray)):
        raise EInvoiceError("XML must be bytes")
    if len(xml_bytes) > MAX_XML_BYTES:
        raise EInvoiceError(f"XML too large ({len(xml_bytes)} bytes)")
    head = bytes(xml_bytes[:65536]).upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
        raise EInvoiceError("XML declares a DOCTYPE/ENTITY; refused (XXE / entity-expansion protection)")
    try:
        root = etree.fromstring(bytes(xml_bytes), parser=safe_parser())
    except etree.XMLSyntaxError as e:
        raise EInvoiceError(f"malformed XML: {e}") from e
    except Exception as e:  # anything lxml may throw on hostile input
        raise EInvoiceError(f"unreadable XML: {type(e).__name__}: {e}") from e
    if root is None:
        raise EInvoiceError("empty XML document")
    doc = root.getroottree()
    if doc.docinfo.doctype:
        raise EInvoiceError("XML declares a DOCTYPE; refused")
    return root


def parse_cii(xml_bytes: bytes) -> dict:
    """Parse a CII invoice (ZUGFeRD 1.0 or 2.x / Factur-X / XRechnung-CII).

    Returns a JSON-friendly dict; amounts are decimal strings as written in the XML,
    dates ISO ``YYYY-MM-DD``.  Raises :class:`EInvoiceError` for malformed, unsafe or
    non-CII XML (e.g. UBL).
    """
    root = _parse_root(xml_bytes)
    rname = _ln(root)
    if rname == "CrossIndustryDocument":
        fmt = "zugferd1"
        ctx = _path(root, "SpecifiedExchangedDocumentContext")
        hdr = _path(root, "HeaderExchangedDocument")
        tx = _path(root, "SpecifiedSupplyChainTradeTransaction")
    elif rname == "CrossIndustryInvoice":
        fmt = "cii"
        ctx = _path(root, "ExchangedDocumentContext")
        hdr = _path(root, "ExchangedDocument")
        tx = _path(root, "SupplyChainTradeTransaction")
    else:
        raise EInvoiceError(f"not a CII invoice (root element {rname or root.tag!r})")
    if hdr is None or tx is None:
        raise EInvoiceError("CII invoice without document header or trade transaction")

    agreement = _path(tx, ("ApplicableHeaderTradeAgreement", "ApplicableSupplyChainTradeAgreement"))
    settlement = _path(tx, ("ApplicableHeaderTradeSettlement", "ApplicableSupplyChainTradeSettlement"))
    seller = _path(agreement, "SellerTradeParty") if agreement is not None else None
    buyer = _path(agreement, "BuyerTradeParty") if agreement is not None else None

    currency = _text(_path(settlement, "InvoiceCurrencyCode")) if settlement is not None else None
    summ = None
    if settlement is not None:
        summ = _path(
            settlement,
            ("SpecifiedTradeSettlementHeaderMonetarySummation", "SpecifiedTradeSettlementMonetarySummation"),
        )

    vat_id = tax_number = None
    if seller is not None:
        for reg in _all(seller, "SpecifiedTaxRegistration", "ID"):
            scheme = (reg.get("schemeID") or "").upper()
            if scheme == "VA" and not vat_id:
                vat_id = _collapse(_text(reg))
            elif scheme == "FC" and not tax_number:
                tax_number = _collapse(_text(reg))

    iban = bic = None
    due_date = None
    if settlement is not None:
        for pm in _all(settlement, "SpecifiedTradeSettlementPaymentMeans"):
            acct = _path(pm, "PayeePartyCreditorFinancialAccount")
            if acct is not None and not iban:
                iban = _collapse(_text(_path(acct, "IBANID")))
                if iban:
                    iban = iban.replace(" ", "").upper()
            inst = _path(pm, "PayeeSpecifiedCreditorFinancialInstitution")
            if inst is not None and not bic:
                bic = _collapse(_text(_path(inst, "BICID")))
        for terms in _all(settlement, "SpecifiedTradePaymentTerms"):
            d = _path(terms, "DueDateDateTime")
            if d is not None:
                due_date = _date102(d)
                if due_date:
                    break

    seller_raw = _text(_path(seller, "Name")) if seller is not None else None
    doc_id = _collapse(_text(_path(hdr, "ID")))
    result: dict[str, Any] = {
        "format": fmt,
        "profile": _collapse(_text(_path(ctx, "GuidelineSpecifiedDocumentContextParameter", "ID")))
        if ctx is not None
        else None,
        "type_code": _text(_path(hdr, "TypeCode")),
        "invoice_number": doc_id,
        "issue_date": _date102(_path(hdr, "IssueDateTime")),
        "due_date": due_date,
        "supplier_name": _clean_party_name(seller_raw),
        "supplier_name_raw": _collapse(seller_raw),
        "seller_vat_id": vat_id.replace(" ", "") if vat_id else None,
        "seller_tax_number": tax_number,
        "iban": iban,
        "bic": bic,
        "buyer_name": _clean_party_name(_text(_path(buyer, "Name"))) if buyer is not None else None,
        "currency": currency.upper() if currency else None,
        "line_total": _pick_amount(summ, "LineTotalAmount", currency),
        "net_total": _pick_amount(summ, "TaxBasisTotalAmount", currency),
        "tax_total": _pick_amount(summ, "TaxTotalAmount", currency),
        "gross_total": _pick_amount(summ, "GrandTotalAmount", currency),
        "due_payable": _pick_amount(summ, "DuePayableAmount", currency),
        "line_items": [],
    }

    for item in _all(tx, "IncludedSupplyChainTradeLineItem"):
        qty_el = _desc(item, "BilledQuantity")
        net_price = None
        for tag in ("SpecifiedLineTradeAgreement", "SpecifiedSupplyChainTradeAgreement"):
            ag = _path(item, tag)
            if ag is not None:
                net_price = _amount(_path(ag, "NetPriceProductTradePrice", "ChargeAmount"))
                break
        line_total = None
        for tag in ("SpecifiedLineTradeSettlement", "SpecifiedSupplyChainTradeSettlement"):
            st = _path(item, tag)
            if st is not None:
                ms = _path(
                    st,
                    (
                        "SpecifiedTradeSettlementLineMonetarySummation",
                        "SpecifiedTradeSettlementMonetarySummation",
                    ),
                )
                if ms is not None:
                    line_total = _amount(_path(ms, "LineTotalAmount"))
                break
        result["line_items"].append(
            {
                "line_id": _text(_path(item, "AssociatedDocumentLineDocument", "LineID")),
                "name": _collapse(_text(_path(item, "SpecifiedTradeProduct", "Name"))),
                "quantity": _text(qty_el),
                "unit": qty_el.get("unitCode") if qty_el is not None else None,
                "net_unit_price": net_price,
                "line_total": line_total,
            }
        )
    return result


def extract_einvoice(pdf_bytes: bytes) -> dict | None:
    """The parsed e-invoice of a PDF, ``None`` when it has none.

    Never raises for bad input: when an XML is attached but cannot be parsed the result
    is ``{"error": "...", "filename": ...}`` so the caller can record a validation
    finding and fall back to reading the printed page.
    """
    found = find_embedded_xml(pdf_bytes)
    if found is None:
        return None
    name, xml = found
    try:
        out = parse_cii(xml)
    except EInvoiceError as e:
        return {"error": str(e), "filename": name}
    except Exception as e:  # defensive: a bug here must not fail the asset
        log.exception("unexpected error parsing e-invoice %s", name)
        return {"error": f"unexpected {type(e).__name__}: {e}", "filename": name}
    out["filename"] = name
    return out


def line_items_rows(einvoice: dict | None) -> list[list[str]]:
    """Line items as table rows with :data:`LINE_ITEM_HEADER` first ([] when none)."""
    if not einvoice or einvoice.get("error") or not einvoice.get("line_items"):
        return []
    rows = [list(LINE_ITEM_HEADER)]
    for li in einvoice["line_items"]:
        rows.append([" ".join(str(li.get(k) or "").split()) for k in LINE_ITEM_HEADER])
    return rows
