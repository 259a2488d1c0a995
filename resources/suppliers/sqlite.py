"""Embedded supplier master: SQLite file, rapidfuzz for name similarity (no server needed)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from rapidfuzz import fuzz, process

from idp_assets.logic.suppliers import Supplier, TokenWeights, normalize_name
from resources.migrations import migrations
from resources.suppliers.base import (
    ID_KINDS, ROW_COLUMNS, MasterBackend, content_version, rank_by_tokens, row_tokens, to_supplier,
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
            if 2 not in done and con.execute("SELECT count(*) FROM suppliers").fetchone()[0]:
                with con:  # backfill the tokens of a master written before migration 2
                    rows = [dict(r) for r in con.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers")]
                    con.executemany("INSERT OR IGNORE INTO supplier_tokens VALUES (?,?)",
                                    [(t, r["supplier_id"]) for r in rows for t in row_tokens(r)])
            return max([v for v, _, _ in migrations("sqlite")], default=0)
        finally:
            con.close()

    def upsert(self, rows: list[dict]) -> str:
        con = self._conn()
        try:
            with con:  # one transaction: everything or nothing
                cols = ",".join(ROW_COLUMNS)
                upd = ",".join(f"{c}=excluded.{c}" for c in ROW_COLUMNS[1:])
                con.executemany(f"INSERT INTO suppliers({cols}) VALUES ({','.join('?' * len(ROW_COLUMNS))}) "
                                f"ON CONFLICT(supplier_id) DO UPDATE SET {upd}", [[r[c] for c in ROW_COLUMNS] for r in rows])
                ids = [(r["supplier_id"],) for r in rows]
                con.executemany("DELETE FROM supplier_aliases WHERE supplier_id=?", ids)
                con.executemany("DELETE FROM supplier_tokens WHERE supplier_id=?", ids)
                con.executemany("INSERT OR IGNORE INTO supplier_tokens VALUES (?,?)",
                                [(t, r["supplier_id"]) for r in rows for t in row_tokens(r)])
                con.executemany("INSERT OR IGNORE INTO supplier_aliases VALUES (?,?,?)",
                                [(r["supplier_id"], a, normalize_name(a)) for r in rows for a in r["aliases"].split("|") if a])
                allrows = [dict(x) for x in con.execute(f"SELECT {cols} FROM suppliers")]
                version = content_version(allrows)
                con.execute("INSERT INTO master_meta VALUES ('version', ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                            (version,))
            return version
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
                    for r in con.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers WHERE {kind}=? ORDER BY supplier_id", (v,)):
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
                weights = TokenWeights.from_names(s.name for s in by_id.values())
                for k in [k for k in _CACHE if k[0] == self.path]:
                    del _CACHE[k]
                _CACHE[key] = (by_id, choices, owners, weights)
            return _CACHE[key]

    def name_candidates(self, queries: list[str], limit: int, pool: int = 25) -> list[Supplier]:
        by_id, choices, owners, _ = self._cache()
        best: dict[str, float] = {}
        for q in queries:
            for _, score, idx in process.extract(q, choices, scorer=fuzz.partial_ratio, limit=limit, score_cutoff=60):
                sid = owners[idx]
                best[sid] = max(best.get(sid, 0.0), score)
        top = sorted(best.items(), key=lambda x: (-x[1], x[0]))[:pool]
        return [by_id[sid] for sid, _ in top]

    def token_candidates(self, tokens: list[str], pool: int = 25, weights: TokenWeights | None = None) -> list[Supplier]:
        if not tokens:
            return []
        by_id, _, _, weights = self._cache()
        hits: dict[str, set[str]] = {}
        con = self._conn()
        try:
            qs = ",".join("?" * len(tokens))
            for tok, sid in con.execute(f"SELECT token, supplier_id FROM supplier_tokens WHERE token IN ({qs})", tokens):
                hits.setdefault(sid, set()).add(tok)
        finally:
            con.close()
        return [by_id[sid] for sid in rank_by_tokens(hits, weights, pool) if sid in by_id]

    def all_suppliers(self) -> list[Supplier]:
        return list(self._cache()[0].values())

    def token_weights(self, version: str | None = None) -> TokenWeights:
        return self._cache()[3]


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
