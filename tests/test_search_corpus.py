"""The development corpus, indexed from pipeline results: Recall@5 of hybrid vs vector-only search,
and idempotency of indexing (processing the corpus twice == once).

The pipeline results are tests/data/corpus_results.jsonl.gz: the `idp process` exports of the 79
development documents, trimmed to what indexing reads (page texts, tables, fields, supplier match);
`python -m idp_assets.bench.search snapshot --results DIR --out FILE` rebuilds it from a fresh run.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from idp_assets.bench.search import DEFAULT_QUERIES, evaluate, index_corpus, load_queries, load_snapshot
from resources.embedder import Embedder
from resources.vectors import ENTITIES_COLLECTION, VectorStore

pytestmark = [pytest.mark.servers, pytest.mark.slow]


class CachingEmbedder:
    """The real embedder, memoised by text: the second pass over the corpus re-runs every store write."""

    def __init__(self, inner: Embedder):
        self.inner, self.cache, self.calls = inner, {}, 0

    @property
    def version(self) -> str:
        return self.inner.version

    def embed(self, texts):
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        self.calls += len(todo)
        for t, v in zip(todo, self.inner.embed(todo)):
            self.cache[t] = v
        return [self.cache[t] for t in texts]


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory, bolt_server):
    from resources.graph import GraphStore

    docs = load_snapshot()
    gs = GraphStore(uri=bolt_server.uri, user=bolt_server.user, password=bolt_server.password,
                    database=bolt_server.database, manage_local_server=False)
    with gs.driver().session(database=bolt_server.database) as session:
        session.run("MATCH (n) DETACH DELETE n").consume()
    vs = VectorStore(path=str(tmp_path_factory.mktemp("corpus") / "chroma"))
    emb = CachingEmbedder(Embedder(torch_threads=1))
    stats = index_corpus(docs, emb, vs, gs)
    try:
        yield docs, emb, vs, gs, stats
    finally:
        gs.close()


def test_snapshot_is_the_development_corpus(corpus):
    docs = load_snapshot()
    manifest = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    assert sorted(d["corpus_id"] for d in docs) == sorted(m["id"] for m in manifest)
    files = {m["id"]: corpus / m["file"] for m in manifest}
    for d in docs:  # the document id is the sha256 of the corpus file: results belong to these files
        assert hashlib.sha256(files[d["corpus_id"]].read_bytes()).hexdigest() == d["document_id"]


def test_query_set_is_well_formed():
    queries = load_queries(DEFAULT_QUERIES)
    ids = {d["corpus_id"] for d in load_snapshot()}
    assert len(queries) >= 30 and len({q["query"] for q in queries}) == len(queries)
    assert all(q["relevant"] and set(q["relevant"]) <= ids for q in queries)


def test_hybrid_recall_at_5_beats_vector_only(corpus_index):
    docs, emb, vs, gs, stats = corpus_index
    assert stats["documents"] == len(docs) == 79
    res = evaluate(load_queries(DEFAULT_QUERIES), docs, emb, vs, gs, k=5)
    print(json.dumps({k: v for k, v in res.items() if k != "per_query"}))
    for row in res["per_query"]:
        if row["hybrid"] < 1:
            print("missed:", row["query"], row["hybrid_top"])
    assert res["hybrid_recall@5"] >= 0.9
    assert res["hybrid_recall@5"] > res["vector_recall@5"]
    # identifiers are where the graph and exact matching matter most
    ident = [r for r in res["per_query"] if r["query"].startswith(("DE88", "NL50", "INV/", "IBAN ", "invoice number"))]
    assert ident and all(r["hybrid"] == 1.0 for r in ident)


def test_processing_the_corpus_twice_changes_nothing(corpus_index):
    docs, emb, vs, gs, _ = corpus_index
    once = (gs.counts(), vs.count(), vs.count(collection=ENTITIES_COLLECTION))
    assert once[0]["nodes"]["Document"] == 79 and once[0]["relationships"]["MENTIONS"] > 0
    assert once[0]["relationships"]["DUPLICATE_OF"] >= 1  # two Lieferant GmbH invoices share number 471102
    calls = emb.calls
    index_corpus(docs, emb, vs, gs)
    assert emb.calls == calls  # same texts: chunking and entities are deterministic
    assert (gs.counts(), vs.count(), vs.count(collection=ENTITIES_COLLECTION)) == once
