"""E-invoices: ZUGFeRD / Factur-X / XRechnung CII embedded in PDF/A-3 files, and standalone
XML (CII D16B, ZUGFeRD 1.0, UBL 2.1 Invoice / CreditNote).

* :func:`find_embedded_xml` - the invoice XML attached to a PDF (``factur-x.xml``,
  ``zugferd-invoice.xml``, ``ZUGFeRD-invoice.xml``, ``xrechnung.xml`` or any other XML
  attachment whose root is a CII or UBL invoice), read with pypdf.
* :func:`parse_einvoice` - any supported syntax into a plain dict (``parse_cii``: CII only);
  the EN 16931 model (:mod:`idp_assets.logic.en16931`) is in its ``en16931`` key.
* :func:`read_einvoice_xml` / :func:`extract_einvoice` - the same, never raising for bad input.
* :func:`line_items_rows` - the line items as table rows (header first).

XML is parsed with a hardened lxml parser (no DTD loading, no entity resolution, no
network, no huge trees) and documents that declare a DOCTYPE are rejected outright:
e-invoices never need one, and it is the vehicle of XXE and billion-laughs attacks.

factur-x's ``get_xml_from_pdf`` is deliberately not used: it parses attachments with
lxml's default (entity-expanding) parser and silently skips malformed XML, which would
turn a broken e-invoice into "no e-invoice".
"""

from __future__ import annotations

import io
import logging

from .en16931.legacy import LINE_ITEM_HEADER, clean_party_name
from .en16931.reader import parse_cii, parse_einvoice, read_einvoice_xml
from .en16931.xmlsafe import MAX_XML_BYTES, NS_CII, NS_ZF1, EInvoiceError, looks_like_einvoice, safe_parser

__all__ = [
    "EInvoiceError",
    "KNOWN_XML_NAMES",
    "LINE_ITEM_HEADER",
    "MAX_XML_BYTES",
    "NS_CII",
    "NS_ZF1",
    "clean_party_name",
    "extract_einvoice",
    "find_embedded_xml",
    "line_items_rows",
    "parse_cii",
    "parse_einvoice",
    "read_einvoice_xml",
    "safe_parser",
]

log = logging.getLogger(__name__)

KNOWN_XML_NAMES = ("factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml", "order-x.xml")


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


def find_embedded_xml(pdf_bytes: bytes) -> tuple[str, bytes] | None:
    """``(filename, xml_bytes)`` of the e-invoice XML attached to the PDF, or ``None``.

    Known names win (case-insensitive); otherwise any ``*.xml`` attachment that looks
    like CII or UBL.  Unreadable PDFs give ``None`` (they are simply not e-invoices here).
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
        if name.lower().endswith(".xml") and content and looks_like_einvoice(content):
            return name, content
    return None


# --------------------------------------------------------------------------- parsing


def extract_einvoice(pdf_bytes: bytes) -> dict | None:
    """The parsed e-invoice of a PDF, ``None`` when it has none (see :func:`read_einvoice_xml`)."""
    found = find_embedded_xml(pdf_bytes)
    if found is None:
        return None
    return read_einvoice_xml(*found)


def line_items_rows(einvoice: dict | None) -> list[list[str]]:
    """Line items as table rows with :data:`LINE_ITEM_HEADER` first ([] when none)."""
    if not einvoice or einvoice.get("error") or not einvoice.get("line_items"):
        return []
    rows = [list(LINE_ITEM_HEADER)]
    for li in einvoice["line_items"]:
        rows.append([" ".join(str(li.get(k) or "").split()) for k in LINE_ITEM_HEADER])
    return rows
