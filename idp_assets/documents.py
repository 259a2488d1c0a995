"""`source_documents` and `raw_pages`: from stored original bytes to page records."""


import hashlib

from dagster import AssetExecutionContext, MaterializeResult, Output, asset

from idp_assets.common import ASSET_GROUP, DOCUMENT_BACKFILL_POLICY, PARTITIONS, check_result, check_spec, document_failure, timed
from idp_assets.budget import budgeted
from idp_assets.logic.einvoice import find_embedded_xml, read_einvoice_xml
from idp_assets.logic.en16931.intake import is_xml_document, load_xml_invoice
from idp_assets.logic.safety import check_input
from idp_assets.logic.pages import DocumentError, load_document, render_page_png, sniff_media_type
from idp_assets.models import RawPages, SourceDocument
from resources.storage import DocumentStore

PAGE_DPI = 300
MAX_PAGES = 500  # longer documents are quarantined (memory and time stay bounded per partition)


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="1",
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    description="The original document, verified against its sha256 partition key and kept in the document store.",
    check_specs=[check_spec("source_documents", "hash_matches_partition", "stored bytes hash to the partition key")],
)
@budgeted("source_documents")
def source_documents(context: AssetExecutionContext, document_store: DocumentStore):
    doc_id = context.partition_key
    try:
        data = document_store.get_original(doc_id)
    except Exception as exc:  # noqa: BLE001 - any store error means the original is missing
        raise document_failure("original_missing", f"original bytes not in the document store: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    sightings = document_store.get_source_records(doc_id)
    first = sightings[0] if sightings else {"uri": document_store.uri(f"originals/{doc_id[:2]}/{doc_id}"), "filename": doc_id}
    doc = SourceDocument(
        document_id=doc_id,
        uri=first["uri"],
        filename=first["filename"],
        media_type=sniff_media_type(data, first["filename"]),
        bytes=len(data),
        store_uri=document_store.put_original(doc_id, data),
    )
    yield Output(
        doc,
        metadata={
            "filename": doc.filename,
            "uri": doc.uri,
            "media_type": doc.media_type,
            "bytes": doc.bytes,
            "sightings": len(sightings),
        },
    )
    yield check_result("source_documents", "hash_matches_partition", actual == doc_id, sha256=actual)


def page_image_key(store: DocumentStore, document_id: str, number: int) -> str:
    return store.artifact_key(document_id, "pages", f"p{number:04d}.png")


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="1",
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    description="Pages with their text layer; page images (PNG, stored) only where image OCR is needed.",
    check_specs=[check_spec("raw_pages", "has_pages", "the document has at least one page")],
)
@budgeted("raw_pages")
def raw_pages(context: AssetExecutionContext, source_documents: SourceDocument, document_store: DocumentStore):
    doc_id = source_documents.document_id
    data = document_store.get_original(doc_id)
    with timed() as t:
        try:
            check_input(data, source_documents.media_type)
            einvoice_xml = rendition = None
            if is_xml_document(data, source_documents.media_type, source_documents.filename):
                # a standalone e-invoice: its view PDF stands in for the pages
                raw, images, einvoice, rendition = load_xml_invoice(
                    doc_id, data, filename=source_documents.filename, dpi=PAGE_DPI, max_pages=MAX_PAGES)
                einvoice_xml = data
            else:
                raw, images = load_document(doc_id, data, source_documents.media_type, dpi=PAGE_DPI,
                                             max_pages=MAX_PAGES, filename=source_documents.filename)
        except Exception as exc:  # noqa: BLE001 - any failure to read the document quarantines it
            code, message = (exc.code, exc.message) if isinstance(exc, DocumentError) else (
                "processing_error", f"{type(exc).__name__}: {exc}")
            where = document_store.quarantine(doc_id, code, message, source_documents.filename)
            context.log.error(f"document {doc_id[:12]} ({source_documents.filename!r}) quarantined: [{code}] {message}")
            raise document_failure(code, message, filename=source_documents.filename, quarantine_uri=where) from exc
    if rendition is not None:
        raw.rendition_key = document_store.artifact_key(doc_id, "view.pdf")
        document_store.put(raw.rendition_key, rendition, "application/pdf")
    elif raw.kind == "pdf" and (found := find_embedded_xml(data)) is not None:
        einvoice = read_einvoice_xml(*found)
        einvoice_xml = found[1]
    if einvoice_xml is not None:  # kept for the EN 16931 rule check in extracted_fields
        einvoice["xml_key"] = document_store.artifact_key(doc_id, "einvoice.xml")
        document_store.put(einvoice["xml_key"], einvoice_xml, "application/xml")
        raw.embedded_invoice = einvoice
    for page, image in zip(raw.pages, images):
        if image is not None:
            key = page_image_key(document_store, raw.document_id, page.number)
            document_store.put(key, render_page_png(image, compress_level=1), "image/png")
            page.image_key = key
    yield Output(
        raw,
        metadata={
            "kind": raw.kind,
            "page_count": len(raw.pages),
            "pages_with_text_layer": sum(1 for p in raw.pages if p.text_layer_chars > 0),
            "pages_needing_image_ocr": sum(1 for i in images if i is not None),
            "seconds": t["seconds"],
            "embedded_invoice": (raw.embedded_invoice or {}).get("profile") or bool(raw.embedded_invoice),
            "einvoice_format": (raw.embedded_invoice or {}).get("format") or "",
        },
    )
    yield check_result("raw_pages", "has_pages", len(raw.pages) > 0, page_count=len(raw.pages))


def page_source(store: DocumentStore, raw: RawPages) -> bytes:
    """The bytes the pages were read from: the view PDF of an e-invoice XML, else the original."""
    return store.get(raw.rendition_key) if raw.rendition_key else store.get_original(raw.document_id)
