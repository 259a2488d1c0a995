"""The JSON export: one self-contained record per document (shape fixed by the foundation issue)."""

from __future__ import annotations

import re
import unicodedata

from idp_assets.models import ExtractedFields, OcrPages, SourceDocument, SupplierMatch, Tables

EXPORT_SCHEMA_VERSION = "1"


def build_export(
    source: SourceDocument,
    ocr: OcrPages,
    tables: Tables,
    fields: ExtractedFields,
    supplier: SupplierMatch,
) -> dict:
    errors = []
    for p in ocr.pages:
        for a in p.attempts:
            if not a.ok:
                errors.append({"page": p.number, "engine": a.engine, "error": a.error})
        if p.empty_reason:
            errors.append({"page": p.number, "error": p.empty_reason})
    partial = partial_reasons(ocr)
    status = "partial" if partial else "ok"
    review = review_reasons(fields.validation)
    return {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "document_id": source.document_id,
        "status": status,
        "source": {"uri": source.uri, "filename": source.filename, "media_type": source.media_type,
                   "bytes": source.bytes, "store_uri": source.store_uri},
        "pages": [
            {"number": p.number, "width": p.width, "height": p.height, "dpi": p.dpi, "rotation": p.rotation,
             "engine": p.engine, "compute": p.compute, "route_reason": p.route_reason, "confidence": p.confidence,
             "text": p.text,
             "attempts": [a.model_dump() for a in p.attempts]}
            for p in ocr.pages
        ],
        "text": ocr.text,
        "fields": {k: v.model_dump() for k, v in fields.fields.items()},
        "tables": [t.model_dump() for t in tables.tables],
        "supplier_match": supplier.model_dump(exclude={"document_id"}),
        "validation": fields.validation,
        "errors": errors,
        "partial_reasons": partial,
        # EN 16931 semantic model of an e-invoice XML (null for documents read from print)
        "invoice": fields.invoice,
        "needs_review": bool(review),
        "review_reasons": review,
    }


def review_reasons(validation: list[dict]) -> list[str]:
    """Why a person should look at the document: fatal EN 16931 rule failures of its XML
    (the document is processed, never quarantined for them)."""
    return [f"{v['rule']}: {v.get('message', '')}"[:300] for v in validation
            if v.get("flag") == "fatal" and not v.get("ok", True) and str(v.get("rule", "")).startswith("en16931:")]


def partial_reasons(ocr: OcrPages) -> list[dict]:
    """Why the document's result is only partial: pages without text, pages whose engine was cut off.

    A page that hung an engine past the per-page timeout was read by a fallback
    engine (or not at all); the export says so instead of passing it off as a
    complete reading.  Empty list: the result is complete.
    """
    out: list[dict] = []
    for p in ocr.pages:
        timed_out = [a.engine for a in p.attempts if not a.ok and (a.error or "").startswith("EngineTimeout")]
        if timed_out:
            then = f"read by {p.engine}" if p.text.strip() else "no engine read it"
            out.append({"page": p.number, "code": "engine_timeout",
                        "reason": f"{', '.join(timed_out)} cut off after the per-page timeout; {then}"})
        if not p.text.strip():
            out.append({"page": p.number, "code": "no_text", "reason": p.empty_reason or "no text recognised"})
    return out


def failed_export(document_id: str | None, uri: str, filename: str, reason: str, message: str) -> dict:
    """The record written for a document that could not be processed (nothing is silently dropped)."""
    return {
        "schema_version": EXPORT_SCHEMA_VERSION,
        "document_id": document_id,
        "status": "failed",
        "source": {"uri": uri, "filename": filename},
        "pages": [],
        "text": "",
        "fields": {},
        "tables": [],
        "supplier_match": None,
        "validation": [],
        "errors": [{"reason": reason, "error": message}],
    }


def safe_stem(filename: str, max_len: int = 120) -> str:
    """A file-system-safe stem from an untrusted file name (no separators, no dot-files)."""
    stem = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
    stem = unicodedata.normalize("NFKC", stem)
    stem = re.sub(r"[^\w.\-]+", "_", stem).strip("._") or "document"
    return stem[:max_len]


def export_files(record: dict, *, csv_delimiter: str = ",", decimal_comma: bool = False) -> dict[str, bytes]:
    """The secondary export files of a record, by suffix: ``fields.csv`` (header fields),
    ``lines.csv`` (line items), ``cii.xml`` (UN/CEFACT CII D16B) and ``ubl.xml`` (UBL 2.1) -
    the EN 16931 invoice, only for records with invoice fields or an e-invoice.  Failed records
    give none."""
    from .csv_export import fields_csv, line_items_csv
    from .en16931.export import export_invoice
    from .en16931.write_cii import write_cii
    from .en16931.write_ubl import write_ubl

    if record.get("status") == "failed":
        return {}
    out = {
        "fields.csv": fields_csv(record, delimiter=csv_delimiter, decimal_comma=decimal_comma),
        "lines.csv": line_items_csv(record, delimiter=csv_delimiter, decimal_comma=decimal_comma),
    }
    fields = record.get("fields") or {}
    if record.get("invoice") or any(k in fields for k in ("invoice_number", "total")):
        inv = export_invoice(record)[0]
        out["cii.xml"] = write_cii(inv)
        out["ubl.xml"] = write_ubl(inv)
    return out
