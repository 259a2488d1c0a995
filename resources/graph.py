"""Knowledge-graph store over Bolt (ArcadeDB embedded server or any Neo4j 5).

Graph model (all keys are stable, so every write is an idempotent MERGE):

    (:Document {id, filename, media_type, bytes, doc_type, invoice_number, date, total, currency,
                supplier_name, dup_key})
    (:Page {id: "<document_id>:p<number>", document_id, number, engine, confidence})
    (:Chunk {id: chunk_id, document_id, page, kind, heading, text})     text = first SNIPPET_CHARS chars
    (:Table {id: "<document_id>:t<index>", document_id, page, source, n_rows, n_cols, header})
    (:LineItem {id: "<table id>:r<row>", document_id, row, description, cells})
    (:Supplier {id: supplier_id, name})
    (:Entity {id: "<Kind>:<normalised value>", kind, value, norm})  shared by every document naming it

    (Document)-[:HAS_PAGE]->(Page)
    (Document)-[:CONTAINS]->(Chunk)-[:MENTIONS]->(Entity)
    (Document)-[:ISSUED_BY {score, method}]->(Supplier)
    (Document)-[:HAS_TABLE]->(Table)-[:HAS_ITEM]->(LineItem)
    (Document)-[:DUPLICATE_OF]->(Document)   same supplier + invoice number (`dup_key`); the edge
                                             points from the larger document id to the smaller one,
                                             so it does not depend on the processing order

One document is written in ONE transaction: pages/chunks/tables/items it no
longer has, its MENTIONS, DUPLICATE_OF edges and a stale ISSUED_BY are removed
first, then everything is MERGEd in UNWIND batches, and entities that this
document alone mentioned and no longer does are deleted.  Deleting a document
keeps Supplier nodes and Entity nodes still mentioned by other documents.
Values only ever travel as query parameters; the only things put into Cypher
text are the fixed labels / relationship types below.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from dagster import ConfigurableResource, InitResourceContext
from pydantic import Field, PrivateAttr

from idp_assets.models import Chunk, GraphResult, OcrPages, SourceDocument, SupplierMatch, Table
from resources.graph_server import DEFAULT_LOCAL_PASSWORD, ensure_running

log = logging.getLogger(__name__)

T = TypeVar("T")

LABELS = ("Document", "Page", "Chunk", "Table", "LineItem", "Supplier", "Entity")
REL_TYPES = ("HAS_PAGE", "CONTAINS", "MENTIONS", "ISSUED_BY", "HAS_TABLE", "HAS_ITEM", "DUPLICATE_OF")
SNIPPET_CHARS = 500
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# entity kinds that connect documents in search expansion (amounts/dates are too common)
LINKING_KINDS = ("InvoiceNumber", "IBAN", "VATId", "Organization", "Address")

# -- Cypher (parameterised; labels and types are constants) ---------------------

_MERGE_DOCUMENT = """
MERGE (d:Document {id: $doc_id})
SET d.filename = $filename, d.media_type = $media_type, d.bytes = $bytes, d.doc_type = $doc_type,
    d.invoice_number = $invoice_number, d.date = $date, d.total = $total, d.currency = $currency,
    d.supplier_name = $supplier_name, d.dup_key = $dup_key
"""

_OLD_ENTITIES = """
MATCH (d:Document {id: $doc_id})-[:CONTAINS]->(:Chunk)-[:MENTIONS]->(e:Entity)
RETURN DISTINCT e.id AS id
"""

_DELETE_MENTIONS = """
MATCH (d:Document {id: $doc_id})-[:CONTAINS]->(:Chunk)-[m:MENTIONS]->(:Entity)
DELETE m
"""

_DELETE_DUPLICATE_EDGES = """
MATCH (d:Document {id: $doc_id})-[r:DUPLICATE_OF]-(:Document)
DELETE r
"""

_DELETE_STALE_PAGES = """
MATCH (d:Document {id: $doc_id})-[:HAS_PAGE]->(p:Page)
WHERE NOT p.id IN $keep
DETACH DELETE p
"""

_DELETE_STALE_CHUNKS = """
MATCH (d:Document {id: $doc_id})-[:CONTAINS]->(c:Chunk)
WHERE NOT c.id IN $keep
DETACH DELETE c
"""

_DELETE_STALE_ITEMS = """
MATCH (d:Document {id: $doc_id})-[:HAS_TABLE]->(:Table)-[:HAS_ITEM]->(li:LineItem)
WHERE NOT li.id IN $keep
DETACH DELETE li
"""

_DELETE_STALE_TABLES = """
MATCH (d:Document {id: $doc_id})-[:HAS_TABLE]->(t:Table)
WHERE NOT t.id IN $keep
DETACH DELETE t
"""

_DELETE_STALE_ISSUER = """
MATCH (d:Document {id: $doc_id})-[r:ISSUED_BY]->(s:Supplier)
WHERE $supplier_id IS NULL OR s.id <> $supplier_id
DELETE r
"""

_MERGE_PAGES = """
MATCH (d:Document {id: $doc_id})
UNWIND $rows AS row
MERGE (p:Page {id: row.id})
SET p.document_id = $doc_id, p.number = row.number, p.engine = row.engine, p.confidence = row.confidence
MERGE (d)-[:HAS_PAGE]->(p)
"""

_MERGE_CHUNKS = """
MATCH (d:Document {id: $doc_id})
UNWIND $rows AS row
MERGE (c:Chunk {id: row.id})
SET c.document_id = $doc_id, c.page = row.page, c.kind = row.kind, c.text = row.text, c.heading = row.heading
MERGE (d)-[:CONTAINS]->(c)
"""

_MERGE_TABLES = """
MATCH (d:Document {id: $doc_id})
UNWIND $rows AS row
MERGE (t:Table {id: row.id})
SET t.document_id = $doc_id, t.page = row.page, t.source = row.source, t.n_rows = row.n_rows,
    t.n_cols = row.n_cols, t.header = row.header
MERGE (d)-[:HAS_TABLE]->(t)
"""

_MERGE_ITEMS = """
UNWIND $rows AS row
MATCH (t:Table {id: row.table_id})
MERGE (li:LineItem {id: row.id})
SET li.document_id = $doc_id, li.row = row.row, li.description = row.description, li.cells = row.cells
MERGE (t)-[:HAS_ITEM]->(li)
"""

_MERGE_ENTITIES = """
UNWIND $rows AS row
MERGE (e:Entity {id: row.id})
SET e.kind = row.kind, e.norm = row.norm, e.value = coalesce(e.value, row.value)
"""

_MERGE_MENTIONS = """
UNWIND $rows AS row
MATCH (c:Chunk {id: row.chunk_id})
MATCH (e:Entity {id: row.entity_id})
MERGE (c)-[:MENTIONS]->(e)
"""

_DELETE_ORPHAN_ENTITIES = """
MATCH (e:Entity)
WHERE e.id IN $ids AND NOT (e)<-[:MENTIONS]-()
DETACH DELETE e
"""

_MERGE_DUPLICATES_DOWN = """
MATCH (d:Document {id: $doc_id})
MATCH (o:Document)
WHERE o.dup_key = $dup_key AND o.id < $doc_id
MERGE (d)-[:DUPLICATE_OF]->(o)
"""

_MERGE_DUPLICATES_UP = """
MATCH (d:Document {id: $doc_id})
MATCH (o:Document)
WHERE o.dup_key = $dup_key AND o.id > $doc_id
MERGE (o)-[:DUPLICATE_OF]->(d)
"""

_MERGE_SUPPLIER = """
MATCH (d:Document {id: $doc_id})
MERGE (s:Supplier {id: $supplier_id})
SET s.name = coalesce($name, s.name)
MERGE (d)-[r:ISSUED_BY]->(s)
SET r.score = $score, r.method = $method
"""

_DOCUMENT_COUNTS = """
MATCH (d:Document {id: $doc_id})
OPTIONAL MATCH (d)-[:HAS_PAGE]->(p:Page)
WITH d, count(DISTINCT p) AS pages
OPTIONAL MATCH (d)-[:CONTAINS]->(c:Chunk)
WITH d, pages, count(DISTINCT c) AS chunks
OPTIONAL MATCH (d)-[:ISSUED_BY]->(s:Supplier)
WITH d, pages, chunks, count(DISTINCT s) AS suppliers
OPTIONAL MATCH (d)-[:HAS_TABLE]->(t:Table)
WITH d, pages, chunks, suppliers, count(DISTINCT t) AS tables
OPTIONAL MATCH (d)-[:HAS_TABLE]->(:Table)-[:HAS_ITEM]->(li:LineItem)
WITH d, pages, chunks, suppliers, tables, count(DISTINCT li) AS items
OPTIONAL MATCH (d)-[:CONTAINS]->(:Chunk)-[m:MENTIONS]->(e:Entity)
WITH d, pages, chunks, suppliers, tables, items, count(DISTINCT e) AS entities, count(DISTINCT m) AS mentions
OPTIONAL MATCH (d)-[dup:DUPLICATE_OF]-(:Document)
RETURN pages, chunks, suppliers, tables, items, entities, mentions, count(DISTINCT dup) AS duplicates
"""

_DELETE_ITEMS = "MATCH (d:Document {id: $doc_id})-[:HAS_TABLE]->(:Table)-[:HAS_ITEM]->(li:LineItem) DETACH DELETE li"
_DELETE_TABLES = "MATCH (d:Document {id: $doc_id})-[:HAS_TABLE]->(t:Table) DETACH DELETE t"
_DELETE_PAGES = "MATCH (d:Document {id: $doc_id})-[:HAS_PAGE]->(p:Page) DETACH DELETE p"
_DELETE_CHUNKS = "MATCH (d:Document {id: $doc_id})-[:CONTAINS]->(c:Chunk) DETACH DELETE c"
_DELETE_DOCUMENT = "MATCH (d:Document {id: $doc_id}) DETACH DELETE d"


def _transient_errors() -> tuple[type[BaseException], ...]:
    from neo4j.exceptions import ServiceUnavailable, SessionExpired, TransientError

    return (ServiceUnavailable, SessionExpired, TransientError)


class GraphStore(ConfigurableResource):
    """Writes documents, pages, chunks and suppliers to a Bolt graph database.

    By default it talks to the embedded ArcadeDB server that
    `resources.graph_server` starts on 127.0.0.1 (started on first use when
    `manage_local_server` is set).  Point `uri` at a Neo4j 5 server to use that
    instead; the Cypher is valid on both.
    """

    uri: str = Field(default="bolt://127.0.0.1:7687", description="bolt:// or neo4j:// URI")
    user: str = "root"
    password: str = Field(
        default=DEFAULT_LOCAL_PASSWORD,
        description=(
            "Bolt password (set IDP_GRAPH_PASSWORD). The default 'idp-local-dev' is a local-only "
            "development password for the managed embedded server bound to 127.0.0.1; never use it elsewhere."
        ),
    )
    database: str | None = Field(
        default="idp", description="database name; None = the server's default database"
    )
    manage_local_server: bool = Field(
        default=True,
        description="start the embedded ArcadeDB server when `uri` points at 127.0.0.1/localhost and nothing answers",
    )
    server_home: str = Field(default="./.idp_graph", description="root folder of the managed server")
    server_http_port: int = Field(default=2480, description="HTTP port of the managed server (127.0.0.1)")
    max_retries: int = Field(default=4, description="retries of a transaction on transient/connection errors")

    _driver: Any = PrivateAttr(default=None)
    _schema_ready: bool = PrivateAttr(default=False)

    # -- lifecycle ---------------------------------------------------------------
    def setup_for_execution(self, context: InitResourceContext) -> None:
        pass  # connect lazily: runs that never touch the graph do not start a JVM

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        if self._driver is not None:
            try:
                self._driver.close()
            finally:
                self._driver = None
                self._schema_ready = False

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _is_local(self) -> bool:
        return (urlparse(self.uri).hostname or "") in _LOCAL_HOSTS

    def _ensure_local_server(self) -> None:
        if self.manage_local_server and self._is_local():
            ensure_running(
                self.server_home,
                bolt_port=urlparse(self.uri).port or 7687,
                http_port=self.server_http_port,
                password=self.password,
                database=self.database or "idp",
                user=self.user,
            )

    def driver(self):
        if self._driver is None:
            from neo4j import GraphDatabase

            self._ensure_local_server()
            self._driver = GraphDatabase.driver(
                self.uri,
                auth=(self.user, self.password),
                max_transaction_retry_time=2.0,  # our own _with_retry does the rest (and restarts a managed server)
                connection_timeout=10.0,
            )
        return self._driver

    # -- transaction helpers -------------------------------------------------------
    def _with_retry(self, what: str, fn: Callable[[], T]) -> T:
        transient = _transient_errors()
        from neo4j.exceptions import ConstraintError

        attempt = 0
        while True:
            try:
                return fn()
            except (*transient, ConstraintError) as exc:
                # ConstraintError: two MERGEs of the same new key raced (e.g. a shared
                # Supplier); the loser's retry finds the winner's node and succeeds.
                attempt += 1
                if attempt > self.max_retries:
                    raise
                delay = min(0.25 * 2 ** (attempt - 1), 4.0) * (0.5 + random.random())
                log.warning("graph %s failed (%s: %s); retry %d/%d in %.1fs", what, type(exc).__name__,
                            getattr(exc, "message", None) or exc, attempt, self.max_retries, delay)
                time.sleep(delay)
                if isinstance(exc, transient[0]):  # ServiceUnavailable: the managed server may have died
                    try:
                        self._ensure_local_server()
                    except RuntimeError as start_exc:
                        log.warning("graph: could not restart the local server: %s", start_exc)

    def _write(self, what: str, work: Callable[[Any], T]) -> T:
        def run() -> T:
            with self.driver().session(database=self.database) as session:
                return session.execute_write(work)

        return self._with_retry(what, run)

    def _read(self, what: str, work: Callable[[Any], T]) -> T:
        def run() -> T:
            with self.driver().session(database=self.database) as session:
                return session.execute_read(work)

        return self._with_retry(what, run)

    # -- schema ------------------------------------------------------------------
    def ensure_schema(self) -> dict[str, str]:
        """Unique `id` per label; returns label -> "constraint" | "index" | "none".

        Neo4j 5 syntax (`CREATE CONSTRAINT ... IF NOT EXISTS ... REQUIRE n.id IS
        UNIQUE`), which ArcadeDB's Cypher accepts too; a server that refuses it
        gets a plain index, and one that refuses both is logged and used as is."""
        from neo4j.exceptions import Neo4jError

        result: dict[str, str] = {}
        with self.driver().session(database=self.database) as session:
            for label in LABELS:
                name = f"{label.lower()}_id_unique"
                try:
                    session.run(
                        f"CREATE CONSTRAINT {name} IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE"
                    ).consume()
                    result[label] = "constraint"
                    continue
                except Neo4jError as exc:
                    log.warning("graph: uniqueness constraint on %s.id not supported (%s); trying an index",
                                label, exc.message or exc)
                try:
                    session.run(f"CREATE INDEX {label.lower()}_id IF NOT EXISTS FOR (n:{label}) ON (n.id)").consume()
                    result[label] = "index"
                except Neo4jError as exc:
                    log.warning("graph: no index on %s.id either (%s); MERGE will scan", label, exc.message or exc)
                    result[label] = "none"
        with self.driver().session(database=self.database) as session:
            try:  # DUPLICATE_OF lookups by dup_key; optional
                session.run("CREATE INDEX document_dup_key IF NOT EXISTS FOR (n:Document) ON (n.dup_key)").consume()
            except Neo4jError as exc:
                log.warning("graph: no index on Document.dup_key (%s)", exc.message or exc)
        self._schema_ready = True
        return result

    # -- writes ------------------------------------------------------------------
    def write_document(
        self,
        source: SourceDocument,
        ocr: OcrPages,
        chunks: list[Chunk],
        supplier: SupplierMatch,
        tables: list[Table] | None = None,
        entities: list | None = None,
        properties: dict | None = None,
    ) -> GraphResult:
        """Write one document's subgraph in one transaction (idempotent).

        `entities`: `idp_assets.logic.entities.Entity` objects (key, kind, value, norm, chunk_ids);
        `properties`: document fields (doc_type, invoice_number, date, total, currency,
        supplier_name, dup_key), see `idp_assets.logic.entities.document_properties`."""
        doc_id = source.document_id
        for what, other in (("ocr", ocr.document_id), ("supplier", supplier.document_id)):
            if other != doc_id:
                raise ValueError(f"{what} belongs to document {other!r}, not {doc_id!r}")
        bad = [c.chunk_id for c in chunks if c.document_id != doc_id]
        if bad:
            raise ValueError(f"chunks {bad[:5]} belong to another document than {doc_id!r}")
        props = {k: None for k in ("doc_type", "invoice_number", "date", "total", "currency", "supplier_name",
                                   "dup_key")}
        unknown = set(properties or {}) - set(props)
        if unknown:
            raise ValueError(f"unknown document properties {sorted(unknown)}")
        props.update(properties or {})

        # dict: a repeated key keeps its last value, so UNWIND never MERGEs a key twice
        pages = {
            f"{doc_id}:p{p.number}": {
                "id": f"{doc_id}:p{p.number}",
                "number": p.number,
                "engine": p.engine,
                "confidence": p.confidence,
            }
            for p in ocr.pages
        }
        chunk_rows = {
            c.chunk_id: {"id": c.chunk_id, "page": c.page, "kind": c.kind, "text": c.text[:SNIPPET_CHARS],
                         "heading": c.heading}
            for c in chunks
        }
        table_rows, item_rows = table_graph_rows(doc_id, tables or [])
        entity_rows: dict[str, dict] = {}
        mention_rows: dict[tuple[str, str], dict] = {}
        for e in entities or []:
            entity_rows[e.key] = {"id": e.key, "kind": e.kind, "value": e.value, "norm": e.norm}
            for cid in e.chunk_ids:
                if cid not in chunk_rows:
                    raise ValueError(f"entity {e.key!r} mentions chunk {cid!r} that is not in this document")
                mention_rows[(cid, e.key)] = {"chunk_id": cid, "entity_id": e.key}
        supplier_id = supplier.supplier_id

        if not self._schema_ready:
            self.ensure_schema()

        def work(tx) -> dict[str, int]:
            tx.run(_MERGE_DOCUMENT, doc_id=doc_id, filename=source.filename,
                   media_type=source.media_type, bytes=source.bytes, **props).consume()
            old_entities = [r["id"] for r in tx.run(_OLD_ENTITIES, doc_id=doc_id)]
            tx.run(_DELETE_MENTIONS, doc_id=doc_id).consume()
            tx.run(_DELETE_DUPLICATE_EDGES, doc_id=doc_id).consume()
            tx.run(_DELETE_STALE_PAGES, doc_id=doc_id, keep=list(pages)).consume()
            tx.run(_DELETE_STALE_CHUNKS, doc_id=doc_id, keep=list(chunk_rows)).consume()
            tx.run(_DELETE_STALE_ITEMS, doc_id=doc_id, keep=list(item_rows)).consume()
            tx.run(_DELETE_STALE_TABLES, doc_id=doc_id, keep=list(table_rows)).consume()
            tx.run(_DELETE_STALE_ISSUER, doc_id=doc_id, supplier_id=supplier_id).consume()
            if pages:
                tx.run(_MERGE_PAGES, doc_id=doc_id, rows=list(pages.values())).consume()
            if chunk_rows:
                tx.run(_MERGE_CHUNKS, doc_id=doc_id, rows=list(chunk_rows.values())).consume()
            if table_rows:
                tx.run(_MERGE_TABLES, doc_id=doc_id, rows=list(table_rows.values())).consume()
            if item_rows:
                tx.run(_MERGE_ITEMS, doc_id=doc_id, rows=list(item_rows.values())).consume()
            if entity_rows:
                tx.run(_MERGE_ENTITIES, rows=list(entity_rows.values())).consume()
            if mention_rows:
                tx.run(_MERGE_MENTIONS, rows=list(mention_rows.values())).consume()
            gone = [i for i in old_entities if i not in entity_rows]
            if gone:
                tx.run(_DELETE_ORPHAN_ENTITIES, ids=gone).consume()
            if props["dup_key"]:
                tx.run(_MERGE_DUPLICATES_DOWN, doc_id=doc_id, dup_key=props["dup_key"]).consume()
                tx.run(_MERGE_DUPLICATES_UP, doc_id=doc_id, dup_key=props["dup_key"]).consume()
            if supplier_id is not None:
                tx.run(_MERGE_SUPPLIER, doc_id=doc_id, supplier_id=supplier_id, name=supplier.name,
                       score=supplier.score, method=supplier.method).consume()
            rec = tx.run(_DOCUMENT_COUNTS, doc_id=doc_id).single()
            return dict(rec.items())

        got = self._write(f"write of document {doc_id}", work)
        expected = {"pages": len(pages), "chunks": len(chunk_rows), "tables": len(table_rows),
                    "items": len(item_rows), "entities": len(entity_rows), "mentions": len(mention_rows)}
        wrong = {k: (got[k], v) for k, v in expected.items() if got[k] != v}
        if wrong:
            raise RuntimeError(f"graph write of {doc_id} is inconsistent (written, expected): {wrong}")
        return GraphResult(
            document_id=doc_id,
            nodes={"Document": 1, "Page": got["pages"], "Chunk": got["chunks"], "Table": got["tables"],
                   "LineItem": got["items"], "Supplier": got["suppliers"], "Entity": got["entities"]},
            relationships={"HAS_PAGE": got["pages"], "CONTAINS": got["chunks"], "MENTIONS": got["mentions"],
                           "ISSUED_BY": got["suppliers"], "HAS_TABLE": got["tables"], "HAS_ITEM": got["items"],
                           "DUPLICATE_OF": got["duplicates"]},
        )

    def delete_document(self, document_id: str) -> int:
        """Remove the Document with its Pages, Chunks, Tables, LineItems and their edges, and the
        Entities only it mentioned.  Suppliers and entities other documents mention stay.

        Returns the number of nodes deleted."""

        def work(tx) -> int:
            old_entities = [r["id"] for r in tx.run(_OLD_ENTITIES, doc_id=document_id)]
            n = 0
            for query in (_DELETE_ITEMS, _DELETE_TABLES, _DELETE_PAGES, _DELETE_CHUNKS, _DELETE_DOCUMENT):
                n += tx.run(query, doc_id=document_id).consume().counters.nodes_deleted
            if old_entities:
                n += tx.run(_DELETE_ORPHAN_ENTITIES, ids=old_entities).consume().counters.nodes_deleted
            return n

        return self._write(f"delete of document {document_id}", work)

    # -- reads -------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """{"nodes": {label: n}, "relationships": {type: n}} over the whole graph."""

        def work(tx) -> dict[str, dict[str, int]]:
            nodes = dict.fromkeys(LABELS, 0)
            for rec in tx.run("MATCH (n) UNWIND labels(n) AS label RETURN label, count(*) AS n"):
                nodes[rec["label"]] = rec["n"]
            rels = dict.fromkeys(REL_TYPES, 0)
            for rec in tx.run("MATCH ()-[r]->() RETURN type(r) AS type, count(*) AS n"):
                rels[rec["type"]] = rec["n"]
            return {"nodes": nodes, "relationships": rels}

        return self._read("counts", work)

    def documents_mentioning(self, entity_keys: list[str]) -> list[dict]:
        """[{entity, kind, value, document_id, chunk_id, page}] for chunks that mention any of the entities."""
        if not entity_keys:
            return []

        def work(tx) -> list[dict]:
            q = ("MATCH (e:Entity) WHERE e.id IN $keys "
                 "MATCH (c:Chunk)-[:MENTIONS]->(e) "
                 "RETURN e.id AS entity, e.kind AS kind, e.value AS value, c.document_id AS document_id, "
                 "c.id AS chunk_id, c.page AS page, c.text AS text")
            return [dict(r.items()) for r in tx.run(q, keys=sorted(set(entity_keys)))]

        return self._read("entity lookup", work)

    def related_documents(self, document_ids: list[str], kinds: tuple[str, ...] = LINKING_KINDS,
                          max_degree: int = 50) -> list[dict]:
        """Documents connected to the given ones: [{document_id, related_id, via, detail}].

        via is 'supplier' (same Supplier node), 'duplicate' (DUPLICATE_OF either way) or
        'entity' (a shared Entity of one of `kinds`; entities mentioned by more than
        `max_degree` documents connect too much to mean anything and are skipped)."""
        if not document_ids:
            return []
        ids = sorted(set(document_ids))

        def work(tx) -> list[dict]:
            out: list[dict] = []
            for r in tx.run("MATCH (d:Document)-[:ISSUED_BY]->(s:Supplier)<-[:ISSUED_BY]-(o:Document) "
                            "WHERE d.id IN $ids AND o.id <> d.id "
                            "RETURN d.id AS a, o.id AS b, s.name AS detail", ids=ids):
                out.append({"document_id": r["a"], "related_id": r["b"], "via": "supplier", "detail": r["detail"]})
            for r in tx.run("MATCH (d:Document)-[:DUPLICATE_OF]-(o:Document) WHERE d.id IN $ids "
                            "RETURN d.id AS a, o.id AS b, d.invoice_number AS detail", ids=ids):
                out.append({"document_id": r["a"], "related_id": r["b"], "via": "duplicate", "detail": r["detail"]})
            q = ("MATCH (d:Document)-[:CONTAINS]->(:Chunk)-[:MENTIONS]->(e:Entity) "
                 "WHERE d.id IN $ids AND e.kind IN $kinds "
                 "WITH DISTINCT d, e "
                 "MATCH (e)<-[:MENTIONS]-(c2:Chunk) "
                 "WITH d, e, collect(DISTINCT c2.document_id) AS docs "
                 "WHERE size(docs) <= $max_degree "
                 "UNWIND docs AS other "
                 "WITH d, e, other WHERE other <> d.id "
                 "RETURN d.id AS a, other AS b, e.kind AS kind, e.value AS value")
            for r in tx.run(q, ids=ids, kinds=list(kinds), max_degree=max_degree):
                out.append({"document_id": r["a"], "related_id": r["b"], "via": "entity",
                            "detail": f"{r['kind']} {r['value']}"})
            return out

        return self._read("related documents", work)

    def document_properties(self, document_ids: list[str]) -> dict[str, dict]:
        if not document_ids:
            return {}

        def work(tx) -> dict[str, dict]:
            q = ("MATCH (d:Document) WHERE d.id IN $ids "
                 "RETURN d.id AS id, d.filename AS filename, d.doc_type AS doc_type, d.date AS date, "
                 "d.supplier_name AS supplier_name, d.invoice_number AS invoice_number, d.total AS total, "
                 "d.currency AS currency")
            return {r["id"]: dict(r.items()) for r in tx.run(q, ids=sorted(set(document_ids)))}

        return self._read("document properties", work)


def table_graph_rows(doc_id: str, tables: list[Table]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Table and LineItem rows (keyed by stable id) for one document's tables."""
    from idp_assets.logic.entities import line_items

    table_rows: dict[str, dict] = {}
    item_rows: dict[str, dict] = {}
    for i, t in enumerate(tables):
        header, rows = line_items(t)
        if not header and not rows:
            continue
        tid = f"{doc_id}:t{i}"
        columns = getattr(t, "columns", None) or header
        table_rows[tid] = {"id": tid, "page": t.page, "source": t.source, "n_rows": len(t.rows),
                           "n_cols": max((len(r) for r in t.rows), default=0),
                           "header": " | ".join(columns) if columns else None}
        mapped = getattr(t, "line_items", None) or []
        if mapped:  # the table stage mapped rows to invoice lines: use its description / amounts
            for li in mapped:
                cells = [" ".join((c or "").split()) for c in (t.rows[li.row] if 0 <= li.row < len(t.rows) else [])]
                iid = f"{tid}:r{li.row}"
                item_rows[iid] = {"id": iid, "table_id": tid, "row": li.row, "cells": " | ".join(cells),
                                  "description": li.description.value or li.description.text
                                  if li.description else None}
            continue
        for j, r in enumerate(rows):
            cells = [" ".join((c or "").split()) for c in r]
            if not any(cells):
                continue
            texts = [c for c in cells if c and not c.replace(".", "").replace(",", "").isdigit()]
            iid = f"{tid}:r{j}"
            item_rows[iid] = {"id": iid, "table_id": tid, "row": j, "cells": " | ".join(cells),
                              "description": max(texts, key=len) if texts else None}
    return table_rows, item_rows
