"""GraphStore against a real ArcadeDB server over Bolt."""

from __future__ import annotations

import hashlib
import threading

import pytest

from idp_assets.models import Chunk, OcrPage, OcrPages, SourceDocument, SupplierMatch
from resources import graph_server
from resources.graph import GraphStore
from tests.fixtures.bolt import _free_ports

pytestmark = pytest.mark.servers


def _doc_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def make_document(
    name: str,
    n_pages: int = 2,
    n_chunks: int = 3,
    supplier_id: str | None = "sup-1",
    supplier_name: str | None = "ACME GmbH",
):
    doc_id = _doc_id(name)
    source = SourceDocument(
        document_id=doc_id,
        uri=f"file:///in/{name}",
        filename=name,
        media_type="application/pdf",
        bytes=1234,
        store_uri=f"file:///store/{doc_id}",
    )
    ocr = OcrPages(
        document_id=doc_id,
        pages=[
            OcrPage(
                number=i,
                width=1000,
                height=1400,
                dpi=200.0,
                rotation=0,
                engine="tesseract",
                compute="cpu",
                route_reason="test",
                confidence=0.9,
                text=f"page {i} text",
            )
            for i in range(1, n_pages + 1)
        ],
    )
    chunks = [
        Chunk(
            chunk_id=f"{doc_id}:c{i}",
            document_id=doc_id,
            page=(i % n_pages) + 1 if n_pages else None,
            kind="paragraph",
            text=f"chunk {i} " * 100,
        )
        for i in range(n_chunks)
    ]
    supplier = SupplierMatch(
        document_id=doc_id,
        supplier_id=supplier_id,
        name=supplier_name,
        score=0.95 if supplier_id else 0.0,
        method="vat_id" if supplier_id else "new",
    )
    return source, ocr, chunks, supplier


def test_write_document_counts(graph_store):
    source, ocr, chunks, supplier = make_document("a.pdf")
    result = graph_store.write_document(source, ocr, chunks, supplier)

    assert result.document_id == source.document_id
    assert result.nodes == {"Document": 1, "Page": 2, "Chunk": 3, "Supplier": 1}
    assert result.relationships == {"HAS_PAGE": 2, "CONTAINS": 3, "ISSUED_BY": 1}
    assert graph_store.counts() == {
        "nodes": {"Document": 1, "Page": 2, "Chunk": 3, "Supplier": 1},
        "relationships": {"HAS_PAGE": 2, "CONTAINS": 3, "ISSUED_BY": 1},
    }

    with graph_store.driver().session(database=graph_store.database) as s:
        doc = s.run("MATCH (d:Document {id: $id}) RETURN d", id=source.document_id).single()["d"]
        assert (doc["filename"], doc["media_type"], doc["bytes"]) == ("a.pdf", "application/pdf", 1234)
        page = s.run("MATCH (p:Page {id: $id}) RETURN p", id=f"{source.document_id}:p2").single()["p"]
        assert (page["number"], page["engine"], page["confidence"]) == (2, "tesseract", 0.9)
        texts = [r["t"] for r in s.run("MATCH (c:Chunk) RETURN c.text AS t")]
        assert texts and all(0 < len(t) <= 500 for t in texts)


def test_schema_constraints_enforced(graph_store):
    kinds = graph_store.ensure_schema()
    assert set(kinds) == {"Document", "Page", "Chunk", "Supplier"}
    assert set(kinds.values()) <= {"constraint", "index"}
    assert graph_store.ensure_schema() == kinds  # IF NOT EXISTS: idempotent
    if set(kinds.values()) == {"constraint"}:
        from neo4j.exceptions import ConstraintError

        with graph_store.driver().session(database=graph_store.database) as s:
            s.run("CREATE (:Supplier {id: 'dup'})").consume()
            with pytest.raises(ConstraintError):
                s.run("CREATE (:Supplier {id: 'dup'})").consume()


def test_rewrite_is_idempotent(graph_store):
    doc = make_document("a.pdf")
    graph_store.write_document(*doc)
    first = graph_store.counts()
    again = graph_store.write_document(*doc)
    assert graph_store.counts() == first
    assert again.nodes["Chunk"] == 3


def test_rewrite_with_fewer_chunks_and_pages_leaves_no_orphans(graph_store):
    graph_store.write_document(*make_document("a.pdf", n_pages=3, n_chunks=5))
    result = graph_store.write_document(*make_document("a.pdf", n_pages=1, n_chunks=2))
    assert result.nodes["Chunk"] == 2 and result.nodes["Page"] == 1
    counts = graph_store.counts()
    assert counts["nodes"] == {"Document": 1, "Page": 1, "Chunk": 2, "Supplier": 1}
    assert counts["relationships"] == {"HAS_PAGE": 1, "CONTAINS": 2, "ISSUED_BY": 1}
    with graph_store.driver().session(database=graph_store.database) as s:
        ids = sorted(r["id"] for r in s.run("MATCH (c:Chunk) RETURN c.id AS id"))
        orphans = s.run("MATCH (n) WHERE NOT (n)--() RETURN count(n) AS n").single()["n"]
    doc_id = _doc_id("a.pdf")
    assert ids == [f"{doc_id}:c0", f"{doc_id}:c1"]
    assert orphans == 0


def test_supplier_change_replaces_issued_by(graph_store):
    graph_store.write_document(*make_document("a.pdf", supplier_id="sup-1"))
    graph_store.write_document(*make_document("a.pdf", supplier_id="sup-2", supplier_name="Other AG"))
    counts = graph_store.counts()
    assert counts["relationships"]["ISSUED_BY"] == 1
    assert counts["nodes"]["Supplier"] == 2  # supplier nodes are never deleted by document writes
    with graph_store.driver().session(database=graph_store.database) as s:
        target = s.run("MATCH (:Document)-[:ISSUED_BY]->(s:Supplier) RETURN s.id AS id").single()["id"]
    assert target == "sup-2"

    result = graph_store.write_document(*make_document("a.pdf", supplier_id=None, supplier_name=None))
    assert result.nodes["Supplier"] == 0
    assert graph_store.counts()["relationships"]["ISSUED_BY"] == 0


def test_no_supplier_node_without_supplier_id(graph_store):
    result = graph_store.write_document(*make_document("a.pdf", supplier_id=None, supplier_name="Unknown"))
    assert result.nodes["Supplier"] == 0
    assert graph_store.counts()["nodes"]["Supplier"] == 0


def test_shared_supplier_and_delete(graph_store):
    a = make_document("a.pdf", supplier_id="sup-shared")
    b = make_document("b.pdf", supplier_id="sup-shared")
    graph_store.write_document(*a)
    graph_store.write_document(*b)
    counts = graph_store.counts()
    assert counts["nodes"] == {"Document": 2, "Page": 4, "Chunk": 6, "Supplier": 1}
    assert counts["relationships"]["ISSUED_BY"] == 2

    deleted = graph_store.delete_document(a[0].document_id)
    assert deleted == 1 + 2 + 3
    counts = graph_store.counts()
    assert counts["nodes"] == {"Document": 1, "Page": 2, "Chunk": 3, "Supplier": 1}
    assert counts["relationships"] == {"HAS_PAGE": 2, "CONTAINS": 3, "ISSUED_BY": 1}

    graph_store.delete_document(b[0].document_id)
    assert graph_store.counts()["nodes"] == {"Document": 0, "Page": 0, "Chunk": 0, "Supplier": 1}
    assert graph_store.delete_document(b[0].document_id) == 0  # deleting twice is harmless


def test_concurrent_writes_share_one_supplier(graph_store):
    docs = [make_document(f"doc{i}.pdf", supplier_id="sup-race") for i in range(4)]
    errors: list[BaseException] = []

    def write(doc):
        try:
            graph_store.write_document(*doc)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    graph_store.ensure_schema()
    threads = [threading.Thread(target=write, args=(d,)) for d in docs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    counts = graph_store.counts()
    assert counts["nodes"]["Supplier"] == 1
    assert counts["nodes"]["Document"] == 4
    assert counts["relationships"]["ISSUED_BY"] == 4


@pytest.mark.parametrize(
    "evil",
    [
        "x'}) DETACH DELETE n //",
        'x"}) MATCH (n) DETACH DELETE n RETURN 1 //',
        "`) DETACH DELETE n; MATCH (m) DETACH DELETE m //",
        "ünïcödé 😀 \\ \n \0 end",
    ],
)
def test_injection_round_trips_as_data(graph_store, evil):
    source, ocr, chunks, supplier = make_document("victim.pdf")
    graph_store.write_document(source, ocr, chunks, supplier)
    before = graph_store.counts()

    src2 = source.model_copy(update={"document_id": _doc_id(evil), "filename": evil})
    ocr2 = ocr.model_copy(update={"document_id": src2.document_id, "pages": []})
    chunk2 = Chunk(chunk_id=evil, document_id=src2.document_id, page=None, kind="page", text=evil)
    sup2 = supplier.model_copy(update={"document_id": src2.document_id, "supplier_id": evil, "name": evil})
    graph_store.write_document(src2, ocr2, [chunk2], sup2)

    after = graph_store.counts()
    assert after["nodes"]["Document"] == before["nodes"]["Document"] + 1
    assert after["nodes"]["Supplier"] == before["nodes"]["Supplier"] + 1
    assert after["nodes"]["Page"] == before["nodes"]["Page"]
    with graph_store.driver().session(database=graph_store.database) as s:
        rec = s.run(
            "MATCH (d:Document {id: $id})-[:ISSUED_BY]->(s:Supplier) "
            "MATCH (d)-[:CONTAINS]->(c:Chunk) RETURN d.filename AS f, s.name AS n, s.id AS sid, c.text AS t",
            id=src2.document_id,
        ).single()
    assert (rec["f"], rec["n"], rec["sid"], rec["t"]) == (evil, evil, evil, evil)

    graph_store.delete_document(src2.document_id)
    final = graph_store.counts()
    assert final["nodes"]["Document"] == before["nodes"]["Document"]
    assert final["nodes"]["Chunk"] == before["nodes"]["Chunk"]


def test_mismatched_document_ids_are_rejected(graph_store):
    source, ocr, chunks, supplier = make_document("a.pdf")
    _, other_ocr, other_chunks, _ = make_document("b.pdf")
    with pytest.raises(ValueError):
        graph_store.write_document(source, other_ocr, chunks, supplier)
    with pytest.raises(ValueError):
        graph_store.write_document(source, ocr, chunks + other_chunks[:1], supplier)
    assert graph_store.counts()["nodes"]["Document"] == 0


def test_manager_reuses_running_server(bolt_server, tmp_path):
    pid_before = graph_server._read_pidfile(bolt_server.home)["pid"]
    # same home: already answering, nothing new launched
    uri = graph_server.ensure_running(
        bolt_server.home,
        bolt_port=bolt_server.bolt_port,
        http_port=bolt_server.http_port,
        password=bolt_server.password,
        database=bolt_server.database,
        timeout=30,
    )
    assert uri == bolt_server.uri
    # another home, same port: reuses whatever answers Bolt there, launches nothing
    other = tmp_path / "other-home"
    uri = graph_server.ensure_running(
        other, bolt_port=bolt_server.bolt_port, http_port=bolt_server.http_port,
        password=bolt_server.password, database=bolt_server.database, timeout=30,
    )
    assert uri == bolt_server.uri
    assert not (other / graph_server.PIDFILE).exists()
    assert graph_server._read_pidfile(bolt_server.home)["pid"] == pid_before
    st = graph_server.status(bolt_server.home, bolt_server.bolt_port, bolt_server.password, bolt_server.database)
    assert st["process_running"] and st["bolt"] == "ok"


def test_manager_rejects_wrong_password(bolt_server, tmp_path):
    with pytest.raises(RuntimeError, match="rejected the credentials"):
        graph_server.ensure_running(
            tmp_path, bolt_port=bolt_server.bolt_port, http_port=bolt_server.http_port,
            password="not-the-password", database=bolt_server.database, timeout=10,
        )


def test_graph_store_manages_local_server(bolt_server):
    """manage_local_server=True against a port that already answers reuses the server."""
    with GraphStore(
        uri=bolt_server.uri,
        password=bolt_server.password,
        database=bolt_server.database,
        manage_local_server=True,
        server_home=str(bolt_server.home),
        server_http_port=bolt_server.http_port,
    ) as store:
        assert set(store.counts()["nodes"]) >= {"Document", "Page", "Chunk", "Supplier"}


def test_startup_time_reported(bolt_server):
    print(f"ArcadeDB Bolt server start-up: {bolt_server.startup_seconds:.1f}s")
    assert bolt_server.startup_seconds < 120


def test_graph_store_in_dagster_run(bolt_server, graph_store, monkeypatch):
    """The resource works inside a Dagster run with an EnvVar password and is torn down after."""
    import dagster as dg

    monkeypatch.setenv("IDP_GRAPH_PASSWORD", bolt_server.password)
    seen: list[GraphStore] = []

    @dg.asset
    def graph_written(graph: GraphStore) -> dict:
        seen.append(graph)
        result = graph.write_document(*make_document("dagster.pdf"))
        return result.nodes

    res = dg.materialize(
        [graph_written],
        resources={
            "graph": GraphStore(
                uri=bolt_server.uri,
                password=dg.EnvVar("IDP_GRAPH_PASSWORD"),
                database=bolt_server.database,
                manage_local_server=False,
            )
        },
    )
    assert res.success
    assert res.output_for_node("graph_written") == {"Document": 1, "Page": 2, "Chunk": 3, "Supplier": 1}
    assert seen and seen[0]._driver is None  # teardown_after_execution closed the driver
    assert graph_store.counts()["nodes"]["Document"] == 1


@pytest.mark.slow
def test_graph_store_restarts_dead_managed_server(tmp_path):
    """A managed server that dies between writes is started again by the retry."""
    bolt_port, http_port = _free_ports(2)
    store = GraphStore(
        uri=f"bolt://127.0.0.1:{bolt_port}",
        password="idp-test-password",
        server_home=str(tmp_path / "graph"),
        server_http_port=http_port,
        max_retries=3,
    )
    try:
        store.write_document(*make_document("a.pdf"))
        graph_server.stop(tmp_path / "graph")
        store.write_document(*make_document("b.pdf"))
        assert store.counts()["nodes"]["Document"] == 2  # data survived the restart
    finally:
        store.close()
        graph_server.stop(tmp_path / "graph")
