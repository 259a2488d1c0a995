"""`supplier_matches`: link the document to the supplier master, or say the supplier is new."""


from dagster import AssetExecutionContext, Output, asset

from idp_assets.common import ASSET_GROUP, PARTITIONS, check_result, check_spec
from idp_assets.logic.suppliers import decide, find_identifiers
from idp_assets.models import ExtractedFields, OcrPages, SupplierCandidate, SupplierMatch
from resources.suppliers_db import SupplierMaster


def match_supplier(document_id: str, fields: ExtractedFields, text: str, master: SupplierMaster) -> SupplierMatch:
    ids = find_identifiers(text)
    for key in ("vat_id", "iban"):
        fv = fields.fields.get(key)
        if fv and fv.value:
            ids[key].add("".join(ch for ch in fv.value.upper() if ch.isalnum()))
    hits = master.by_identifiers(ids["vat_id"], ids["iban"])
    name_field = fields.fields.get("supplier_name")
    name = name_field.value if name_field else None
    d = decide(name, text, hits, master.all_suppliers() if name else [])
    cands = [SupplierCandidate(supplier_id=s.supplier_id, name=s.name, score=round(sc, 4)) for s, sc in d.candidates]
    if d.supplier is None:
        proposed = {"name": name, "vat_id": next(iter(sorted(ids["vat_id"])), None), "iban": next(iter(sorted(ids["iban"])), None)}
        return SupplierMatch(document_id=document_id, supplier_id=None, name=None, score=d.score, method="new",
                             evidence=d.evidence, candidates=cands, proposed=proposed)
    return SupplierMatch(document_id=document_id, supplier_id=d.supplier.supplier_id, name=d.supplier.name,
                         score=d.score, method=d.method, evidence=d.evidence, candidates=cands)


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="1",
    description="Supplier of the document from the master (identifiers first, then name similarity), or 'new'.",
    check_specs=[check_spec("supplier_matches", "score_in_range", "match score is in [0, 1]")],
)
def supplier_matches(
    context: AssetExecutionContext, extracted_fields: ExtractedFields, ocr_pages: OcrPages, supplier_master: SupplierMaster
):
    m = match_supplier(ocr_pages.document_id, extracted_fields, ocr_pages.text, supplier_master)
    yield Output(m, metadata={"supplier_id": m.supplier_id or "", "method": m.method, "score": m.score,
                              "master_version": supplier_master.version()})
    yield check_result("supplier_matches", "score_in_range", 0.0 <= m.score <= 1.0, score=m.score)
