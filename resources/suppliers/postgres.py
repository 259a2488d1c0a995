"""PostgreSQL supplier master: pg_trgm GIN indexes on normalised names and aliases, exact
B-tree indexes on VAT ID / tax number / IBAN / GLN, numbered migrations in `schema_migrations`."""

from __future__ import annotations

import re
import threading

import psycopg2
import psycopg2.extras

from idp_assets.logic.suppliers import Supplier, TokenWeights, normalize_name
from resources.migrations import migrations
from resources.suppliers.base import (
    ID_KINDS, ROW_COLUMNS, MasterBackend, content_version, rank_by_tokens, row_tokens, to_supplier,
)

_CONNS: dict[tuple[str, str, int], object] = {}
_WEIGHTS: dict[tuple[str, str, str], TokenWeights] = {}
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
                            cur.execute(f"SELECT {','.join(ROW_COLUMNS)} FROM suppliers")
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
        con = self._conn()
        con.autocommit = False  # ONE transaction for the whole import
        try:
            with con.cursor() as cur:
                cols = ",".join(ROW_COLUMNS)
                upd = ",".join(f"{c}=EXCLUDED.{c}" for c in ROW_COLUMNS[1:])
                psycopg2.extras.execute_values(
                    cur, f"INSERT INTO suppliers({cols}) VALUES %s ON CONFLICT (supplier_id) DO UPDATE SET {upd}",
                    [[r[c] for c in ROW_COLUMNS] for r in rows], page_size=2000)
                cur.execute("DELETE FROM supplier_aliases WHERE supplier_id = ANY(%s)", ([r["supplier_id"] for r in rows],))
                cur.execute("DELETE FROM supplier_tokens WHERE supplier_id = ANY(%s)", ([r["supplier_id"] for r in rows],))
                psycopg2.extras.execute_values(
                    cur, "INSERT INTO supplier_tokens VALUES %s ON CONFLICT DO NOTHING",
                    [(t, r["supplier_id"]) for r in rows for t in row_tokens(r)], page_size=5000)
                psycopg2.extras.execute_values(
                    cur, "INSERT INTO supplier_aliases VALUES %s ON CONFLICT DO NOTHING",
                    [(r["supplier_id"], a, normalize_name(a)) for r in rows for a in r["aliases"].split("|") if a],
                    page_size=2000)
                cur.execute(f"SELECT {cols} FROM suppliers")
                names = [d.name for d in cur.description]
                version = content_version([dict(zip(names, x)) for x in cur.fetchall()])
                cur.execute("INSERT INTO master_meta VALUES ('version', %s) ON CONFLICT (key) DO UPDATE SET value=EXCLUDED.value",
                            (version,))
            con.commit()
            return version
        except BaseException:
            con.rollback()
            raise
        finally:
            con.autocommit = True

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
                parts.append(f"SELECT '{kind}' AS kind, {kind} AS value, {','.join(ROW_COLUMNS)} FROM suppliers "
                             f"WHERE {kind} = ANY(%({kind})s)")
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
        ids = rank_by_tokens({r["supplier_id"]: set(r["toks"]) for r in rows}, weights or self.token_weights(), pool)
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
