"""PostgreSQL supplier master: pg_trgm GIN indexes on normalised names and aliases, exact
B-tree indexes on VAT ID / tax number / IBAN / GLN, numbered migrations in `schema_migrations`."""

from __future__ import annotations

import csv
import io
import re
import threading

import psycopg2
import psycopg2.extras

from idp_assets.logic.suppliers import Supplier, TokenWeights, normalize_name
from resources.migrations import migrations
from resources.suppliers.base import (
    DECISION_COLUMNS, ID_KINDS, ROW_COLUMNS, MasterBackend, content_version, merge_learned, rank_by_tokens, row_tokens,
    to_supplier,
)

_CONNS: dict[tuple[str, str, int], object] = {}
_WEIGHTS: dict[tuple[str, str, str], TokenWeights] = {}
_DECIDED: dict[tuple[str, str, str], set] = {}
_LOCK = threading.Lock()

NAME_QUERY = """
SELECT {cols}, c.sim
FROM (
    SELECT supplier_id, max(sim) AS sim FROM unnest(%(q)s::text[]) AS q(s)
    CROSS JOIN LATERAL (
        (SELECT supplier_id, word_similarity(q.s, name_norm) AS sim FROM suppliers WHERE name_norm %%> q.s
         ORDER BY 2 DESC LIMIT %(k)s)
        UNION ALL
        (SELECT supplier_id, word_similarity(q.s, alias_norm) FROM supplier_aliases WHERE alias_norm %%> q.s
         ORDER BY 2 DESC LIMIT %(k)s)
    ) hits
    GROUP BY supplier_id ORDER BY 2 DESC, 1 LIMIT %(pool)s
) c
JOIN suppliers s ON s.supplier_id = c.supplier_id
ORDER BY c.sim DESC, s.supplier_id
"""


class PostgresBackend(MasterBackend):
    kind = "postgres"

    def __init__(self, dsn: str, schema: str = "idp_suppliers", trgm_threshold: float = 0.6):
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"schema name {schema!r}: use lower-case letters, digits and '_'")
        self.dsn, self.schema, self.trgm_threshold = dsn, schema, trgm_threshold
        self.migrate()

    def _conn(self):
        key = (self.dsn, self.schema, threading.get_ident())
        with _LOCK:
            con = _CONNS.get(key)
            if con is None or con.closed:
                con = psycopg2.connect(self.dsn)
                with con.cursor() as cur:
                    cur.execute(f"SET search_path TO {self.schema}, public")
                    cur.execute("SELECT set_config('pg_trgm.word_similarity_threshold', %s, false)", (str(self.trgm_threshold),))
                con.commit()
                con.autocommit = True  # reads need no transaction round trip; `upsert` opens its own
                _CONNS[key] = con
        return con

    def close(self) -> None:
        with _LOCK:
            for key in [k for k in _CONNS if k[:2] == (self.dsn, self.schema)]:
                _CONNS.pop(key).close()

    def migrate(self) -> int:
        con = psycopg2.connect(self.dsn)
        try:
            with con, con.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"idp_suppliers_migrate:{self.schema}",))
                # pg_trgm in public, never inside a master's schema (dropping that schema would take it along)
                cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                cur.execute(f"SET LOCAL search_path TO {self.schema}, public")
                cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                            "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
                cur.execute("SELECT version FROM schema_migrations")
                done = {r[0] for r in cur.fetchall()}
                for v, name, sql in migrations("postgres"):
                    if v not in done:  # same transaction as the bookkeeping: a failed migration leaves nothing
                        cur.execute(sql)
                        cur.execute("INSERT INTO schema_migrations(version, name) VALUES (%s, %s)", (v, name))
                        if v == 2 and 1 in done:  # backfill the tokens of a master written before migration 2
                            cur.execute("SELECT supplier_id, name_norm, aliases FROM suppliers")
                            names = [d.name for d in cur.description]
                            psycopg2.extras.execute_values(
                                cur, "INSERT INTO supplier_tokens VALUES %s ON CONFLICT DO NOTHING",
                                [(t, r["supplier_id"]) for r in (dict(zip(names, x)) for x in cur.fetchall())
                                 for t in row_tokens(r)], page_size=5000)
            return max([v for v, _, _ in migrations("postgres")], default=0)
        finally:
            con.close()

    def drop_schema(self) -> None:
        """Remove the whole schema (tests, benchmark)."""
        self.close()
        con = psycopg2.connect(self.dsn)
        try:
            with con, con.cursor() as cur:
                cur.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        finally:
            con.close()

    def upsert(self, rows: list[dict]) -> str:
        return self._write(rows)

    @staticmethod
    def _copy(cur, table: str, cols: list[str], records) -> None:
        """Bulk load with COPY (CSV through a buffer)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for rec in records:
            w.writerow(["\\N" if v is None else v for v in rec])
        buf.seek(0)
        cur.copy_expert(f"COPY {table} ({','.join(cols)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf)

    def _write(self, rows: list[dict], decision: dict | None = None) -> str:
        """Rows upserted (learned aliases merged in; COPY into a staging table) and/or one review decision
        stored, in ONE transaction."""
        con = self._conn()
        con.autocommit = False  # ONE transaction for the whole import
        try:
            with con.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"idp_suppliers_write:{self.schema}",))
                rows = list(rows)
                if decision is not None:
                    doc = decision["document_id"]
                    cur.execute("DELETE FROM supplier_learned WHERE document_id=%s RETURNING supplier_id", (doc,))
                    old = {r[0] for r in cur.fetchall()}
                    cur.execute("INSERT INTO supplier_decisions VALUES (%s,%s,%s,%s,%s,%s) ON CONFLICT (document_id) DO UPDATE SET "
                                "decision=EXCLUDED.decision, supplier_id=EXCLUDED.supplier_id, evidence=EXCLUDED.evidence, "
                                "decided_by=EXCLUDED.decided_by, decided_at=EXCLUDED.decided_at",
                                [decision[c] for c in DECISION_COLUMNS])
                    psycopg2.extras.execute_values(cur, "INSERT INTO supplier_learned VALUES %s ON CONFLICT DO NOTHING",
                                                   [(sid, k, v, doc) for sid, k, v in decision.get("learned", [])])
                    touched = old | {sid for sid, _, _ in decision.get("learned", [])}
                    if touched:
                        cur.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers WHERE supplier_id = ANY(%s)", (sorted(touched),))
                        names = [d.name for d in cur.description]
                        rows = [dict(zip(names, x)) for x in cur.fetchall()] + rows
                ids = sorted({r["supplier_id"] for r in rows})
                learned: dict[str, list] = {}
                if ids:
                    cur.execute("SELECT supplier_id, kind, value FROM supplier_learned WHERE supplier_id = ANY(%s)", (ids,))
                    for sid, kind, value in cur.fetchall():
                        learned.setdefault(sid, []).append((kind, value))
                rows = merge_learned(list({r["supplier_id"]: r for r in rows}.values()), learned)
                if rows:
                    cols = ",".join(ROW_COLUMNS)
                    upd = ",".join(f"{c}=EXCLUDED.{c}" for c in ROW_COLUMNS[1:])
                    cur.execute("CREATE TEMP TABLE _imp (LIKE suppliers INCLUDING DEFAULTS) ON COMMIT DROP")
                    self._copy(cur, "_imp", ROW_COLUMNS, ([r.get(c) if c != "id_checks" else (r.get(c) or "")
                                                           for c in ROW_COLUMNS] for r in rows))
                    cur.execute(f"INSERT INTO suppliers({cols}) SELECT {cols} FROM _imp "
                                f"ON CONFLICT (supplier_id) DO UPDATE SET {upd}")
                    cur.execute("DELETE FROM supplier_aliases WHERE supplier_id IN (SELECT supplier_id FROM _imp)")
                    cur.execute("DELETE FROM supplier_tokens WHERE supplier_id IN (SELECT supplier_id FROM _imp)")
                    self._copy(cur, "supplier_tokens", ["token", "supplier_id"],
                               ((t, r["supplier_id"]) for r in rows for t in sorted(row_tokens(r))))
                    self._copy(cur, "supplier_aliases", ["supplier_id", "alias", "alias_norm"],
                               ((r["supplier_id"], a, normalize_name(a)) for r in rows
                                for a in dict.fromkeys(x for x in (r["aliases"] or "").split("|") if x)))
                cur.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers")
                names = [d.name for d in cur.description]
                allrows = [dict(zip(names, x)) for x in cur.fetchall()]
                cur.execute(f"SELECT {','.join(DECISION_COLUMNS)} FROM supplier_decisions")
                decisions = [tuple(x) for x in cur.fetchall()]
                version = content_version(allrows, decisions)
                cur.execute("INSERT INTO master_meta VALUES ('version', %s) ON CONFLICT (key) DO UPDATE SET value=EXCLUDED.value",
                            (version,))
            con.commit()
            return version
        except BaseException:
            con.rollback()
            raise
        finally:
            con.autocommit = True

    def record_decision(self, decision: dict, new_row: dict | None = None) -> str:
        return self._write([new_row] if new_row else [], decision)

    def decisions(self) -> list[dict]:
        rows = self._query(f"SELECT {','.join(DECISION_COLUMNS)} FROM supplier_decisions ORDER BY document_id")
        return rows

    def get(self, supplier_id: str) -> Supplier | None:
        r = self._query(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers WHERE supplier_id=%s", (supplier_id,))
        return to_supplier(r[0]) if r else None

    def decision_for(self, document_id: str, version: str | None = None) -> dict | None:
        key = (self.dsn, self.schema, version or self.version())
        with _LOCK:
            decided = _DECIDED.get(key)
        if decided is None:  # the decided documents, once per master version (a decision changes the version)
            decided = {r["document_id"] for r in self._query("SELECT document_id FROM supplier_decisions")}
            with _LOCK:
                for k in [k for k in _DECIDED if k[:2] == key[:2]]:
                    del _DECIDED[k]
                _DECIDED[key] = decided
        if document_id not in decided:
            return None
        r = self._query(f"SELECT {','.join(DECISION_COLUMNS)} FROM supplier_decisions WHERE document_id=%s", (document_id,))
        return r[0] if r else None

    def existing_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        return {r["supplier_id"] for r in self._query("SELECT supplier_id FROM suppliers WHERE supplier_id = ANY(%s)", (list(ids),))}

    def by_postcode(self, postcodes: list[str], max_per_code: int = 30) -> list[Supplier]:
        if not postcodes:
            return []
        # codes shared by few suppliers only (index-only count), then their rows
        rows = self._query(
            f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers WHERE postal_code IN "
            f"(SELECT postal_code FROM suppliers WHERE postal_code = ANY(%(pc)s) GROUP BY 1 HAVING count(*) <= %(n)s) "
            f"ORDER BY supplier_id", {"pc": list(postcodes), "n": max_per_code})
        return [to_supplier(r) for r in rows]

    def _query(self, sql: str, params=None) -> list[dict]:
        con = self._conn()
        with con.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(r) for r in cur.fetchall()] if cur.description else []

    def rows(self) -> list[dict]:
        return self._query(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers ORDER BY supplier_id")

    def version(self) -> str:
        r = self._query("SELECT value FROM master_meta WHERE key='version'")
        return r[0]["value"] if r else content_version([])

    def count(self) -> int:
        return self._query("SELECT count(*) AS n FROM suppliers")[0]["n"]

    def by_identifiers(self, ids: dict[str, set[str]]) -> list[tuple[Supplier, str, str]]:
        parts, params = [], {}
        for kind in ID_KINDS:
            vals = sorted(ids.get(kind, ()))
            if vals:
                # vat_id and tax_number hold identifiers of many schemes: a value is looked up in both columns
                for col in (("vat_id", "tax_number") if kind in ("vat_id", "tax_number") else (kind,)):
                    parts.append(f"SELECT '{kind}' AS kind, {col} AS value, {','.join(ROW_COLUMNS)} FROM suppliers "
                                 f"WHERE {col} = ANY(%({kind})s)")
                parts.append(f"SELECT '{kind}' AS kind, l.value, {','.join('s.' + c for c in ROW_COLUMNS)} FROM supplier_learned l "
                             f"JOIN suppliers s ON s.supplier_id = l.supplier_id "
                             f"WHERE l.kind IN ('vat_id','tax_number','iban','gln') AND l.value = ANY(%({kind})s)")
                params[kind] = vals
        if not parts:
            return []
        rows = self._query(" UNION ALL ".join(parts) + " ORDER BY kind, value, supplier_id", params)
        return [(to_supplier(r), r["kind"], r["value"]) for r in rows]

    def name_candidates(self, queries: list[str], limit: int, pool: int = 25) -> list[Supplier]:
        if not queries:
            return []
        cols = ",".join(f"s.{c}" for c in ROW_COLUMNS)
        rows = self._query(NAME_QUERY.format(cols=cols), {"q": list(queries), "k": limit, "pool": pool})
        return [to_supplier(r) for r in rows]

    def token_candidates(self, tokens: list[str], pool: int = 25, weights: TokenWeights | None = None) -> list[Supplier]:
        if not tokens:
            return []
        cols = ",".join(f"s.{c}" for c in ROW_COLUMNS)
        rows = self._query(f"SELECT {cols}, array_agg(t.token) AS toks FROM supplier_tokens t "
                           f"JOIN suppliers s ON s.supplier_id = t.supplier_id WHERE t.token = ANY(%s) "
                           f"GROUP BY s.supplier_id", (list(tokens),))
        by_id = {r["supplier_id"]: r for r in rows}
        ids = rank_by_tokens({r["supplier_id"]: set(r["toks"]) for r in rows}, weights or self.token_weights(), pool,
                             {r["supplier_id"]: row_tokens(r) for r in rows})
        return [to_supplier(by_id[i]) for i in ids]

    def explain_name_query(self, query: str, limit: int = 8) -> str:
        """EXPLAIN (ANALYZE) of the trigram search for one query string (shows the GIN index in use)."""
        cols = ",".join(f"s.{c}" for c in ROW_COLUMNS)
        rows = self._query("EXPLAIN (ANALYZE, COSTS OFF) " + NAME_QUERY.format(cols=cols),
                           {"q": [query], "k": limit, "pool": 25})
        return "\n".join(r["QUERY PLAN"] for r in rows)

    def token_weights(self, version: str | None = None) -> TokenWeights:
        key = (self.dsn, self.schema, version or self.version())
        with _LOCK:
            w = _WEIGHTS.get(key)
        if w is None:
            w = TokenWeights.from_norms(r["name_norm"] for r in self._query("SELECT name_norm FROM suppliers"))
            with _LOCK:
                for k in [k for k in _WEIGHTS if k[:2] == key[:2]]:
                    del _WEIGHTS[k]
                _WEIGHTS[key] = w
        return w
