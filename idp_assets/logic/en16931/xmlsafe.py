"""Hardened XML parsing and syntax detection for e-invoices (no DTD, no entities, no network).

:func:`parse_invoice_xml` returns the root element of a CII (D16B or ZUGFeRD 1.0) or UBL 2.1
(Invoice / CreditNote) document and its syntax, or raises :class:`EInvoiceError` whose
``code`` says why (``corrupt_xml``, ``unsafe_xml``, ``file_too_large``, ``unsupported_type``).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from lxml import etree

from .model import Identifier

__all__ = [
    "EInvoiceError", "MAX_XML_BYTES", "NS_CII", "NS_UBL_CREDIT_NOTE", "NS_UBL_INVOICE", "NS_ZF1",
    "detect_syntax", "looks_like_einvoice", "parse_invoice_xml", "parse_root", "safe_parser",
]

MAX_XML_BYTES = 20 * 1024 * 1024  # a 350 KB XRechnung with an embedded PDF is large; 20 MB is absurd

NS_ZF1 = "urn:ferd:CrossIndustryDocument:invoice:1p0"
NS_CII = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
NS_UBL_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_UBL_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
ROOTS = {
    (NS_CII, "CrossIndustryInvoice"): "cii",
    (NS_ZF1, "CrossIndustryDocument"): "zugferd1",
    (NS_UBL_INVOICE, "Invoice"): "ubl",
    (NS_UBL_CREDIT_NOTE, "CreditNote"): "ubl",
}


class EInvoiceError(ValueError):
    """The XML is not a readable e-invoice (malformed, unsafe, too large or wrong root);
    ``code`` is the machine-readable reason."""

    def __init__(self, message: str, code: str = "corrupt_xml"):
        super().__init__(message)
        self.code = code

    def __reduce__(self):
        return (EInvoiceError, (str(self), self.code))


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


def parse_root(xml_bytes: bytes):
    """The root element of an XML document parsed with :func:`safe_parser`; documents that
    declare a DOCTYPE or ENTITY are refused (e-invoices never need one)."""
    if not isinstance(xml_bytes, (bytes, bytearray)):
        raise EInvoiceError("XML must be bytes")
    if len(xml_bytes) > MAX_XML_BYTES:
        raise EInvoiceError(f"XML too large ({len(xml_bytes)} bytes, the limit is {MAX_XML_BYTES})", "file_too_large")
    head = bytes(xml_bytes[:65536]).upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in head or b"<\x00!\x00D\x00O\x00C\x00T\x00Y\x00P\x00E" in head:
        raise EInvoiceError("XML declares a DOCTYPE/ENTITY; refused (XXE / entity-expansion protection)", "unsafe_xml")
    try:
        root = etree.fromstring(bytes(xml_bytes), parser=safe_parser())
    except etree.XMLSyntaxError as e:
        msg = str(e)
        code = "unsafe_xml" if re.search(r"(?i)entit|doctype|dtd", msg) else "corrupt_xml"
        raise EInvoiceError(f"malformed XML: {msg}", code) from e
    except Exception as e:  # anything lxml may throw on hostile input
        raise EInvoiceError(f"unreadable XML: {type(e).__name__}: {e}") from e
    if root is None:
        raise EInvoiceError("empty XML document")
    if root.getroottree().docinfo.doctype:
        raise EInvoiceError("XML declares a DOCTYPE; refused", "unsafe_xml")
    return root


def detect_syntax(root) -> str | None:
    """``cii`` / ``zugferd1`` / ``ubl`` from the root element's namespace and name, else ``None``."""
    try:
        q = etree.QName(root)
    except (ValueError, TypeError):
        return None
    return ROOTS.get((q.namespace, q.localname))


def parse_invoice_xml(xml_bytes: bytes):
    """``(root, syntax)`` of an e-invoice XML; :class:`EInvoiceError` otherwise."""
    root = parse_root(xml_bytes)
    syntax = detect_syntax(root)
    if syntax is None:
        q = etree.QName(root)
        raise EInvoiceError(
            f"XML root {{{q.namespace or ''}}}{q.localname} is not an e-invoice "
            "(expected UN/CEFACT CII, ZUGFeRD 1.0 or UBL 2.1 Invoice/CreditNote)", "unsupported_type")
    return root, syntax


def looks_like_einvoice(xml: bytes) -> bool:
    """Cheap check on the first bytes (for picking a PDF attachment): a CII or UBL root."""
    head = bytes(xml[:4096])
    return any(m in head for m in (b"CrossIndustryInvoice", b"CrossIndustryDocument", NS_UBL_INVOICE.encode(),
                                   NS_UBL_CREDIT_NOTE.encode()))


# --------------------------------------------------------------------------- tree helpers


def ln(el: Any) -> str:
    try:
        return etree.QName(el).localname
    except (ValueError, TypeError):
        return ""


def kids(el, name: str) -> list:
    if el is None:
        return []
    return [c for c in el if isinstance(c.tag, str) and ln(c) == name]


def _alts(step):
    return step if isinstance(step, tuple) else (step,)


def all_(el, *steps) -> list:
    """Every element reached by following local names (a tuple = alternatives)."""
    cur = [el] if el is not None else []
    for step in steps:
        cur = [ch for c in cur for a in _alts(step) for ch in kids(c, a)]
    return cur


def first(el, *steps):
    found = all_(el, *steps)
    return found[0] if found else None


def text(el, *steps) -> str | None:
    """Stripped text of the first element on the path (``None`` when absent or blank)."""
    if steps:
        el = first(el, *steps)
    if el is None:
        return None
    t = "".join(el.itertext()).strip()
    return t or None


def collapse(s: str | None) -> str | None:
    if s is None:
        return None
    s = " ".join(s.split())
    return s or None


def date102(el) -> str | None:
    """ISO date from a CII date element (``format="102"`` = YYYYMMDD; ISO text tolerated)."""
    if el is None:
        return None
    dts = el if ln(el) in ("DateTimeString", "DateString") else None
    if dts is None:
        for d in el.iter():
            if isinstance(d.tag, str) and ln(d) in ("DateTimeString", "DateString"):
                dts = d
                break
    raw = text(dts if dts is not None else el)
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


def iso_date(raw: str | None) -> str | None:
    """ISO date from UBL text (``YYYY-MM-DD``), ``None`` when invalid."""
    if not raw:
        return None
    try:
        return date.fromisoformat(raw.strip()[:10]).isoformat()
    except ValueError:
        return None


def identifier(el) -> Identifier | None:
    """An identifier element (CII and UBL alike): its text with schemeID/listID and listVersionID."""
    v = text(el)
    return Identifier(value=v, scheme=el.get("schemeID") or el.get("listID") or None,
                      version=el.get("listVersionID") or None) if v else None
