"""Any supported e-invoice XML (CII D16B, ZUGFeRD 1.0, UBL 2.1) -> the flat dict of
:mod:`.legacy` with the EN 16931 model under ``en16931``."""

from __future__ import annotations

import logging

from .legacy import to_legacy
from .read_cii import read_cii
from .read_ubl import read_ubl
from .xmlsafe import EInvoiceError, parse_invoice_xml

__all__ = ["parse_cii", "parse_einvoice", "read_einvoice_xml"]

log = logging.getLogger(__name__)


def parse_einvoice(xml_bytes: bytes) -> dict:
    """Parse an e-invoice (CII D16B, ZUGFeRD 1.0, UBL 2.1) into a JSON-friendly dict: amounts as
    canonical decimal strings, dates ISO, ``format`` = ``cii`` / ``zugferd1`` / ``ubl``, the line
    items as written, and the full EN 16931 model under ``en16931``.  Raises
    :class:`EInvoiceError` (with a ``code``) for malformed, unsafe or foreign XML."""
    root, syntax = parse_invoice_xml(xml_bytes)
    return to_legacy(read_ubl(root) if syntax == "ubl" else read_cii(root))


def parse_cii(xml_bytes: bytes) -> dict:
    """:func:`parse_einvoice` for CII only (ZUGFeRD 1.0 or 2.x / Factur-X / XRechnung-CII);
    UBL and any other root raise :class:`EInvoiceError`."""
    root, syntax = parse_invoice_xml(xml_bytes)
    if syntax == "ubl":
        raise EInvoiceError(f"not a CII invoice (root element {root.tag!r})", "unsupported_type")
    return to_legacy(read_cii(root))


def read_einvoice_xml(name: str, xml: bytes) -> dict:
    """:func:`parse_einvoice` plus ``filename``; never raises for bad input: when the XML
    cannot be read the result is ``{"error", "error_code", "filename"}`` so the caller can
    record a finding (PDF: fall back to the printed page; standalone XML: quarantine)."""
    try:
        out = parse_einvoice(xml)
    except EInvoiceError as e:
        return {"error": str(e), "error_code": e.code, "filename": name}
    except Exception as e:  # defensive: a bug here must not fail the asset
        log.exception("unexpected error parsing e-invoice %s", name)
        return {"error": f"unexpected {type(e).__name__}: {e}", "error_code": "processing_error", "filename": name}
    out["filename"] = name
    return out
