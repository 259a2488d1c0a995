"""Supplier master mirror and `supplier_matches`: link each document to the master, or say it is new.

`supplier_master` is an observable source asset whose data version is the master's content
version: every `supplier_matches` materialization records the master version it used (lineage),
and when an import changes the master, the next observation gives a new data version and Dagster
marks the older matches stale.
"""

from dagster import (
    AssetExecutionContext, AssetKey, AssetObservation, DataVersion, Output, asset, observable_source_asset,
)
from dagster._core.definitions.data_version import DATA_VERSION_TAG, extract_data_version_from_entry

from idp_assets.common import ASSET_GROUP, PARTITIONS, check_result, check_spec
from idp_assets.backfill import DOCUMENT_BACKFILL_POLICY
from idp_assets.logic.suppliers import build_evidence, normalize_id
from idp_assets.models import ExtractedFields, OcrPages, SupplierCandidate, SupplierMatch
from resources.suppliers_db import SupplierMaster

_FIELD_ID_KINDS = {"vat_id": "vat_id", "iban": "iban", "tax_number": "tax_number", "seller_tax_number": "tax_number",
                   "gln": "gln", "seller_gln": "gln"}


def evidence_from_fields(fields: ExtractedFields | None, text: str):
    """Matching evidence of one document: identifiers and name from the fields (the e-invoice XML
    counts as a declaration of the seller), everything printed in the text."""
    f = fields.fields if fields is not None else {}
    field_ids: dict[str, set[str]] = {}
    for key, kind in _FIELD_ID_KINDS.items():
        fv = f.get(key)
        if fv is not None and fv.value:
            field_ids.setdefault(kind, set()).add(normalize_id(fv.value))
    name_fv = f.get("supplier_name")
    name = name_fv.value if name_fv is not None and name_fv.value else None
    from_xml = bool(name_fv is not None and name_fv.source == "einvoice_xml")
    return build_evidence(text, name, name_from_xml=from_xml, field_ids=field_ids)


def match_supplier(document_id: str, fields: ExtractedFields | None, text: str, master: SupplierMaster,
                   backend=None, version: str | None = None) -> SupplierMatch:
    ev = evidence_from_fields(fields, text)
    d = master.match(ev, backend, version)
    cands = [SupplierCandidate(supplier_id=s.supplier_id, name=s.name, score=round(min(max(sc, 0.0), 1.0), 4))
             for s, sc in d.candidates]
    score = round(min(max(d.score, 0.0), 1.0), 4)
    if d.supplier is None:
        ids = ev.all_ids
        proposed = {
            "name": ev.supplier_name,
            "vat_id": next(iter(sorted(ids.get("vat_id", ()))), None),
            "iban": next(iter(sorted(ids.get("iban", ()))), None),
            "tax_number": next(iter(sorted(ids.get("tax_number", ()))), None),
            "needs_review": d.needs_review,
        }
        return SupplierMatch(document_id=document_id, supplier_id=None, name=None, score=score, method="new",
                             evidence=d.evidence, candidates=cands, proposed=proposed)
    return SupplierMatch(document_id=document_id, supplier_id=d.supplier.supplier_id, name=d.supplier.name,
                         score=score, method=d.method, evidence=d.evidence, candidates=cands)


MASTER_KEY = AssetKey("supplier_master")


@observable_source_asset(
    name="supplier_master",
    group_name=ASSET_GROUP,
    description="The supplier master (SQLite or PostgreSQL); data version = content version of the master.",
)
def supplier_master_asset(supplier_master: SupplierMaster):
    return DataVersion(supplier_master.backend().version())


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="2",
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    deps=[MASTER_KEY],
    description="Supplier of the document from the master (identifiers first, then name + address), or 'new'.",
    check_specs=[check_spec("supplier_matches", "score_in_range", "match score is in [0, 1]"),
                 check_spec("supplier_matches", "candidates_ranked", "candidates sorted by score, at most 3")],
)
def supplier_matches(
    context: AssetExecutionContext, extracted_fields: ExtractedFields, ocr_pages: OcrPages, supplier_master: SupplierMaster
):
    b = supplier_master.backend()
    version = b.version()
    # record the master version this match uses (the lineage edge supplier_master -> supplier_matches);
    # a later observation with another version marks this match stale
    rec = context.instance.get_latest_data_version_record(MASTER_KEY)
    seen = extract_data_version_from_entry(rec.event_log_entry) if rec is not None else None
    if seen is None or seen.value != version:
        context.log_event(AssetObservation(asset_key=MASTER_KEY, tags={DATA_VERSION_TAG: version},
                                           metadata={"backend": b.kind, "suppliers": b.count()}))
    m = match_supplier(ocr_pages.document_id, extracted_fields, ocr_pages.text, supplier_master, b, version)
    yield Output(m, metadata={"supplier_id": m.supplier_id or "", "method": m.method, "score": m.score,
                              "master_version": version, "master_backend": b.kind})
    yield check_result("supplier_matches", "score_in_range", 0.0 <= m.score <= 1.0, score=m.score)
    scores = [c.score for c in m.candidates]
    yield check_result("supplier_matches", "candidates_ranked", scores == sorted(scores, reverse=True) and len(scores) <= 3,
                       candidates=len(scores))
