"""Knowledge-graph store over Bolt (ArcadeDB embedded server or any Neo4j 5).

Graph model (all keys are stable, so every write is an idempotent MERGE):

    (:Document {id, filename, media_type, bytes})
    (:Page {id: "<document_id>:p<number>", document_id, number, engine, confidence})
    (:Chunk {id: chunk_id, document_id, page, kind, text})        text = first SNIPPET_CHARS chars
    (:Supplier {id: supplier_id, name})

    (Document)-[:HAS_PAGE]->(Page)
    (Document)-[:CONTAINS]->(Chunk)
    (Document)-[:ISSUED_BY {score, method}]->(Supplier)

One document is written in ONE transaction: pages/chunks it no longer has and
a stale ISSUED_BY are removed first, then everything is MERGEd in UNWIND
batches.  Values only ever travel as query parameters; the only things put
into Cypher text are the fixed labels / relationship types below.
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

from idp_assets.models import Chunk, GraphResult, OcrPages, SourceDocument, SupplierMatch
from resources.graph_server import DEFAULT_LOCAL_PASSWORD, ensure_running

log = logging.getLogger(__name__)

T = TypeVar("T")

LABELS = ("Document", "Page", "Chunk", "Supplier")
REL_TYPES = ("HAS_PAGE", "CONTAINS", "ISSUED_BY")
SNIPPET_CHARS = 500
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

# -- Cypher (parameterised; labels and types are constants) ---------------------

_MERGE_DOCUMENT = """
MERGE (d:Document {id: $doc_id})
SET d.filename = $filename, d.media_type = $media_type, d.bytes = $bytes
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
SET c.document_id = $doc_id, c.page = row.page, c.kind = row.kind, c.text = row.text
MERGE (d)-[:CONTAINS]->(c)
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
RETURN pages, chunks, count(DISTINCT s) AS suppliers
"""

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
        self._schema_ready = True
        return result

    # -- writes ------------------------------------------------------------------
    def write_document(
        self,
        source: SourceDocument,
        ocr: OcrPages,
        chunks: list[Chunk],
        supplier: SupplierMatch,
    ) -> GraphResult:
        doc_id = source.document_id
        for what, other in (("ocr", ocr.document_id), ("supplier", supplier.document_id)):
            if other != doc_id:
                raise ValueError(f"{what} belongs to document {other!r}, not {doc_id!r}")
        bad = [c.chunk_id for c in chunks if c.document_id != doc_id]
        if bad:
            raise ValueError(f"chunks {bad[:5]} belong to another document than {doc_id!r}")

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
            c.chunk_id: {"id": c.chunk_id, "page": c.page, "kind": c.kind, "text": c.text[:SNIPPET_CHARS]}
            for c in chunks
        }
        supplier_id = supplier.supplier_id

        if not self._schema_ready:
            self.ensure_schema()

        def work(tx) -> dict[str, int]:
            tx.run(_MERGE_DOCUMENT, doc_id=doc_id, filename=source.filename,
                   media_type=source.media_type, bytes=source.bytes).consume()
            tx.run(_DELETE_STALE_PAGES, doc_id=doc_id, keep=list(pages)).consume()
            tx.run(_DELETE_STALE_CHUNKS, doc_id=doc_id, keep=list(chunk_rows)).consume()
            tx.run(_DELETE_STALE_ISSUER, doc_id=doc_id, supplier_id=supplier_id).consume()
            if pages:
                tx.run(_MERGE_PAGES, doc_id=doc_id, rows=list(pages.values())).consume()
            if chunk_rows:
                tx.run(_MERGE_CHUNKS, doc_id=doc_id, rows=list(chunk_rows.values())).consume()
            if supplier_id is not None:
                tx.run(_MERGE_SUPPLIER, doc_id=doc_id, supplier_id=supplier_id, name=supplier.name,
                       score=supplier.score, method=supplier.method).consume()
            rec = tx.run(_DOCUMENT_COUNTS, doc_id=doc_id).single()
            return {"pages": rec["pages"], "chunks": rec["chunks"], "suppliers": rec["suppliers"]}

        got = self._write(f"write of document {doc_id}", work)
        if got["pages"] != len(pages) or got["chunks"] != len(chunk_rows):
            raise RuntimeError(f"graph write of {doc_id} is inconsistent: wrote {got}, "
                               f"expected {len(pages)} pages and {len(chunk_rows)} chunks")
        return GraphResult(
            document_id=doc_id,
            nodes={"Document": 1, "Page": got["pages"], "Chunk": got["chunks"], "Supplier": got["suppliers"]},
            relationships={"HAS_PAGE": got["pages"], "CONTAINS": got["chunks"], "ISSUED_BY": got["suppliers"]},
        )

    def delete_document(self, document_id: str) -> int:
        """Remove the Document with its Pages, Chunks and their edges (Suppliers stay).

        Returns the number of nodes deleted."""

        def work(tx) -> int:
            n = 0
            for query in (_DELETE_PAGES, _DELETE_CHUNKS, _DELETE_DOCUMENT):
                n += tx.run(query, doc_id=document_id).consume().counters.nodes_deleted
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
