"""`extracted_fields`: header fields with value, confidence and source, plus validation findings."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetKey, MetadataValue, Output, asset

from idp_assets.common import ASSET_GROUP, PARTITIONS, check_result, check_spec, timed
from idp_assets.logic.fields import extract_fields, validate_fields
from idp_assets.logic.llm_fields import extract_with_llm, merge_llm_fields
from idp_assets.logic.numbers import parse_amount
from idp_assets.logic.tables import pdf_layout_text
from idp_assets.logic.validation import check_line_items_sum
from idp_assets.models import ExtractedFields, OcrPages, RawPages, Tables
from idp_assets.backfill import DOCUMENT_BACKFILL_POLICY
from idp_assets.versions import configured_fields_code_version
from resources.llm import FIELDS_TASK, LlmRouter
from resources.storage import DocumentStore

# business-rule findings surfaced as (warning) asset checks: rule prefix -> check name
VALIDATION_CHECKS = {
    "line_items_sum_to_net": "line_items_sum",
    "totals_consistent": "net_plus_tax_is_gross",
    "tax_rate_plausible": "tax_rate_plausible",
    "date_not_in_future": "dates_valid",
    "date_valid": "dates_valid",
    "due_date_valid": "dates_valid",
    "due_date_after_issue": "dates_valid",
    "iban_checksum": "iban_checksum",
    "vat_id_format": "vat_id_format",
    "currency_known": "currency_known",
    "einvoice_matches_print": "einvoice_matches_print",
    "einvoice_invoice_number_in_text": "einvoice_matches_print",
    "einvoice_total_in_text": "einvoice_matches_print",
    "einvoice_parse": "einvoice_matches_print",
    "llm_agrees": "llm_agrees",
}
CHECK_DESCRIPTIONS = {
    "line_items_sum": "e-invoice line items add up to the net total (rounding tolerance)",
    "net_plus_tax_is_gross": "net + tax = gross total (rounding tolerance)",
    "tax_rate_plausible": "the effective tax rate is one of the country's rates (DE 0/7/19 %)",
    "dates_valid": "invoice/due dates are valid ISO dates, not in the future, due on/after issue",
    "iban_checksum": "the IBAN passes the ISO 13616 mod-97 check",
    "vat_id_format": "the VAT ID matches its country's format",
    "currency_known": "the currency is an ISO 4217 code",
    "einvoice_matches_print": "the embedded e-invoice XML agrees with the printed page",
    "llm_agrees": "the optional LLM extraction (idp-fields) agrees with the rules",
}


def line_items_validation(fields: dict, tables: Tables, einvoice: dict | None = None) -> list[dict]:
    """Line items of the e-invoice table must add up to the XML's sum of line totals
    (``LineTotalAmount``; the net total also holds document-level allowances and charges),
    or to the net total when the XML has no such sum, within rounding."""
    out = []
    net = fields.get("net_total")
    net_value = parse_amount(net.value) if net is not None and net.value else None
    label = "net total"
    if einvoice and not einvoice.get("error") and einvoice.get("line_total"):
        net_value, label = parse_amount(einvoice["line_total"]), "XML LineTotalAmount"
    for t in tables.tables:
        if t.source != "einvoice_xml" or not t.line_items:
            continue
        amounts = [parse_amount(li.line_total.value) if li.line_total and li.line_total.value else None
                   for li in t.line_items]
        finding = check_line_items_sum(amounts, net_value, label=label)
        if finding:
            out.append(finding)
    return out


def validation_check_results(validation: list[dict]) -> list[AssetCheckResult]:
    """One warning-severity check per rule family; passes when no finding of it failed
    (and when the document gives no data for it)."""
    by_check: dict[str, list[dict]] = {name: [] for name in CHECK_DESCRIPTIONS}
    for v in validation:
        check = VALIDATION_CHECKS.get(str(v.get("rule", "")).split(":", 1)[0])
        if check:
            by_check[check].append(v)
    out = []
    for name, findings in by_check.items():
        failed = [f["message"] for f in findings if not f.get("ok", True)]
        out.append(AssetCheckResult(
            asset_key=AssetKey("extracted_fields"), check_name=name, passed=not failed,
            severity=AssetCheckSeverity.WARN,
            metadata={"findings": len(findings), "failed": MetadataValue.json(failed[:20])},
        ))
    return out


def _with_llm(context, llm_router: LlmRouter, text: str, fields: dict, validation: list[dict],
              einvoice: dict | None) -> tuple[dict, list[dict]]:
    """Rules first, the LLM (task alias ``idp-fields``) fills gaps and votes; an LLM failure
    is a finding, never a failed asset."""
    try:
        answer = extract_with_llm(llm_router.complete_json, text, FIELDS_TASK)
    except Exception as e:  # provider down, bad config, timeout: keep the rule result
        context.log.warning(f"LLM field extraction failed: {e}")
        return fields, validation + [{"rule": "llm_call", "ok": False, "message": f"{type(e).__name__}: {e}"[:300]}]
    merged, findings = merge_llm_fields(fields, answer, text, FIELDS_TASK)
    kept = [v for v in validation if str(v.get("rule", "")).startswith("einvoice_matches_print")]
    return merged, validate_fields(merged, einvoice=einvoice, text=text) + kept + findings


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version=configured_fields_code_version(),
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    description="Invoice fields from the embedded e-invoice XML first (cross-checked against the print), then "
    "label rules over the page text and the visual line order of born-digital pages; validation findings.",
    check_specs=[check_spec("extracted_fields", "confidence_in_range", "every field confidence is in [0, 1]")]
    + [check_spec("extracted_fields", name, desc) for name, desc in CHECK_DESCRIPTIONS.items()],
)
def extracted_fields(
    context: AssetExecutionContext, raw_pages: RawPages, ocr_pages: OcrPages, normalized_tables: Tables,
    document_store: DocumentStore, llm_router: LlmRouter,
):
    born_digital = [p.number for p in ocr_pages.pages if p.engine == "text_layer"]
    with timed() as t:
        layout = None
        if raw_pages.kind == "pdf" and born_digital:
            def layout():  # only read when the page text leaves a field missing
                return pdf_layout_text(document_store.get_original(raw_pages.document_id), born_digital)
        found = extract_fields(
            [p.text for p in ocr_pages.pages],
            [p.words for p in ocr_pages.pages],
            raw_pages.embedded_invoice,
            [p.confidence for p in ocr_pages.pages],
            layout_text_by_page=layout,
        )
        fields, validation = dict(found.fields), list(found.validation)
        if llm_router.enabled:
            fields, validation = _with_llm(context, llm_router, ocr_pages.text, fields, validation,
                                           raw_pages.embedded_invoice)
    result = ExtractedFields(document_id=ocr_pages.document_id, fields=fields,
                             validation=validation
                             + line_items_validation(fields, normalized_tables, raw_pages.embedded_invoice))
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
    yield from validation_check_results(result.validation)
