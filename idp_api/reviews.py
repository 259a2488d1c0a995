"""Reviewers' corrections, keyed by document id, outside the asset outputs.

A correction is stored with who, when, the old and the new value.  It is applied whenever an export
is served (:func:`apply_corrections`), so it survives re-processing of the document: the pipeline
rewrites its export, the corrections stay here and are laid over it again.

Targets:
* ``field``    - action ``correct`` (new value) or ``confirm`` (the extracted value is right);
* ``supplier`` - ``confirm`` (a master supplier), ``create`` (a new supplier from the seller evidence) or
                 ``reject`` (the proposed supplier is wrong); the decision also goes to the supplier master
                 (`SupplierMaster.confirm/create_from/reject`), which learns the seller name as an alias;
* ``document`` - ``approve``: the document-level review reasons (e.g. EN 16931 rule failures) were seen.

In the export a reviewed field reads ``{"value", "confidence": null, "source": "review", "needs_review": false,
"review": {by, at, action, previous: {value, confidence, source}}}``: a person's decision has no model
confidence, the machine's reading stays under ``previous``.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel

from idp_api.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id TEXT NOT NULL,
    target      TEXT NOT NULL CHECK (target IN ('field', 'supplier', 'document')),
    name        TEXT NOT NULL,
    action      TEXT NOT NULL,
    old_value   TEXT,
    new_value   TEXT,
    reviewer    TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS corrections_document ON corrections (document_id, id);
"""

Target = Literal["field", "supplier", "document"]
Action = Literal["correct", "confirm", "reject", "create", "approve"]
_ACTIONS = {"field": {"correct", "confirm"}, "supplier": {"confirm", "reject", "create"}, "document": {"approve"}}


class Correction(BaseModel):
    id: int
    document_id: str
    target: Target
    name: str
    action: Action
    old_value: dict | str | None
    new_value: dict | str | None
    reviewer: str
    at: str


class ReviewStore:
    def __init__(self, db: Database):
        self.db = db
        db.executescript(SCHEMA)

    def add(self, document_id: str, target: str, name: str, action: str, old, new, reviewer: str) -> Correction:
        if action not in _ACTIONS.get(target, ()):
            raise ValueError(f"action {action!r} is not valid for a {target}")
        at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self.db.transaction() as con:
            cur = con.execute(
                "INSERT INTO corrections (document_id, target, name, action, old_value, new_value, reviewer, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (document_id, target, name, action, json.dumps(old, ensure_ascii=False),
                 json.dumps(new, ensure_ascii=False), reviewer, at))
            cid = cur.lastrowid
        return self.for_document(document_id, since_id=cid - 1)[0]

    def for_document(self, document_id: str, since_id: int = 0) -> list[Correction]:
        with self.db.connect() as con:
            rows = con.execute("SELECT * FROM corrections WHERE document_id = ? AND id > ? ORDER BY id",
                               (document_id, since_id)).fetchall()
        return [Correction(**{**dict(r), "old_value": json.loads(r["old_value"]) if r["old_value"] else None,
                              "new_value": json.loads(r["new_value"]) if r["new_value"] else None}) for r in rows]

    def reviewed_documents(self) -> set[str]:
        with self.db.connect() as con:
            return {r[0] for r in con.execute("SELECT DISTINCT document_id FROM corrections")}


def _review_info(c: Correction, previous: dict | None) -> dict:
    return {"by": c.reviewer, "at": c.at, "action": c.action, "correction_id": c.id, "previous": previous}


def apply_corrections(record: dict, corrections: list[Correction]) -> dict:
    """The export record with the corrections laid over it (the latest one per field wins)."""
    if not corrections:
        return record
    out = copy.deepcopy(record)
    fields = out.setdefault("fields", {})
    for c in corrections:  # in id order: a later correction of the same field replaces an earlier one
        if c.target == "field":
            machine = record.get("fields", {}).get(c.name)
            previous = ({k: machine.get(k) for k in ("value", "confidence", "source")} if machine else None)
            value = c.new_value if c.action == "correct" else (machine or {}).get("value")
            fields[c.name] = {"value": value, "confidence": None, "source": "review",
                              "page": (machine or {}).get("page"), "raw": (machine or {}).get("raw"),
                              "needs_review": False, "review": _review_info(c, previous)}
        elif c.target == "supplier":
            machine = record.get("supplier_match") or {}
            previous = {k: machine.get(k) for k in ("supplier_id", "name", "method", "score", "confidence")}
            new = c.new_value if isinstance(c.new_value, dict) else {}
            sm = dict(out.get("supplier_match") or {})
            if c.action == "reject":
                sm.update({"supplier_id": None, "name": None, "method": "rejected"})
            else:
                sm.update({"supplier_id": new.get("supplier_id"), "name": new.get("name"), "method": "decision"})
            sm.update({"source": "review", "confidence": None, "review": _review_info(c, previous)})
            out["supplier_match"] = sm
        elif c.target == "document":
            out["review_approved"] = _review_info(c, None)
    out["review_history"] = [c.model_dump(exclude={"document_id"}) for c in corrections]
    return out


def pending_review(record: dict) -> dict:
    """What still needs a person in a (corrected) export: flagged fields, a supplier decision, document reasons."""
    fields = [k for k, f in (record.get("fields") or {}).items() if f.get("needs_review")]
    sm = record.get("supplier_match") or {}
    supplier = sm.get("source") != "review" and sm.get("method") in ("needs_review", "new")
    reasons = [] if record.get("review_approved") else list(record.get("review_reasons") or [])
    return {"fields": sorted(fields), "supplier": bool(supplier), "document_reasons": reasons,
            "needs_review": bool(fields or supplier or reasons)}
