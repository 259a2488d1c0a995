"""Standalone e-invoice XML as a document: detect it, read it, give it a page to look at.

:func:`is_xml_document` says whether the bytes go this way (sniffed ``application/xml`` /
``text/xml``, or text starting with ``<`` under a ``.xml`` name).  :func:`load_xml_invoice`
reads the invoice (CII, ZUGFeRD 1.0, UBL), renders the view PDF (:mod:`.render`) and loads it
like any born-digital PDF; XML that is malformed, unsafe (DOCTYPE / entities), too large or not
an e-invoice raises :class:`~idp_assets.logic.pages.DocumentError` (``corrupt_xml``,
``unsafe_xml``, ``file_too_large``, ``unsupported_type``) so the document is quarantined with
that reason.
"""

from __future__ import annotations

from ..pages import PDF_MEDIA_TYPE, DocumentError, load_document
from .model import Invoice
from .reader import read_einvoice_xml
from .render import render_pdf

__all__ = ["XML_MEDIA_TYPES", "is_xml_document", "load_xml_invoice"]

XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})
SYNTAX_NAMES = {"cii": "UN/CEFACT CII D16B", "zugferd1": "ZUGFeRD 1.0 CII", "ubl": "UBL 2.1"}


def is_xml_document(data: bytes, media_type: str, filename: str = "") -> bool:
    if media_type in XML_MEDIA_TYPES:
        return True
    if not filename.lower().endswith(".xml") or media_type not in ("text/plain", "application/octet-stream"):
        return False
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") or head.startswith(b"\xff\xfe<") or head.startswith(b"\xfe\xff\x00<")


def load_xml_invoice(document_id: str, data: bytes, *, filename: str = "", dpi: float = 300,
                     max_pages: int = 500):
    """``(raw pages, page images, e-invoice dict, view PDF bytes)`` of a standalone XML invoice."""
    einv = read_einvoice_xml(filename or "invoice.xml", data)
    if einv.get("error"):
        code = einv.get("error_code") or "corrupt_xml"
        if code not in ("corrupt_xml", "unsafe_xml", "file_too_large", "unsupported_type"):
            code = "corrupt_xml"
        raise DocumentError(code, einv["error"][:500])
    inv = Invoice.model_validate(einv["en16931"])
    source = f"Rendered from the {SYNTAX_NAMES.get(inv.syntax or '', 'XML')} e-invoice {filename}".strip()
    pdf = render_pdf(inv, source)
    raw, images = load_document(document_id, pdf, PDF_MEDIA_TYPE, dpi=dpi, max_pages=max_pages)
    einv["standalone"] = True
    return raw, images, einv, pdf
