"""Hybrid search on a small real index: Chroma PersistentClient + ArcadeDB over Bolt + the bundled model."""

from __future__ import annotations

import random

import pytest

from idp_assets.bench.search import recall_at, synthetic_export
from idp_assets.hybrid_search import (
    embed_document,
    from_export,
    index_export,
    parse_query,
    search,
    self_retrieval,
    write_graph,
)
from resources.embedder import Embedder, configured_version
from resources.vectors import CHUNKS_COLLECTION, ENTITIES_COLLECTION, VectorStore

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def embedder():
    return Embedder(torch_threads=1)


def _docs():
    rng = random.Random(3)
    docs = [synthetic_export(i, rng) for i in range(6)]
    # a second copy of document 0 (another file, same supplier + invoice number): a duplicate
    dup = synthetic_export(0, random.Random(3))
    dup["document_id"] = "f" * 64
    dup["source"] = {**dup["source"], "filename": "copy-of-0.pdf", "bytes": 999}
    dup["corpus_id"] = "dup-0"
    # a document with its own supplier, text and a German IBAN written with spaces
    other = synthetic_export(99, random.Random(5))
    other["pages"][0]["text"] = ("Gardenia Bakeries (KL) Sdn Bhd\n\nTAX INVOICE\n\nWholemeal bread 3 x 2.78\n"
                                 "Chocolate cream roll 1 x 8.40\n\nTotal 16.74 MYR\n\nIBAN DE89 3704 0044 0532 0130 00")
    other["fields"]["supplier_name"]["value"] = "Gardenia Bakeries (KL) Sdn Bhd"
    other["fields"]["iban"]["value"] = "DE89370400440532013000"
    other["fields"]["date"]["value"] = "2017-10-25"
    other["supplier_match"] = {"supplier_id": "sup-gardenia", "name": "Gardenia Bakeries", "score": 0.9,
                               "method": "name"}
    return docs + [dup, other]


@pytest.fixture(scope="module")
def index(tmp_path_factory, bolt_server, embedder):
    from resources.graph import GraphStore

    gs = GraphStore(uri=bolt_server.uri, user=bolt_server.user, password=bolt_server.password,
                    database=bolt_server.database, manage_local_server=False)
    with gs.driver().session(database=bolt_server.database) as session:
        session.run("MATCH (n) DETACH DELETE n").consume()
    vs = VectorStore(path=str(tmp_path_factory.mktemp("search") / "chroma"))
    docs = _docs()
    for d in docs:
        index_export(d, embedder, vs, gs)
    try:
        yield vs, gs, {d["corpus_id"]: d for d in docs}
    finally:
        gs.close()


def test_parse_query_finds_identifiers_and_periods():
    q = parse_query("weclapp invoice October 2022 RE-20170509/505 IBAN DE89 3704 0044 0532 0130 00 total 963,11")
    kinds = {(k, n) for k, n, _ in q.identifiers}
    assert ("InvoiceNumber", "RE20170509505") in kinds and ("IBAN", "DE89370400440532013000") in kinds
    assert ("Amount", "963.11") in kinds
    assert (20221001, 20221031, "October 2022") in q.periods
    assert parse_query("receipts from 2018-06").periods == [(20180601, 20180630, "2018-06")]
    assert not parse_query("hardware store in Johor 2018").identifiers  # a bare year is no identifier


def test_exact_iban_and_invoice_number(index, embedder):
    vs, gs, docs = index
    target = docs["synthetic-3"]
    iban = target["fields"]["iban"]["value"]
    spaced = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    hits = search(f"IBAN {spaced}", embedder, vs, gs, k=5)
    # the IBAN belongs to the supplier: every document of that supplier carries it
    same_supplier = {d["document_id"] for d in docs.values()
                     if d["supplier_match"]["supplier_id"] == target["supplier_match"]["supplier_id"]}
    assert {h.document_id for h in hits[: len(same_supplier)]} == same_supplier
    assert any(r.startswith("exact IBAN") for r in hits[0].reasons)

    inv = docs["synthetic-2"]["fields"]["invoice_number"]["value"]
    hits = search(f"invoice {inv}", embedder, vs, gs, k=5)
    assert hits[0].document_id == docs["synthetic-2"]["document_id"]
    assert hits[0].page == 1 and inv in hits[0].snippet and hits[0].chunk_id
    assert any(r == f"exact InvoiceNumber {inv}" for r in hits[0].reasons)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # vector-only search knows nothing of identifiers
    vhits = search(f"invoice {inv}", embedder, vs, gs, k=5, mode="vector")
    assert all(not any(r.startswith("exact") for r in h.reasons) for h in vhits)


def test_duplicates_are_found_through_the_graph(index, embedder):
    vs, gs, docs = index
    inv = docs["synthetic-0"]["fields"]["invoice_number"]["value"]
    assert gs.counts()["relationships"]["DUPLICATE_OF"] == 1
    hits = search(inv, embedder, vs, gs, k=3)
    top2 = {h.document_id for h in hits[:2]}
    assert top2 == {docs["synthetic-0"]["document_id"], docs["dup-0"]["document_id"]}
    assert any(r.startswith("duplicate of") for h in hits[:2] for r in h.reasons)


def test_meaning_keyword_and_filters(index, embedder):
    vs, gs, docs = index
    gardenia = docs["dup-0"]["document_id"], docs["synthetic-99"]["document_id"]
    hits = search("bread from a bakery", embedder, vs, gs, k=3)
    assert hits[0].document_id == gardenia[1]
    assert hits[0].supplier_name == "Gardenia Bakeries" and hits[0].date == "2017-10-25"
    # filters: supplier (master id or name) and date
    only = search("invoice", embedder, vs, gs, k=10, supplier="sup-gardenia")
    assert [h.document_id for h in only] == [gardenia[1]]
    assert [h.document_id for h in search("invoice", embedder, vs, gs, k=10, supplier="Gardenia Bakeries")] \
        == [gardenia[1]]
    late = search("invoice", embedder, vs, gs, k=10, after="2024-01-01")
    dated = {d["document_id"] for d in docs.values() if d["fields"]["date"]["value"] >= "2024-01-01"}
    assert {h.document_id for h in late} == dated and all(h.date >= "2024-01-01" for h in late)
    with pytest.raises(ValueError, match="ISO date"):
        search("invoice", embedder, vs, gs, after="last week")
    with pytest.raises(ValueError, match="empty"):
        search("  ", embedder, vs, gs)


def test_reindex_replaces_and_self_retrieval(index, embedder):  # keep last: it changes a document
    vs, gs, docs = index
    before = (vs.count(), vs.count(collection=ENTITIES_COLLECTION), gs.counts())
    for d in docs.values():
        index_export(d, embedder, vs, gs)
    assert (vs.count(), vs.count(collection=ENTITIES_COLLECTION), gs.counts()) == before
    src, ocr, tables, fields, sup = from_export(docs["synthetic-1"])
    res, n_ent = embed_document(embedder, vs, src, ocr, tables, fields, sup)
    assert vs.count(src.document_id) == len(res.chunks) and n_ent == vs.count(src.document_id, ENTITIES_COLLECTION)
    metas = vs.collection(CHUNKS_COLLECTION).get(where={"document_id": src.document_id})["metadatas"]
    assert {m["supplier_id"] for m in metas} == {sup.supplier_id} and all(m["date_num"] > 20000000 for m in metas)
    probes = self_retrieval(embedder, vs, res.chunks, sample=2, k=10)
    assert len(probes) == 2 and all(p["found"] for p in probes)
    # fewer pages now: the stale chunks leave both stores
    ocr.pages[0].text = "short"
    res2, _ = embed_document(embedder, vs, src, ocr, tables, fields, sup)
    g, _ = write_graph(gs, src, ocr, res2.chunks, tables, fields, sup)
    assert vs.count(src.document_id) == len(res2.chunks) == g.nodes["Chunk"]


def test_recall_at():
    assert recall_at(["a", "b", "c"], ["c", "d"], 2) == 0.0
    assert recall_at(["a", "b", "c"], ["c", "a"], 3) == 1.0


def test_litellm_embedder_is_batched_normalised_and_versioned(monkeypatch):
    import litellm

    calls = []

    def fake_embedding(model, input, api_base=None, api_key=None, timeout=None):  # noqa: A002
        calls.append((model, list(input), api_key))
        return {"data": [{"index": i, "embedding": [3.0, 4.0 + len(t)]} for i, t in reversed(list(enumerate(input)))]}

    monkeypatch.setattr(litellm, "embedding", fake_embedding)
    e = Embedder(provider="litellm", litellm_model="idp-embed", model_version="2024-05", api_key="k", batch_size=2)
    vecs = e.embed(["a", "bb", "ccc"])
    assert [c[1] for c in calls] == [["a", "bb"], ["ccc"]] and calls[0][0] == "idp-embed"
    assert all(abs(sum(x * x for x in v) - 1) < 1e-9 for v in vecs)
    assert vecs[0] != vecs[1]  # order kept although the provider answered out of order
    assert e.version == "litellm:idp-embed@2024-05"

    monkeypatch.setattr(litellm, "embedding", lambda **kw: {"data": []})
    with pytest.raises(RuntimeError, match="returned 0 vectors"):
        e.embed(["x"])


def test_model_version_is_part_of_the_code_version():
    from idp_assets.search import EMBEDDINGS_CODE_VERSION, embeddings

    assert embeddings.code_versions_by_key[embeddings.key] == EMBEDDINGS_CODE_VERSION
    assert EMBEDDINGS_CODE_VERSION.endswith(Embedder().version)
    other = configured_version({"IDP_EMBED_PROVIDER": "litellm", "IDP_EMBED_MODEL": "idp-embed",
                                "IDP_EMBED_MODEL_VERSION": "v2"})
    assert other == "litellm:idp-embed@v2" != configured_version({})


def test_http_chroma_server(tmp_path, embedder):
    """VectorStore(mode="http") against a real `chroma run` server: replace, filter, exact text, query."""
    import shutil
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "run", "--path", str(tmp_path / "srv"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        vs = VectorStore(mode="http", host="127.0.0.1", port=port)
        deadline = time.monotonic() + 60
        while True:
            try:
                vs.client().heartbeat()
                break
            except Exception:  # noqa: BLE001 - not up yet
                vs._client = None
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.5)
        d = synthetic_export(7, random.Random(1))
        index_export(d, embedder, vs)
        index_export(d, embedder, vs)  # again: replaced, not added
        n = vs.count(d["document_id"])
        assert n == vs.count() and n >= 1 and vs.count(collection=ENTITIES_COLLECTION) >= 1
        inv = d["fields"]["invoice_number"]["value"]
        assert vs.find_text([inv.lower(), inv], where={"document_id": d["document_id"]})["ids"]
        hits = search(inv, embedder, vs, None, k=3)
        assert hits and hits[0].document_id == d["document_id"] and any(inv in r for r in hits[0].reasons)
    finally:
        proc.terminate()
        proc.wait(30)


def test_token_batches_group_texts_of_similar_length():
    from resources.embedder import token_batches

    lengths = [256, 5, 6, 120, 250, 7, 60]
    batches = token_batches(["t"] * len(lengths), lengths, max_items=32, max_tokens=2048)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))  # every text once
    assert batches == [[0, 4], [3, 6], [5, 2, 1]]  # never padded to more than twice its length
    for b in batches:
        assert all(2 * lengths[i] >= lengths[b[0]] for i in b)
    assert token_batches(["t"] * 5, [100] * 5, max_items=2, max_tokens=2048) == [[0, 1], [2, 3], [4]]
    assert token_batches(["t"] * 5, [100] * 5, max_items=32, max_tokens=300) == [[0, 1, 2], [3, 4]]


def test_embedding_in_length_batches_gives_the_vectors_of_one_batch(embedder):
    import numpy as np

    texts = ["Rechnung " * 120, "ACME GmbH", "Musterstraße 1, 12345 Berlin", "Total 19,99 EUR " * 30, "x"]
    got = np.asarray(embedder.embed(texts))
    one = embedder._model().encode(texts, batch_size=len(texts), normalize_embeddings=True)
    assert got.shape == one.shape and np.allclose(got, one, atol=1e-4)
