"""`extracted_fields`: header fields with value, confidence and source, plus validation findings."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetExecutionContext, AssetKey, MetadataValue, Output, asset

from idp_assets.common import ASSET_GROUP, DOCUMENT_BACKFILL_POLICY, PARTITIONS, check_result, check_spec, timed
from idp_assets.budget import budgeted
from idp_assets.documents import page_source
from idp_assets.logic.fields import extract_fields, validate_fields
from idp_assets.logic.en16931.schematron import check_rules, check_xsd, rule_findings
from idp_assets.logic.llm_fields import extract_with_llm, merge_llm_fields
from idp_assets.logic.numbers import parse_amount
from idp_assets.logic.tables import ocr_layout_text, pdf_layout_text
from idp_assets.logic.textguard import bounded_pages
from idp_assets.logic.validation import check_line_items_sum
from idp_assets.models import ExtractedFields, OcrPages, RawPages, Tables
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
    "credit_note_sign": "totals_sign",
    "bic_format": "iban_checksum",
    "einvoice_matches_print": "einvoice_matches_print",
    "einvoice_invoice_number_in_text": "einvoice_matches_print",
    "einvoice_total_in_text": "einvoice_matches_print",
    "einvoice_parse": "einvoice_matches_print",
    "llm_agrees": "llm_agrees",
    "en16931": "en16931_rules",
    "en16931_rules": "en16931_rules",
    "einvoice_xsd": "en16931_rules",
}
CHECK_DESCRIPTIONS = {
    "line_items_sum": "e-invoice line items add up to the net total (rounding tolerance)",
    "net_plus_tax_is_gross": "net + tax = gross total (rounding tolerance)",
    "tax_rate_plausible": "tax = net x one of the country's exact VAT rates (logic/data/vat_rates.json)",
    "dates_valid": "invoice/due dates are valid ISO dates, not in the future, due on/after issue",
    "iban_checksum": "the IBAN passes the ISO 13616 country length and mod-97 check (python-stdnum)",
    "vat_id_format": "the VAT ID passes its country's format and check digits (python-stdnum)",
    "currency_known": "the currency is an ISO 4217 code",
    "totals_sign": "a negative total only on a credit note (UNTDID 1001 type 381 ...)",
    "einvoice_matches_print": "the embedded e-invoice XML agrees with the printed page",
    "llm_agrees": "the optional LLM extraction (idp-fields) agrees with the rules",
    "en16931_rules": "the e-invoice XML passes the official EN 16931 business rules (Schematron) and its XSD",
}
# cross-checks against "the print" say nothing when the page is our own rendering of the XML
_PRINT_CHECKS = ("einvoice_matches_print", "einvoice_invoice_number_in_text", "einvoice_total_in_text")


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
        failed = [{k: f[k] for k in ("rule", "flag", "message", "location") if f.get(k)} if "flag" in f
                  else f["message"] for f in findings if not f.get("ok", True)]
        out.append(AssetCheckResult(
            asset_key=AssetKey("extracted_fields"), check_name=name, passed=not failed,
            severity=AssetCheckSeverity.WARN,
            metadata={"findings": len(findings), "failed": MetadataValue.json(failed[:20])},
        ))
    return out


def einvoice_rule_findings(einvoice: dict | None, store: DocumentStore) -> list[dict]:
    """The official EN 16931 rules and the XSD over the document's e-invoice XML: one finding per
    failed rule (``rule`` ``en16931:<id>``, ``flag``, ``message``, ``location``) plus a summary."""
    if not einvoice or einvoice.get("error") or not einvoice.get("xml_key"):
        return []
    xml = store.get(einvoice["xml_key"])
    what = f"{einvoice.get('filename') or 'e-invoice XML'} ({einvoice.get('format')})"
    out = rule_findings(check_rules(xml), what=what)
    ok, errors, schema = check_xsd(xml)
    if ok is not None:
        out.append({"rule": "einvoice_xsd", "ok": bool(ok), "flag": "information" if ok else "warning",
                    "message": f"{what}: {'valid' if ok else 'NOT valid'} against the {schema} XSD"
                               + ("" if ok else ": " + "; ".join(errors[:3]))[:600]})
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
@budgeted("extracted_fields")
def extracted_fields(
    context: AssetExecutionContext, raw_pages: RawPages, ocr_pages: OcrPages, normalized_tables: Tables,
    document_store: DocumentStore, llm_router: LlmRouter,
):
    born_digital = [p.number for p in ocr_pages.pages if p.engine == "text_layer"]
    with timed() as t:
        def layout():  # only built when the page text leaves a field missing
            pdf = (pdf_layout_text(page_source(document_store, raw_pages), born_digital)
                   if raw_pages.kind == "pdf" and born_digital else [])
            # born-digital pages: pdfplumber's visual lines; OCR'd pages: their words regrouped into lines
            return [pdf[i] if p.engine == "text_layer" and i < len(pdf) else ocr_layout_text(p.words)
                    for i, p in enumerate(ocr_pages.pages)]
        found = extract_fields(
            bounded_pages([p.text for p in ocr_pages.pages]),  # rules see at most MAX_RULE_CHARS
            [p.words for p in ocr_pages.pages],
            raw_pages.embedded_invoice,
            [p.confidence for p in ocr_pages.pages],
            layout_text_by_page=layout,
        )
        fields, validation = dict(found.fields), list(found.validation)
        if llm_router.enabled:
            fields, validation = _with_llm(context, llm_router, ocr_pages.text, fields, validation,
                                           raw_pages.embedded_invoice)
        einv = raw_pages.embedded_invoice
        if einv and einv.get("standalone"):
            validation = [v for v in validation if str(v.get("rule", "")).split(":", 1)[0] not in _PRINT_CHECKS]
        validation += einvoice_rule_findings(einv, document_store)
    result = ExtractedFields(document_id=ocr_pages.document_id, fields=fields,
                             validation=validation
                             + line_items_validation(fields, normalized_tables, raw_pages.embedded_invoice),
                             invoice=einv.get("en16931") if einv and not einv.get("error") else None)
    yield Output(
        result,
        metadata={
            "fields": MetadataValue.json({k: {"value": v.value, "confidence": v.confidence, "source": v.source,
                                              "needs_review": v.needs_review}
                                          for k, v in result.fields.items()}),
            # confidence below the fitted model's review threshold, or no fitted model for the value
            "fields_needing_review": MetadataValue.json(sorted(k for k, v in result.fields.items() if v.needs_review)),
            "validation_failed": sum(1 for v in result.validation if not v.get("ok", True)),
            "seconds": t["seconds"],
        },
    )
    bad = [k for k, v in result.fields.items() if not 0.0 <= v.confidence <= 1.0]
    yield check_result("extracted_fields", "confidence_in_range", not bad, fields_out_of_range=bad)
    yield from validation_check_results(result.validation)
