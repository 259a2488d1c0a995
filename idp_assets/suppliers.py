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

from idp_assets.common import ASSET_GROUP, DOCUMENT_BACKFILL_POLICY, PARTITIONS, check_result, check_spec
from idp_assets.budget import budgeted
import json
import re

from idp_assets.logic.supplier_calibration import match_confidence
from idp_assets.logic.supplier_parties import split_parties
from idp_assets.logic.suppliers import DocEvidence, build_evidence, find_identifiers, name_similarity, normalize_id
from idp_assets.models import ExtractedFields, OcrPages, PartyEvidence, SupplierCandidate, SupplierMatch
from resources.suppliers_db import SupplierMaster

_FIELD_ID_KINDS = {"vat_id": "vat_id", "seller_vat_id": "vat_id", "tax_number": "tax_number",
                   "seller_tax_number": "tax_number", "iban": "iban", "gln": "gln", "seller_gln": "gln"}
_XML = "einvoice_xml"


def _value(f: dict, key: str):
    fv = f.get(key)
    return fv.value if fv is not None and fv.value else None


def parties_from_document(fields: ExtractedFields | None, text: str) -> tuple[DocEvidence, PartyEvidence, PartyEvidence | None]:
    """(matching evidence, the seller's evidence, the buyer's) of one document.

    Only the seller's evidence counts: identifiers the e-invoice XML declares for the SellerTradeParty,
    and from the print the lines that are not another party's block (buyer, delivery address, insurance
    intermediary - `split_parties`): letterhead, footer, the issuer's tax line, the bank block.  Field
    values read by rules from the print are not trusted for identifiers (they may be the buyer's); the
    text scan of the seller's lines finds the printed ones.
    """
    f = fields.fields if fields is not None else {}
    parties = split_parties(text)
    seller_text = parties.seller_text()
    xml_ids: dict[str, set[str]] = {}
    for key, kind in _FIELD_ID_KINDS.items():
        fv = f.get(key)
        if fv is not None and fv.value and fv.source == _XML:
            xml_ids.setdefault(kind, set()).add(normalize_id(fv.value))
    name_fv = f.get("supplier_name")
    name = name_fv.value if name_fv is not None and name_fv.value else None
    from_xml = bool(name_fv is not None and name_fv.source == _XML)
    others = list(parties.buyer_names) + list(parties.intermediary_names)
    buyer_xml = _value(f, "buyer_name")
    if buyer_xml:
        others.append(buyer_xml)
    if name and not from_xml and any(name_similarity(name, o) >= 0.85 for o in others):
        name = None  # the rule-read 'supplier' is a party named in a buyer/intermediary block
    ev = build_evidence(seller_text, name, name_from_xml=from_xml, field_ids=xml_ids, other_party_names=others)
    printed = ev.ids
    ids = {k: sorted(xml_ids.get(k, set())) or sorted(printed.get(k, set())) for k in ("vat_id", "tax_number", "iban", "gln")}
    street, pc, city = _address_of(seller_text)
    seller = PartyEvidence(name=name, vat_ids=ids["vat_id"], tax_numbers=ids["tax_number"], ibans=ids["iban"],
                           glns=ids["gln"], street=street, postal_code=pc, city=city,
                           source=_XML if from_xml or xml_ids else "print")
    buyer = None
    buyer_text = parties.role_text("buyer")
    if buyer_xml or parties.buyer_names or buyer_text:
        bids = find_identifiers(buyer_text)
        buyer = PartyEvidence(name=buyer_xml or (parties.buyer_names[0] if parties.buyer_names else None),
                              vat_ids=sorted(bids["vat_id"]), tax_numbers=sorted(bids["tax_number"]),
                              source=_XML if buyer_xml else "print")
    return ev, seller, buyer


_ADDR_LINE = re.compile(r"^\s*(?:[A-Z]{1,2}[- ])?(\d{4,5})\s+([^\W\d_][\w .'-]{1,40})$")


def _address_of(text: str) -> tuple[str | None, str | None, str | None]:
    """(street, postal code, city) of the first 'postcode city' line of the seller's text and the line above."""
    lines = [ln.strip() for ln in (text or "").splitlines()]
    for k, ln in enumerate(lines[:60]):
        m = _ADDR_LINE.match(ln)
        if m:
            street = lines[k - 1] if k > 0 and re.search(r"\d", lines[k - 1]) and len(lines[k - 1]) <= 60 else None
            return street, m.group(1), m.group(2).strip()
    return None, None, None


def evidence_from_fields(fields: ExtractedFields | None, text: str):
    """Matching evidence of one document (the seller's party only)."""
    return parties_from_document(fields, text)[0]


def match_supplier(document_id: str, fields: ExtractedFields | None, text: str, master: SupplierMaster,
                   backend=None, version: str | None = None) -> SupplierMatch:
    ev, seller, buyer = parties_from_document(fields, text)
    ev.document_id = document_id
    d = master.match(ev, backend, version)
    cands = [SupplierCandidate(supplier_id=s.supplier_id, name=s.name, score=round(min(max(sc, 0.0), 1.0), 4))
             for s, sc in d.candidates]
    score = round(min(max(d.score, 0.0), 1.0), 4)
    if d.supplier is None:
        # the proposed record is built only from the seller's own evidence (XML seller party, seller's lines)
        proposed = {"name": seller.name, "vat_id": (seller.vat_ids or [None])[0], "iban": (seller.ibans or [None])[0],
                    "tax_number": (seller.tax_numbers or [None])[0], "street": seller.street,
                    "postal_code": seller.postal_code, "city": seller.city, "needs_review": d.needs_review}
        return SupplierMatch(document_id=document_id, supplier_id=None, name=None, score=score,
                             method="needs_review" if d.needs_review else "new", evidence=d.evidence, candidates=cands,
                             proposed=proposed, seller=seller, buyer=buyer)
    return SupplierMatch(document_id=document_id, supplier_id=d.supplier.supplier_id, name=d.supplier.name,
                         score=score, method=d.method, evidence=d.evidence, candidates=cands,
                         confidence=match_confidence(d.method, score, d.candidates), seller=seller, buyer=buyer)


MASTER_KEY = AssetKey("supplier_master")


def latest_match_evidence(instance, document_id: str) -> tuple[PartyEvidence | None, str | None]:
    """(seller evidence, matched supplier_id) recorded with the latest supplier_matches of a document."""
    from dagster import AssetRecordsFilter

    recs = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("supplier_matches"), asset_partitions=[document_id]), limit=1).records
    if not recs:
        return None, None
    md = recs[0].asset_materialization.metadata
    seller = md.get("seller")
    sid = md.get("supplier_id")
    ev = PartyEvidence(**json.loads(seller.value)) if seller is not None and seller.value else None
    return ev, (sid.value or None) if sid is not None else None


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
    code_version="3",
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    deps=[MASTER_KEY],
    description="Supplier of the document from the master (identifiers first, then name + address), or 'new'.",
    check_specs=[check_spec("supplier_matches", "score_in_range", "match score is in [0, 1]"),
                 check_spec("supplier_matches", "candidates_ranked", "candidates sorted by score, at most 3")],
)
@budgeted("supplier_matches")
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
                              "master_version": version, "master_backend": b.kind,
                              # the seller's evidence: `idp suppliers confirm/create-from` learn from it
                              "seller": json.dumps(m.seller.model_dump() if m.seller else {}, ensure_ascii=False),
                              "buyer": (m.buyer.name or "") if m.buyer else ""})
    yield check_result("supplier_matches", "score_in_range", 0.0 <= m.score <= 1.0, score=m.score)
    scores = [c.score for c in m.candidates]
    yield check_result("supplier_matches", "candidates_ranked", scores == sorted(scores, reverse=True) and len(scores) <= 3,
                       candidates=len(scores))
