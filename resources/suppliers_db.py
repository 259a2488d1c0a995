"""Supplier master resource: one interface over the embedded SQLite back end (default, no server)
and PostgreSQL (production; `dsn` set, e.g. from IDP_SUPPLIERS_DSN).

Matching thresholds live here so that a deployment can change them without code; the defaults
are calibrated on the development corpus (`idp bench suppliers quality`, README "Supplier recognition").
"""

from __future__ import annotations

import csv
import io

from dagster import ConfigurableResource, EnvVar
from pydantic import Field

from idp_assets.logic.suppliers import (
    DocEvidence, MatchDecision, Supplier, Thresholds, decide_evidence, make_llm_adjudicator, normalize_name,
    query_strings,
)
from resources.suppliers.base import CSV_COLUMNS, MasterBackend, parse_csv

__all__ = ["CSV_COLUMNS", "ImportReport", "SupplierMaster"]


class ImportReport(dict):
    """{imported, skipped: [{line, supplier_id, error}], version}"""


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
        """Upsert rows in ONE transaction; bad rows are reported with line numbers and skipped."""
        good, bad = parse_csv(text)
        b = self.backend()
        version = b.upsert(good) if good else b.version()
        return ImportReport(imported=len(good), skipped=bad, version=version)

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
        weights = b.token_weights(version)
        adjudicate = make_llm_adjudicator(self.llm_model) if self.llm_model else None
        ids = ev.all_ids
        hits = b.by_identifiers(ids) if any(ids.values()) else []
        doc_tokens = {t for toks in ev.lines for t in toks}
        if ev.supplier_name:
            doc_tokens.update(normalize_name(ev.supplier_name).split())
        cands = b.token_candidates(weights.rare_tokens(doc_tokens, self.rare_token_df), self.candidate_pool, weights)
        d = decide_evidence(ev, hits, cands, th, adjudicate=None, weights=weights)
        if d.supplier is not None and d.score >= th.accept:
            return d
        # stage 2: similarity search for the words of name-like lines that the master does not know
        # exactly (OCR variants, unknown names); known words were already looked up in stage 1
        queries = weights.unknown_words(query_strings(ev, self.max_queries), self.max_words)
        if not queries:
            return d
        seen = {s.supplier_id for s in cands}
        cands += [s for s in b.name_candidates(list(dict.fromkeys(queries)), th.retrieve_limit, self.candidate_pool)
                  if s.supplier_id not in seen]
        return decide_evidence(ev, hits, cands, th, adjudicate=adjudicate, weights=weights)
