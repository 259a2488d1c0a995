"""Supplier master resource: one interface over the embedded SQLite back end (default, no server)
and PostgreSQL (production; `dsn` set, e.g. from IDP_SUPPLIERS_DSN).

Matching thresholds live here so that a deployment can change them without code; the defaults
are calibrated on the development corpus (`idp bench suppliers quality`, README "Supplier recognition").
"""

from __future__ import annotations

import csv
import io

import hashlib
import json
import os
from datetime import datetime, timezone
from typing import Literal

from dagster import ConfigurableResource, EnvVar
from pydantic import BaseModel, Field

from idp_assets.models import PartyEvidence

from idp_assets.logic.suppliers import (
    DocEvidence, MatchDecision, Supplier, Thresholds, decide_evidence, make_llm_adjudicator, normalize_id,
    normalize_name, query_strings,
)
from resources.suppliers.base import CSV_COLUMNS, MasterBackend, parse_csv

__all__ = ["CSV_COLUMNS", "Decision", "ImportReport", "SupplierMaster"]


def _csv_cell(v) -> str:
    v = "" if v is None else str(v)
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v


class ImportIssue(BaseModel):
    line: int
    supplier_id: str | None = None
    message: str


class ImportReport(BaseModel):
    """Outcome of one master import: every CSV row is inserted, updated, or rejected with its line."""

    rows_read: int
    inserted: int
    updated: int
    rejected: list[ImportIssue] = Field(default_factory=list, description="lines that cannot be a supplier (no id/name)")
    warnings: list[ImportIssue] = Field(default_factory=list, description="kept rows with unverified identifiers etc.")
    version: str

    @property
    def imported(self) -> int:
        return self.inserted + self.updated


class Decision(BaseModel):
    """A person's decision on one document's supplier (review loop)."""

    document_id: str
    decision: Literal["confirm", "reject", "create"]
    supplier_id: str | None = None
    evidence: PartyEvidence = Field(default_factory=PartyEvidence)
    decided_by: str
    decided_at: str


def _value(v):
    return v.get_value() if isinstance(v, EnvVar) else v


class SupplierMaster(ConfigurableResource):
    path: str = Field(default="./.idp_suppliers.sqlite", description="SQLite file of the embedded master")
    dsn: str | None = Field(default=None, description="PostgreSQL DSN; when set, the master lives in PostgreSQL")
    pg_schema: str = Field(default="idp_suppliers", description="PostgreSQL schema of the master tables")
    accept: float = Field(default=Thresholds.accept, description="minimum name+address score for a name match")
    margin: float = Field(default=Thresholds.margin, description="minimum lead of the best candidate over the runner-up")
    id_name_corroboration: float = Field(default=Thresholds.id_name_corroboration,
                                         description="name similarity that confirms an identifier hit")
    retrieve_limit: int = Field(default=Thresholds.retrieve_limit, description="candidates per query string")
    max_queries: int = Field(default=8, description="name-like lines of a document used as similarity queries")
    candidate_pool: int = Field(default=20, description="candidates scored in full per retrieval path")
    max_words: int = Field(default=6, description="unknown words per document searched by similarity (stage 2)")
    rare_token_df: int = Field(default=200, description="a name token in at most this many master names counts as distinctive")
    trgm_threshold: float = Field(default=0.6, description="pg_trgm word_similarity threshold for candidate retrieval")
    max_postcodes: int = Field(default=4, description="postal codes of address lines looked up per document")
    postcode_pool: int = Field(default=30, description="a postal code shared by more suppliers is no evidence")
    llm_model: str | None = Field(default=None, description="LiteLLM task alias adjudicating close calls; None = off")
    llm_band: float = Field(default=Thresholds.llm_band, description="close call: best score within this band below accept")

    def backend(self) -> MasterBackend:
        dsn = _value(self.dsn)
        if dsn:
            from resources.suppliers.postgres import PostgresBackend

            return PostgresBackend(dsn, self.pg_schema, self.trgm_threshold)
        from resources.suppliers.sqlite import SqliteBackend

        return SqliteBackend(self.path)

    def thresholds(self) -> Thresholds:
        return Thresholds(accept=self.accept, margin=self.margin, id_name_corroboration=self.id_name_corroboration,
                          retrieve_limit=self.retrieve_limit, llm_band=self.llm_band)

    # ------------------------------------------------------------------ import / export

    def import_csv(self, text: str) -> ImportReport:
        """Upsert every row (by supplier_id) in ONE transaction; re-importing the same file changes nothing.
        Rows with unverified identifiers are kept (warnings); only lines without supplier_id/name are rejected."""
        good, bad, warns = parse_csv(text)
        b = self.backend()
        before = b.existing_ids([r["supplier_id"] for r in good]) if good else set()
        version = b.upsert(good) if good else b.version()
        n_lines = len({x["line"] for x in bad}) + len(good) + sum(1 for w in warns if "this line wins" in w["warning"])
        return ImportReport(
            rows_read=n_lines, inserted=sum(r["supplier_id"] not in before for r in good), updated=len(before),
            rejected=[ImportIssue(line=x["line"], supplier_id=x.get("supplier_id"), message=x["error"]) for x in bad],
            warnings=[ImportIssue(line=w["line"], supplier_id=w["supplier_id"], message=w["warning"]) for w in warns],
            version=version)

    # ------------------------------------------------------------------ review decisions

    @staticmethod
    def _who(by: str | None) -> str:
        return by or os.environ.get("IDP_USER") or os.environ.get("USER") or "unknown"

    def _decide(self, document_id: str, decision: str, supplier_id: str | None, evidence: PartyEvidence | None,
                by: str | None, new_row: dict | None = None) -> Decision:
        ev = evidence or PartyEvidence()
        learned: list[tuple[str, str, str]] = []
        if decision in ("confirm", "create") and supplier_id:
            if ev.name and decision == "confirm":
                learned.append((supplier_id, "alias", ev.name.strip()))
            for kind, vals in (("vat_id", ev.vat_ids), ("tax_number", ev.tax_numbers), ("iban", ev.ibans), ("gln", ev.glns)):
                learned += [(supplier_id, kind, normalize_id(v)) for v in vals if normalize_id(v)]
        d = Decision(document_id=document_id, decision=decision, supplier_id=supplier_id, evidence=ev,
                     decided_by=self._who(by), decided_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        rec = d.model_dump()
        rec["evidence"] = json.dumps(rec["evidence"], sort_keys=True, ensure_ascii=False)
        rec["learned"] = learned
        self.backend().record_decision(rec, new_row)
        return d

    def confirm(self, document_id: str, supplier_id: str, evidence: PartyEvidence | None = None, by: str | None = None) -> Decision:
        """The document's supplier is `supplier_id`: its seller name becomes an alias and its identifiers
        are learned, so the supplier's next documents match through them."""
        if not self.backend().existing_ids([supplier_id]):
            raise ValueError(f"supplier {supplier_id!r} is not in the master")
        return self._decide(document_id, "confirm", supplier_id, evidence, by)

    def reject(self, document_id: str, supplier_id: str | None = None, by: str | None = None) -> Decision:
        """The proposed supplier (`supplier_id`, or any match) is wrong for this document."""
        return self._decide(document_id, "reject", supplier_id, None, by)

    def create_from(self, document_id: str, evidence: PartyEvidence, by: str | None = None) -> Decision:
        """A new master supplier from the document's seller evidence (id 'N-' + hash of the document id)."""
        if not evidence.name:
            raise ValueError(f"document {document_id} has no seller name to create a supplier from")
        sid = "N-" + hashlib.sha1(document_id.encode()).hexdigest()[:10].upper()
        text = ("supplier_id,name,vat_id,tax_number,iban,street,postal_code,city,country,gln\n"
                + ",".join(_csv_cell(x) for x in (sid, evidence.name, (evidence.vat_ids or [""])[0],
                                                  (evidence.tax_numbers or [""])[0], (evidence.ibans or [""])[0],
                                                  evidence.street, evidence.postal_code, evidence.city, evidence.country,
                                                  (evidence.glns or [""])[0])) + "\n")
        rows, _, _ = parse_csv(text)
        return self._decide(document_id, "create", sid, evidence, by, new_row=rows[0])

    def decisions(self) -> list[Decision]:
        out = []
        for r in self.backend().decisions():
            out.append(Decision(**{**r, "evidence": PartyEvidence(**json.loads(r["evidence"] or "{}"))}))
        return out

    def export_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for r in self.backend().rows():
            w.writerow(["" if r.get(c) is None else r[c] for c in CSV_COLUMNS])
        return out.getvalue()

    # ------------------------------------------------------------------ lookups

    def by_identifiers(self, vat_ids=(), ibans=(), tax_numbers=(), glns=()) -> list[tuple[Supplier, str]]:
        ids = {"vat_id": set(vat_ids), "iban": set(ibans), "tax_number": set(tax_numbers), "gln": set(glns)}
        return [(s, kind) for s, kind, _ in self.backend().by_identifiers(ids)]

    def all_suppliers(self) -> list[Supplier]:
        from resources.suppliers.base import to_supplier

        return [to_supplier(r) for r in self.backend().rows()]

    def version(self) -> str:
        """Content hash of the master: matches record the master version they used."""
        return self.backend().version()

    def count(self) -> int:
        return self.backend().count()

    # ------------------------------------------------------------------ matching

    def match(self, ev: DocEvidence, backend: MasterBackend | None = None, version: str | None = None) -> MatchDecision:
        """Staged: identifiers + rare exact name tokens first (B-tree lookups); the trigram / fuzzy
        search over the document's name-like lines only when that stage decides nothing."""
        b = backend or self.backend()
        th = self.thresholds()
        version = version or b.version()
        weights = b.token_weights(version)
        adjudicate = make_llm_adjudicator(self.llm_model) if self.llm_model else None
        rejected: set[str] = set()
        dec = b.decision_for(ev.document_id, version) if ev.document_id else None
        if dec and dec["decision"] in ("confirm", "create"):
            s = b.get(dec["supplier_id"])
            if s is not None:
                return MatchDecision(s, 1.0, "decision", [f"{dec['decision']}ed by {dec['decided_by']} at {dec['decided_at']}"],
                                     [(s, 1.0)])
        if dec and dec["decision"] == "reject":
            rejected.add(dec["supplier_id"] or "")
        ids = ev.all_ids
        hits = [h for h in (b.by_identifiers(ids) if any(ids.values()) else []) if h[0].supplier_id not in rejected]
        doc_tokens = {t for toks in ev.lines for t in toks}
        if ev.supplier_name:
            doc_tokens.update(normalize_name(ev.supplier_name).split())
        cands = b.token_candidates(weights.rare_tokens(doc_tokens, self.rare_token_df), self.candidate_pool, weights)
        cands = [c for c in cands if c.supplier_id not in rejected]
        d = decide_evidence(ev, hits, cands, th, adjudicate=None, weights=weights)
        if dec and dec["decision"] == "reject" and not dec["supplier_id"] and d.supplier is not None:
            return MatchDecision(None, d.score, "needs_review", [f"match rejected by {dec['decided_by']}"] + d.evidence,
                                 d.candidates, needs_review=True)
        if d.supplier is not None and d.score >= th.accept:
            return d
        # stage 2: similarity search for the words of name-like lines that the master does not know
        # exactly (OCR variants, unknown names); known words were already looked up in stage 1
        queries = weights.unknown_words(query_strings(ev, self.max_queries), self.max_words)
        extra = b.name_candidates(list(dict.fromkeys(queries)), th.retrieve_limit, self.candidate_pool) if queries else []
        # address: suppliers at the document's postal codes (a code shared by many suppliers is skipped)
        extra += b.by_postcode(sorted(ev.address_postcodes)[: self.max_postcodes], self.postcode_pool)
        seen = {s.supplier_id for s in cands} | rejected
        extra = [s for s in extra if s.supplier_id not in seen]
        if not extra:
            return d
        cands += extra
        return decide_evidence(ev, hits, cands, th, adjudicate=adjudicate, weights=weights)
