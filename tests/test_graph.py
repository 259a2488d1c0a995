"""GraphStore against a real ArcadeDB server over Bolt."""

from __future__ import annotations

import hashlib
import threading

import pytest

from idp_assets.models import Chunk, OcrPage, OcrPages, SourceDocument, SupplierMatch
from resources import graph_server
from resources.graph import LABELS, REL_TYPES, GraphStore
from tests.fixtures.bolt import _free_ports

pytestmark = pytest.mark.servers


def nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


def nonzero_counts(c: dict) -> dict:
    return {k: nonzero(v) for k, v in c.items()}


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
    assert nonzero(result.nodes) == {"Document": 1, "Page": 2, "Chunk": 3, "Supplier": 1}
    assert nonzero(result.relationships) == {"HAS_PAGE": 2, "CONTAINS": 3, "ISSUED_BY": 1}
    assert nonzero_counts(graph_store.counts()) == {
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
    assert set(kinds) == set(LABELS)
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
    assert nonzero(counts["nodes"]) == {"Document": 1, "Page": 1, "Chunk": 2, "Supplier": 1}
    assert nonzero(counts["relationships"]) == {"HAS_PAGE": 1, "CONTAINS": 2, "ISSUED_BY": 1}
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
    assert nonzero(counts["nodes"]) == {"Document": 2, "Page": 4, "Chunk": 6, "Supplier": 1}
    assert counts["relationships"]["ISSUED_BY"] == 2

    deleted = graph_store.delete_document(a[0].document_id)
    assert deleted == 1 + 2 + 3
    counts = graph_store.counts()
    assert nonzero(counts["nodes"]) == {"Document": 1, "Page": 2, "Chunk": 3, "Supplier": 1}
    assert nonzero(counts["relationships"]) == {"HAS_PAGE": 2, "CONTAINS": 3, "ISSUED_BY": 1}

    graph_store.delete_document(b[0].document_id)
    assert nonzero(graph_store.counts()["nodes"]) == {"Supplier": 1}
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
    assert nonzero(res.output_for_node("graph_written")) == {"Document": 1, "Page": 2, "Chunk": 3, "Supplier": 1}
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


# -- full model: tables, line items, entities, duplicates ---------------------------------------

from idp_assets.logic.entities import Entity  # noqa: E402
from idp_assets.models import Table  # noqa: E402


def make_full(name: str, invoice="RE-1", iban="DE02120300000000202051", extra_entity: str | None = "Only Here GmbH",
              n_rows=2, supplier_id="sup-1"):
    source, ocr, chunks, supplier = make_document(name, supplier_id=supplier_id)
    doc = source.document_id
    tables = [Table(page=1, rows=[["description", "qty", "amount"]] + [[f"item {i}", "1", f"{i}.00"]
                                                                          for i in range(n_rows)], source="test")]
    ents = [Entity(kind="IBAN", value=iban, norm=iban, chunk_ids=[chunks[0].chunk_id]),
            Entity(kind="InvoiceNumber", value=invoice, norm=invoice.replace("-", ""),
                   chunk_ids=[chunks[0].chunk_id, chunks[1].chunk_id])]
    if extra_entity:
        ents.append(Entity(kind="Organization", value=extra_entity, norm=extra_entity.lower(),
                           chunk_ids=[chunks[2].chunk_id]))
    props = {"doc_type": "invoice", "invoice_number": invoice, "date": "2024-01-02", "total": "10.00",
             "currency": "EUR", "supplier_name": "ACME GmbH", "dup_key": f"id:{supplier_id}|{invoice}"}
    assert doc
    return (source, ocr, chunks, supplier), {"tables": tables, "entities": ents, "properties": props}


def test_full_document_model(graph_store):
    args, kw = make_full("full.pdf")
    res = graph_store.write_document(*args, **kw)
    assert nonzero(res.nodes) == {"Document": 1, "Page": 2, "Chunk": 3, "Table": 1, "LineItem": 2,
                                  "Supplier": 1, "Entity": 3}
    assert nonzero(res.relationships) == {"HAS_PAGE": 2, "CONTAINS": 3, "MENTIONS": 4, "ISSUED_BY": 1,
                                          "HAS_TABLE": 1, "HAS_ITEM": 2}
    assert nonzero_counts(graph_store.counts()) == {"nodes": nonzero(res.nodes),
                                                     "relationships": nonzero(res.relationships)}
    with graph_store.driver().session(database=graph_store.database) as s:
        rec = s.run("MATCH (d:Document {id: $id})-[:HAS_TABLE]->(t:Table)-[:HAS_ITEM]->(li:LineItem) "
                    "RETURN t.header AS h, li.description AS desc ORDER BY li.row", id=args[0].document_id).data()
        doc = s.run("MATCH (d:Document {id: $id}) RETURN d", id=args[0].document_id).single()["d"]
    assert [r["desc"] for r in rec] == ["item 0", "item 1"] and rec[0]["h"] == "description | qty | amount"
    assert (doc["invoice_number"], doc["doc_type"], doc["dup_key"]) == ("RE-1", "invoice", "id:sup-1|RE-1")
    # schema: every label has its uniqueness constraint / index
    assert set(graph_store.ensure_schema()) == set(LABELS) and set(REL_TYPES) >= set(res.relationships)


def test_full_rewrite_is_idempotent_and_prunes(graph_store):
    args, kw = make_full("full.pdf")
    graph_store.write_document(*args, **kw)
    first = graph_store.counts()
    graph_store.write_document(*args, **kw)
    assert graph_store.counts() == first
    # fewer rows, the organisation entity gone: its node (mentioned by nobody else) is removed
    args2, kw2 = make_full("full.pdf", extra_entity=None, n_rows=1)
    res = graph_store.write_document(*args2, **kw2)
    assert res.nodes["LineItem"] == 1 and res.nodes["Entity"] == 2
    counts = graph_store.counts()
    assert counts["nodes"]["Entity"] == 2 and counts["nodes"]["LineItem"] == 1
    assert counts["relationships"]["MENTIONS"] == 3
    with graph_store.driver().session(database=graph_store.database) as s:
        assert s.run("MATCH (n) WHERE NOT (n)--() RETURN count(n) AS n").single()["n"] == 0


def test_shared_entities_survive_delete(graph_store):
    a_args, a_kw = make_full("a.pdf", invoice="A-1", extra_entity="Only A")
    b_args, b_kw = make_full("b.pdf", invoice="B-1", extra_entity="Only B")
    graph_store.write_document(*a_args, **a_kw)
    graph_store.write_document(*b_args, **b_kw)
    counts = graph_store.counts()
    assert counts["nodes"]["Entity"] == 5  # IBAN shared, two invoice numbers, two organisations
    related = graph_store.related_documents([a_args[0].document_id])
    assert {(r["related_id"], r["via"]) for r in related} == {(b_args[0].document_id, "supplier"),
                                                              (b_args[0].document_id, "entity")}
    assert any("IBAN" in r["detail"] for r in related if r["via"] == "entity")
    rows = graph_store.documents_mentioning(["IBAN:DE02120300000000202051"])
    assert {r["document_id"] for r in rows} == {a_args[0].document_id, b_args[0].document_id}

    deleted = graph_store.delete_document(a_args[0].document_id)
    assert deleted == 1 + 2 + 3 + 1 + 2 + 2  # doc, pages, chunks, table, items, its own 2 entities
    with graph_store.driver().session(database=graph_store.database) as s:
        keys = sorted(r["id"] for r in s.run("MATCH (e:Entity) RETURN e.id AS id"))
    assert keys == ["IBAN:DE02120300000000202051", "InvoiceNumber:B1", "Organization:only b"]
    graph_store.delete_document(b_args[0].document_id)
    assert nonzero(graph_store.counts()["nodes"]) == {"Supplier": 1}


@pytest.mark.parametrize("order", ["ab", "ba"])
def test_duplicate_of_same_supplier_and_invoice_number(graph_store, order):
    docs = {n: make_full(f"{n}.pdf", invoice="DUP-7") for n in "ab"}
    for n in order:
        graph_store.write_document(*docs[n][0], **docs[n][1])
    ids = sorted(docs[n][0][0].document_id for n in "ab")
    with graph_store.driver().session(database=graph_store.database) as s:
        edges = s.run("MATCH (x:Document)-[:DUPLICATE_OF]->(y:Document) RETURN x.id AS x, y.id AS y").data()
    assert edges == [{"x": ids[1], "y": ids[0]}]  # larger id -> smaller id, whatever the order
    # rewriting one of them keeps exactly one edge; another invoice number removes it
    graph_store.write_document(*docs["a"][0], **docs["a"][1])
    assert graph_store.counts()["relationships"]["DUPLICATE_OF"] == 1
    other = make_full("a.pdf", invoice="OTHER-1")
    graph_store.write_document(*other[0], **other[1])
    assert graph_store.counts()["relationships"]["DUPLICATE_OF"] == 0
    # same invoice number but another supplier is not a duplicate
    c = make_full("c.pdf", invoice="DUP-7", supplier_id="sup-2")
    graph_store.write_document(*c[0], **c[1])
    assert graph_store.counts()["relationships"]["DUPLICATE_OF"] == 0


def test_entity_must_point_at_own_chunks(graph_store):
    args, kw = make_full("a.pdf")
    kw["entities"][0].chunk_ids = ["not-a-chunk-of-this-document"]
    with pytest.raises(ValueError, match="not in this document"):
        graph_store.write_document(*args, **kw)
    with pytest.raises(ValueError, match="unknown document properties"):
        graph_store.write_document(*args, properties={"evil": "x"})
    assert graph_store.counts()["nodes"]["Document"] == 0
