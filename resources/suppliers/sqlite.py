"""Embedded supplier master: SQLite file, rapidfuzz for name similarity (no server needed)."""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from pathlib import Path

from rapidfuzz import fuzz

from idp_assets.logic.suppliers import Supplier, TokenWeights, normalize_name
from resources.migrations import migrations
from resources.suppliers.base import (
    DECISION_COLUMNS, ID_KINDS, ROW_COLUMNS, MasterBackend, content_version, merge_learned, rank_by_tokens, row_tokens,
    to_supplier,
)

_CACHE: dict[tuple[str, str], tuple] = {}  # (path, version) -> (suppliers by id, choices, ids, weights)
_LOCK = threading.Lock()


class SqliteBackend(MasterBackend):
    kind = "sqlite"

    def __init__(self, path: str):
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    def _conn(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys = ON")
        return con

    def migrate(self) -> int:
        """Bring the schema up to date; one migrator at a time per file (threads of `idp process
        --workers`, run workers of several processes starting on a fresh master at once)."""
        with _LOCK, open(f"{self.path}.migrate.lock", "a+") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                return self._migrate()
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _migrate(self) -> int:
        con = self._conn()
        try:
            con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                        "applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
            con.commit()
            done = {r[0] for r in con.execute("SELECT version FROM schema_migrations")}
            legacy = con.execute("SELECT 1 FROM sqlite_master WHERE name='suppliers'").fetchone() and not done
            for v, name, sql in migrations("sqlite"):
                if v in done:
                    continue
                if legacy and v == 1:  # a master written before migrations existed: bring it to version 1
                    sql = _LEGACY_TO_1
                con.executescript("BEGIN;\n" + sql + f"\nINSERT INTO schema_migrations(version, name) VALUES ({v}, '{name}');\nCOMMIT;")
            if 4 not in done and con.execute("SELECT count(*) FROM suppliers").fetchone()[0]:
                with con:  # fill the trigram index of a master written before migration 4
                    _rebuild_trigrams(con)
            if 2 not in done and con.execute("SELECT count(*) FROM suppliers").fetchone()[0]:
                with con:  # backfill the tokens of a master written before migration 2
                    rows = [dict(r) for r in con.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers")]
                    con.executemany("INSERT OR IGNORE INTO supplier_tokens VALUES (?,?)",
                                    [(t, r["supplier_id"]) for r in rows for t in row_tokens(r)])
            return max([v for v, _, _ in migrations("sqlite")], default=0)
        finally:
            con.close()

    def upsert(self, rows: list[dict]) -> str:
        return self._write(rows)

    def _write(self, rows: list[dict], decision: dict | None = None) -> str:
        """Rows upserted (learned aliases merged in) and/or one review decision stored, in ONE transaction."""
        con = self._conn()
        try:
            with con:  # one transaction: everything or nothing
                if decision is not None:
                    doc = decision["document_id"]
                    old = [r[0] for r in con.execute("SELECT DISTINCT supplier_id FROM supplier_learned WHERE document_id=?", (doc,))]
                    con.execute("DELETE FROM supplier_learned WHERE document_id=?", (doc,))
                    con.execute("INSERT INTO supplier_decisions VALUES (?,?,?,?,?,?) ON CONFLICT(document_id) DO UPDATE SET "
                                "decision=excluded.decision, supplier_id=excluded.supplier_id, evidence=excluded.evidence, "
                                "decided_by=excluded.decided_by, decided_at=excluded.decided_at",
                                [decision[c] for c in DECISION_COLUMNS])
                    con.executemany("INSERT OR IGNORE INTO supplier_learned VALUES (?,?,?,?)",
                                    [(sid, k, v, doc) for sid, k, v in decision.get("learned", [])])
                    touched = set(old) | {sid for sid, _, _ in decision.get("learned", [])}
                    if touched:  # re-derive the aliases of the suppliers whose learned set changed
                        qs = ",".join("?" * len(touched))
                        base = [dict(x) for x in con.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers WHERE supplier_id IN ({qs})",
                                                             sorted(touched))]
                        rows = base + list(rows)
                ids = sorted({r["supplier_id"] for r in rows})
                learned: dict[str, list] = {}
                for k in range(0, len(ids), 900):
                    chunk = ids[k:k + 900]
                    for sid, kind, value in con.execute(
                            f"SELECT supplier_id, kind, value FROM supplier_learned WHERE supplier_id IN ({','.join('?' * len(chunk))})", chunk):
                        learned.setdefault(sid, []).append((kind, value))
                rows = merge_learned(list({r["supplier_id"]: r for r in rows}.values()), learned)
                if rows:
                    cols = ",".join(ROW_COLUMNS)
                    upd = ",".join(f"{c}=excluded.{c}" for c in ROW_COLUMNS[1:])
                    con.executemany(f"INSERT INTO suppliers({cols}) VALUES ({','.join('?' * len(ROW_COLUMNS))}) "
                                    f"ON CONFLICT(supplier_id) DO UPDATE SET {upd}", [[r.get(c) if c != "id_checks" else (r.get(c) or "")
                                                                                     for c in ROW_COLUMNS] for r in rows])
                    sids = [(r["supplier_id"],) for r in rows]
                    con.executemany("DELETE FROM supplier_aliases WHERE supplier_id=?", sids)
                    con.executemany("DELETE FROM supplier_tokens WHERE supplier_id=?", sids)
                    con.executemany("INSERT OR IGNORE INTO supplier_tokens VALUES (?,?)",
                                    [(t, r["supplier_id"]) for r in rows for t in row_tokens(r)])
                    con.executemany("INSERT OR IGNORE INTO supplier_aliases VALUES (?,?,?)",
                                    [(r["supplier_id"], a, normalize_name(a)) for r in rows for a in r["aliases"].split("|") if a])
                    if len(rows) > 50:  # FTS5 deletes by an unindexed column scan: a bulk write rebuilds the index
                        _rebuild_trigrams(con)
                    else:
                        con.executemany("DELETE FROM supplier_names_trgm WHERE supplier_id=?", sids)
                        con.executemany("INSERT INTO supplier_names_trgm(name, supplier_id) VALUES (?,?)",
                                        [(n, r["supplier_id"]) for r in rows
                                         for n in dict.fromkeys([r["name_norm"]] + [normalize_name(a) for a in r["aliases"].split("|") if a])
                                         if n])
                allrows = [dict(x) for x in con.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers")]
                decisions = [tuple(x) for x in con.execute(f"SELECT {','.join(DECISION_COLUMNS)} FROM supplier_decisions")]
                version = content_version(allrows, decisions)
                con.execute("INSERT INTO master_meta VALUES ('version', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                            (version,))
            return version
        finally:
            con.close()

    def record_decision(self, decision: dict, new_row: dict | None = None) -> str:
        return self._write([new_row] if new_row else [], decision)

    def decisions(self) -> list[dict]:
        con = self._conn()
        try:
            return [dict(r) for r in con.execute(f"SELECT {','.join(DECISION_COLUMNS)} FROM supplier_decisions ORDER BY document_id")]
        finally:
            con.close()

    def get(self, supplier_id: str) -> Supplier | None:
        return self._cache()[0].get(supplier_id)

    def decision_for(self, document_id: str, version: str | None = None) -> dict | None:
        con = self._conn()
        try:
            r = con.execute(f"SELECT {','.join(DECISION_COLUMNS)} FROM supplier_decisions WHERE document_id=?", (document_id,)).fetchone()
            return dict(r) if r else None
        finally:
            con.close()

    def existing_ids(self, ids: list[str]) -> set[str]:
        out: set[str] = set()
        con = self._conn()
        try:
            for k in range(0, len(ids), 900):
                chunk = ids[k:k + 900]
                out |= {r[0] for r in con.execute(f"SELECT supplier_id FROM suppliers WHERE supplier_id IN ({','.join('?' * len(chunk))})", chunk)}
        finally:
            con.close()
        return out

    def by_postcode(self, postcodes: list[str], max_per_code: int = 30) -> list[Supplier]:
        if not postcodes:
            return []
        by_id = self._cache()[0]
        con = self._conn()
        try:
            out = []
            for pc in postcodes:
                rows = con.execute("SELECT supplier_id FROM suppliers WHERE postal_code=? LIMIT ?", (pc, max_per_code + 1)).fetchall()
                if len(rows) <= max_per_code:
                    out += [by_id[r[0]] for r in rows if r[0] in by_id]
            return out
        finally:
            con.close()

    def rows(self) -> list[dict]:
        con = self._conn()
        try:
            return [dict(r) for r in con.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers ORDER BY supplier_id")]
        finally:
            con.close()

    def version(self) -> str:
        con = self._conn()
        try:
            r = con.execute("SELECT value FROM master_meta WHERE key='version'").fetchone()
            return r[0] if r else content_version([])
        finally:
            con.close()

    def count(self) -> int:
        con = self._conn()
        try:
            return con.execute("SELECT count(*) FROM suppliers").fetchone()[0]
        finally:
            con.close()

    def by_identifiers(self, ids: dict[str, set[str]]) -> list[tuple[Supplier, str, str]]:
        out = []
        con = self._conn()
        try:
            for kind in ID_KINDS:
                for v in sorted(ids.get(kind, ())):
                    # vat_id and tax_number columns hold identifiers of many schemes: look a value up in both
                    cols = ("vat_id", "tax_number") if kind in ("vat_id", "tax_number") else (kind,)
                    where = " OR ".join(f"{c}=?" for c in cols)
                    for r in con.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers WHERE {where} ORDER BY supplier_id",
                                         (v,) * len(cols)):
                        out.append((to_supplier(dict(r)), kind, v))
                    for r in con.execute(f"SELECT {','.join('s.' + c for c in ROW_COLUMNS)} FROM supplier_learned l "
                                         "JOIN suppliers s ON s.supplier_id = l.supplier_id WHERE l.kind IN ('vat_id','tax_number','iban','gln') "
                                         "AND l.value=? ORDER BY s.supplier_id", (v,)):
                        out.append((to_supplier(dict(r)), kind, v))
        finally:
            con.close()
        return out

    def _cache(self):
        v = self.version()
        key = (self.path, v)
        with _LOCK:
            if key not in _CACHE:
                rows = self.rows()
                by_id = {r["supplier_id"]: to_supplier(r) for r in rows}
                choices, owners = [], []
                for r in rows:
                    choices.append(r["name_norm"])
                    owners.append(r["supplier_id"])
                    for a in (r["aliases"] or "").split("|"):
                        if a:
                            choices.append(normalize_name(a))
                            owners.append(r["supplier_id"])
                weights = TokenWeights.from_norms(r["name_norm"] for r in rows)
                toks = {r["supplier_id"]: row_tokens(r) for r in rows}
                for k in [k for k in _CACHE if k[0] == self.path]:
                    del _CACHE[k]
                _CACHE[key] = (by_id, choices, owners, weights, toks)
            return _CACHE[key]

    def name_candidates(self, queries: list[str], limit: int, pool: int = 25, scan: int = 300) -> list[Supplier]:
        """Trigram index first (FTS5: the `scan` names sharing the most / rarest trigrams with a query word),
        then rapidfuzz partial_ratio >= 60 on those, top `limit` per query."""
        by_id = self._cache()[0]
        best: dict[str, float] = {}
        con = self._conn()
        try:
            for q in queries:
                grams = {g for w in q.split() for g in (w[i:i + 3] for i in range(len(w) - 2))}
                if not grams:
                    continue
                match = " OR ".join('"' + g.replace('"', '""') + '"' for g in sorted(grams))
                rows = con.execute("SELECT supplier_id, name FROM supplier_names_trgm WHERE supplier_names_trgm MATCH ? "
                                   "ORDER BY rank LIMIT ?", (match, scan)).fetchall()
                scored = sorted(((fuzz.partial_ratio(q, name), sid) for sid, name in rows), reverse=True)
                per: dict[str, float] = {}
                for score, sid in scored:
                    if score < 60 or len(per) >= limit:
                        break
                    per.setdefault(sid, score)
                for sid, score in per.items():
                    best[sid] = max(best.get(sid, 0.0), score)
        finally:
            con.close()
        top = sorted(best.items(), key=lambda x: (-x[1], x[0]))[:pool]
        return [by_id[sid] for sid, _ in top if sid in by_id]

    def token_candidates(self, tokens: list[str], pool: int = 25, weights: TokenWeights | None = None) -> list[Supplier]:
        if not tokens:
            return []
        by_id, weights = self._cache()[0], self._cache()[3]
        hits: dict[str, set[str]] = {}
        con = self._conn()
        try:
            qs = ",".join("?" * len(tokens))
            for tok, sid in con.execute(f"SELECT token, supplier_id FROM supplier_tokens WHERE token IN ({qs})", tokens):
                hits.setdefault(sid, set()).add(tok)
        finally:
            con.close()
        toks = self._cache()[4]
        return [by_id[sid] for sid in rank_by_tokens(hits, weights, pool, {sid: toks.get(sid, set()) for sid in hits})
                if sid in by_id]

    def all_suppliers(self) -> list[Supplier]:
        return list(self._cache()[0].values())

    def token_weights(self, version: str | None = None) -> TokenWeights:
        return self._cache()[3]


def _rebuild_trigrams(con: sqlite3.Connection) -> None:
    con.execute("DELETE FROM supplier_names_trgm")
    con.execute("INSERT INTO supplier_names_trgm(name, supplier_id) SELECT name_norm, supplier_id FROM suppliers "
                "UNION SELECT alias_norm, supplier_id FROM supplier_aliases")


# the pre-migration embedded schema (no gln, no alias table, no meta): add what version 1 has
_LEGACY_TO_1 = """
ALTER TABLE suppliers ADD COLUMN gln TEXT;
CREATE INDEX IF NOT EXISTS suppliers_gln ON suppliers(gln);
CREATE INDEX IF NOT EXISTS suppliers_name_norm ON suppliers(name_norm);
CREATE TABLE supplier_aliases (
  supplier_id TEXT NOT NULL REFERENCES suppliers(supplier_id) ON DELETE CASCADE,
  alias TEXT NOT NULL, alias_norm TEXT NOT NULL, PRIMARY KEY (supplier_id, alias));
CREATE INDEX supplier_aliases_norm ON supplier_aliases(alias_norm);
CREATE TABLE master_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
