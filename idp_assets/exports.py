"""`document_exports`: the JSON export per document plus CSV (header fields, line items) and
a UN/CEFACT CII XML invoice, in the document store and the export folder."""


import json
from pathlib import Path

from dagster import (AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetKey, ConfigurableResource,
                     MetadataValue, Output, asset)
from pydantic import Field

from idp_assets.common import ASSET_GROUP, DOCUMENT_BACKFILL_POLICY, PARTITIONS, check_result, check_spec
from idp_assets.budget import budgeted
from idp_assets.logic.en16931.export import exports_validation
from idp_assets.logic.export import build_export, export_files, safe_stem
from idp_assets.models import DocumentExport, ExtractedFields, OcrPages, SourceDocument, SupplierMatch, Tables
from resources.storage import DocumentStore

_MEDIA = {"csv": "text/csv; charset=utf-8", "xml": "application/xml"}


class ExportTarget(ConfigurableResource):
    out_dir: str = Field(default="./exports", description="folder where `<stem>-<hash8>.json` exports are written")
    csv_delimiter: str = Field(default=",", description="CSV delimiter; ';' (with decimal_comma) for German Excel")
    decimal_comma: bool = Field(default=False, description="write CSV amounts with a decimal comma")

    def write(self, filename: str, document_id: str, record: dict) -> str:
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{safe_stem(filename)}-{document_id[:8]}.json"
        path.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
        return str(path.resolve())

    def write_extra(self, filename: str, document_id: str, suffix: str, body: bytes) -> str:
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{safe_stem(filename)}-{document_id[:8]}.{suffix}"
        path.write_bytes(body)
        return str(path.resolve())


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="2",
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    deps=["graph_nodes"],  # the export is written once the document is searchable
    description="JSON export (document, pages, text, fields, tables, supplier match, validation, errors), "
    "CSV of header fields and line items, EN 16931 invoice as UN/CEFACT CII and UBL 2.1 XML (checked with the "
    "official rules).",
    check_specs=[
        check_spec("document_exports", "has_text_or_error", "the export has text or says why not"),
        check_spec("document_exports", "cii_well_formed", "the CII XML export parses back to the same invoice fields"),
        check_spec("document_exports", "en16931_exports", "the CII and UBL exports pass the EN 16931 rules, or every "
                   "failed rule is explained by data the document does not give"),
    ],
)
@budgeted("document_exports")
def document_exports(
    context: AssetExecutionContext,
    source_documents: SourceDocument,
    ocr_pages: OcrPages,
    normalized_tables: Tables,
    extracted_fields: ExtractedFields,
    supplier_matches: SupplierMatch,
    document_store: DocumentStore,
    export_target: ExportTarget,
):
    from idp_assets.logic.einvoice import EInvoiceError, parse_cii

    doc_id = source_documents.document_id
    record = build_export(source_documents, ocr_pages, normalized_tables, extracted_fields, supplier_matches)
    extra = export_files(record, csv_delimiter=export_target.csv_delimiter, decimal_comma=export_target.decimal_comma)
    record["export_validation"] = exports_validation(record, extra)
    body = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8")
    store_uri = document_store.put(document_store.artifact_key(doc_id, "export.json"), body, "application/json")
    local = export_target.write(source_documents.filename, doc_id, record)
    paths = {}
    for suffix, data in extra.items():
        document_store.put(document_store.artifact_key(doc_id, f"export.{suffix}"), data, _MEDIA[suffix.rsplit(".", 1)[1]])
        paths[suffix] = MetadataValue.path(export_target.write_extra(source_documents.filename, doc_id, suffix, data))
    result = DocumentExport(document_id=doc_id, json_uri=store_uri, status=record["status"])
    yield Output(
        result,
        metadata={
            "status": record["status"],
            "partial_reasons": MetadataValue.json(record["partial_reasons"]),
            "store_uri": store_uri,
            "path": MetadataValue.path(local),
            **{f"path_{k.replace('.', '_')}": v for k, v in paths.items()},
            "fields": MetadataValue.json({k: v["value"] for k, v in record["fields"].items()}),
            "tables": len(record["tables"]),
            "needs_review": record["needs_review"],
        },
    )
    yield check_result("document_exports", "has_text_or_error", bool(record["text"].strip() or record["errors"]))
    problem = None
    if "cii.xml" in extra:
        try:
            back = parse_cii(extra["cii.xml"])
            f = record["fields"]
            for name, key in (("invoice_number", "invoice_number"), ("currency", "currency")):
                if f.get(name, {}).get("value") and back.get(key) != f[name]["value"]:
                    problem = f"{name}: {f[name]['value']!r} exported as {back.get(key)!r}"
        except EInvoiceError as e:
            problem = str(e)
    yield check_result("document_exports", "cii_well_formed", problem is None, problem=problem or "")
    ev = record["export_validation"] or {}
    yield AssetCheckResult(
        asset_key=AssetKey("document_exports"), check_name="en16931_exports",
        passed=not any(ev.get(k, {}).get("unexplained") for k in ("cii", "ubl")),
        severity=AssetCheckSeverity.WARN,
        metadata={k: MetadataValue.json({"passed": ev[k]["passed"], "explained": ev[k]["explained"],
                                         "unexplained": ev[k]["unexplained"], "xsd_valid": ev[k]["xsd_valid"]})
                  for k in ("cii", "ubl") if k in ev},
    )
