"""`normalized_tables`: tables from e-invoice XML, born-digital PDF pages, scanned pages and office documents."""


import io

from dagster import AssetExecutionContext, Output, asset
from PIL import Image

from idp_assets.common import ASSET_GROUP, DOCUMENT_BACKFILL_POLICY, PARTITIONS, check_result, check_spec, timed
from idp_assets.budget import budgeted
from idp_assets.documents import page_source
from idp_assets.logic.ocr_pdf import scanned_page_tables
from idp_assets.logic.tables import document_tables, normalize_table
from idp_assets.models import OcrPages, RawPages, Table, Tables
from resources.storage import DocumentStore


def find_tables(raw: RawPages, ocr: OcrPages, original: bytes, page_image=None) -> list[Table]:
    """E-invoice line items first (the printed copy of them is then skipped), PDF tables on
    born-digital pages, tables on scanned pages (their OCR words as a text layer, ruling lines
    from `page_image(number)`), office tables."""
    born_digital = [p.number for p in ocr.pages if p.engine == "text_layer"]
    tables = document_tables(original if raw.kind == "pdf" and born_digital else None, born_digital,
                             raw.embedded_invoice)
    if raw.kind in ("pdf", "image") and not any(t.source == "einvoice_xml" for t in tables):
        tables += scanned_page_tables(ocr, page_image)
    if raw.kind == "office":
        tables += [Table(page=1, rows=t, source="office") for t in raw.office_tables if len(t) > 1]
    return [normalize_table(t) for t in tables]


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="4",
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    description="Tables as cell grids (ruled cells refined by word positions, text alignment - on scanned pages over "
    "the OCR words and the ruling lines of the image -, e-invoice line items, office tables) with typed cells, "
    "header rows and invoice line items.",
    check_specs=[
        check_spec("normalized_tables", "rectangular", "every table row has the same number of cells"),
        check_spec("normalized_tables", "line_item_confidence_in_range", "every line-item confidence is in [0, 1]"),
    ],
)
@budgeted("normalized_tables")
def normalized_tables(
    context: AssetExecutionContext, raw_pages: RawPages, ocr_pages: OcrPages, document_store: DocumentStore
):
    original = page_source(document_store, raw_pages) if raw_pages.kind == "pdf" else b""
    keys = {p.number: p.image_key for p in raw_pages.pages if p.image_key}

    def page_image(number: int):
        if number not in keys:
            return None
        with Image.open(io.BytesIO(document_store.get(keys[number]))) as im:
            return im.convert("L")

    with timed() as t:
        tables = find_tables(raw_pages, ocr_pages, original, page_image)
    ragged = [i for i, tb in enumerate(tables) if len({len(r) for r in tb.rows}) > 1]
    yield Output(
        Tables(document_id=raw_pages.document_id, tables=tables),
        metadata={"tables": len(tables), "sources": ", ".join(sorted({tb.source for tb in tables})),
                  "line_items": sum(len(tb.line_items) for tb in tables), "seconds": t["seconds"]},
    )
    yield check_result("normalized_tables", "rectangular", not ragged, ragged_tables=ragged)
    bad = [(i, li.row) for i, tb in enumerate(tables) for li in tb.line_items
           for v in (li.description, li.quantity, li.unit, li.unit_price, li.line_total, li.tax_rate)
           if v is not None and not 0.0 <= v.confidence <= 1.0]
    yield check_result("normalized_tables", "line_item_confidence_in_range", not bad, bad_cells=bad[:20])
