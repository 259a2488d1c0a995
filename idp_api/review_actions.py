"""A reviewer's decision on a document: stored as a correction (who, when, old, new) and, for the
supplier, handed to the supplier master's review loop (the same calls as `idp suppliers confirm /
reject / create-from`), so the seller's name becomes an alias and the supplier's next documents match."""

from __future__ import annotations

import re

from idp_api.models import ReviewRequest
from idp_api.reviews import Correction
from idp_assets.models import PartyEvidence
from idp_assets.suppliers import latest_match_evidence

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ReviewError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _field_view(f: dict | None) -> dict | None:
    return {k: f.get(k) for k in ("value", "confidence", "source")} if f else None


def _seller(svc, doc_id: str, record: dict) -> tuple[PartyEvidence, str | None]:
    """The seller evidence recorded with the latest match; a reviewer's supplier_name correction names it."""
    seller, matched = latest_match_evidence(svc.instance, doc_id)
    seller = seller or PartyEvidence()
    name = (record.get("fields") or {}).get("supplier_name") or {}
    if name.get("source") == "review" and name.get("value"):
        seller = seller.model_copy(update={"name": name["value"]})
    return seller, matched


def apply_review(svc, doc_id: str, req: ReviewRequest, who: str) -> Correction:
    record = svc.catalog.export_record(doc_id)
    if record is None:
        raise ReviewError(409, "the document has no export yet: review it once it is materialized")
    fields = record.get("fields") or {}
    master = svc.master
    if req.target == "field":
        if not _FIELD_NAME.match(req.name or ""):
            raise ReviewError(422, "name must be a field name (lower case, digits, _)")
        current = fields.get(req.name)
        if req.action == "correct":
            if req.value is None or not req.value.strip():
                raise ReviewError(422, "a correction needs a value")
            new: dict | str | None = req.value.strip()
        elif req.action == "confirm":
            if current is None or current.get("value") is None:
                raise ReviewError(422, f"field {req.name!r} has no value to confirm")
            new = current.get("value")
        else:
            raise ReviewError(422, f"action {req.action!r} is not valid for a field (correct, confirm)")
        c = svc.reviews.add(doc_id, "field", req.name, req.action, _field_view(current), new, who)
        if req.name == "supplier_name":
            sm = record.get("supplier_match") or {}
            if sm.get("supplier_id"):  # a known supplier learns the corrected name as an alias
                seller, _ = _seller(svc, doc_id, svc.catalog.export_record(doc_id) or record)
                master.confirm(doc_id, sm["supplier_id"], seller, by=who)
    elif req.target == "supplier":
        sm = record.get("supplier_match") or {}
        old = {k: sm.get(k) for k in ("supplier_id", "name", "method")}
        seller, matched = _seller(svc, doc_id, record)
        if req.action == "confirm":
            sid = (req.value or "").strip()
            if not sid:
                raise ReviewError(422, "confirm needs the supplier id as value")
            try:
                master.confirm(doc_id, sid, seller, by=who)
            except ValueError as exc:
                raise ReviewError(422, str(exc)) from None
            s = master.backend().get(sid)
            new = {"supplier_id": sid, "name": s.name if s is not None else None}
        elif req.action == "create":
            if not seller.name:
                raise ReviewError(422, "the document names no seller: correct supplier_name first")
            d = master.create_from(doc_id, seller, by=who)
            new = {"supplier_id": d.supplier_id, "name": seller.name}
        elif req.action == "reject":
            master.reject(doc_id, matched or sm.get("supplier_id"), by=who)
            new = None
        else:
            raise ReviewError(422, f"action {req.action!r} is not valid for a supplier (confirm, create, reject)")
        c = svc.reviews.add(doc_id, "supplier", "", req.action, old, new, who)
    else:
        if req.action != "approve":
            raise ReviewError(422, "a document can only be approved")
        c = svc.reviews.add(doc_id, "document", "", "approve", {"review_reasons": record.get("review_reasons")},
                            None, who)
    svc.catalog.refresh(doc_id)
    return c
