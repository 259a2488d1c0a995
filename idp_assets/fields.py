"""`extracted_fields`: header fields with value, confidence and source, plus validation findings."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from idp_assets.common import ASSET_GROUP, PARTITIONS, check_result, check_spec, timed
from idp_assets.logic.fields import extract_fields
from idp_assets.logic.numbers import parse_amount
from idp_assets.models import ExtractedFields, OcrPages, RawPages, Tables


def line_items_validation(fields: dict, tables: Tables) -> list[dict]:
    """Line items (from the e-invoice table) must add up to the net total, within rounding."""
    out = []
    net = fields.get("net_total")
    net_value = parse_amount(net.value) if net is not None and net.value else None
    for t in tables.tables:
        if t.source != "einvoice_xml" or not t.rows or "line_total" not in t.rows[0] or net_value is None:
            continue
        col = t.rows[0].index("line_total")
        amounts = [parse_amount(r[col]) for r in t.rows[1:]]
        if any(a is None for a in amounts):
            continue
        total = sum(amounts)
        ok = abs(total - net_value) <= max(len(amounts), 1) * parse_amount("0.01")
        out.append({"rule": "line_items_sum_to_net", "ok": bool(ok),
                    "message": f"line items sum to {total} vs net total {net_value}"})
    return out


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="1",
    description="Invoice fields from the embedded e-invoice XML first, then label rules over the page text.",
    check_specs=[check_spec("extracted_fields", "confidence_in_range", "every field confidence is in [0, 1]")],
)
def extracted_fields(
    context: AssetExecutionContext, raw_pages: RawPages, ocr_pages: OcrPages, normalized_tables: Tables
):
    with timed() as t:
        found = extract_fields(
            [p.text for p in ocr_pages.pages],
            [p.words for p in ocr_pages.pages],
            raw_pages.embedded_invoice,
            [p.confidence for p in ocr_pages.pages],
        )
    result = ExtractedFields(document_id=ocr_pages.document_id, fields=dict(found.fields),
                             validation=list(found.validation) + line_items_validation(found.fields, normalized_tables))
    yield Output(
        result,
        metadata={
            "fields": MetadataValue.json({k: {"value": v.value, "confidence": v.confidence, "source": v.source}
                                          for k, v in result.fields.items()}),
            "validation_failed": sum(1 for v in result.validation if not v.get("ok", True)),
            "seconds": t["seconds"],
        },
    )
    bad = [k for k, v in result.fields.items() if not 0.0 <= v.confidence <= 1.0]
    yield check_result("extracted_fields", "confidence_in_range", not bad, fields_out_of_range=bad)
