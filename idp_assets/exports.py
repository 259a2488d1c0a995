"""`document_exports`: the JSON export per document, in the document store and the export folder."""


import json
from pathlib import Path

from dagster import AssetExecutionContext, ConfigurableResource, MetadataValue, Output, asset
from pydantic import Field

from idp_assets.common import ASSET_GROUP, PARTITIONS, check_result, check_spec
from idp_assets.logic.export import build_export, safe_stem
from idp_assets.models import DocumentExport, ExtractedFields, OcrPages, SourceDocument, SupplierMatch, Tables
from resources.storage import DocumentStore


class ExportTarget(ConfigurableResource):
    out_dir: str = Field(default="./exports", description="folder where `<stem>-<hash8>.json` exports are written")

    def write(self, filename: str, document_id: str, record: dict) -> str:
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{safe_stem(filename)}-{document_id[:8]}.json"
        path.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
        return str(path.resolve())


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="1",
    deps=["graph_nodes"],  # the export is written once the document is searchable
    description="JSON export (document, pages, text, fields, tables, supplier match, validation, errors).",
    check_specs=[check_spec("document_exports", "has_text_or_error", "the export has text or says why not")],
)
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
    record = build_export(source_documents, ocr_pages, normalized_tables, extracted_fields, supplier_matches)
    body = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8")
    store_uri = document_store.put(document_store.artifact_key(source_documents.document_id, "export.json"), body,
                                   "application/json")
    local = export_target.write(source_documents.filename, source_documents.document_id, record)
    result = DocumentExport(document_id=source_documents.document_id, json_uri=store_uri, status=record["status"])
    yield Output(
        result,
        metadata={
            "status": record["status"],
            "store_uri": store_uri,
            "path": MetadataValue.path(local),
            "fields": MetadataValue.json({k: v["value"] for k, v in record["fields"].items()}),
            "tables": len(record["tables"]),
        },
    )
    yield check_result("document_exports", "has_text_or_error", bool(record["text"].strip() or record["errors"]))
