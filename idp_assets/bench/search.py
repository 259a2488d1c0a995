"""Search evaluation and benchmark.

    python -m idp_assets.bench.search recall [--results DIR | --snapshot FILE] [--queries FILE] [--out JSON]
        index the development corpus (pipeline exports from `idp process`, or the trimmed
        snapshot in tests/data) into a fresh Chroma + graph and report Recall@5 of hybrid
        search and of vector-only search over the query set.
    python -m idp_assets.bench.search synthetic [--docs 10000] [--queries 200] [--out JSON]
        index N synthetic documents (generated text, pre-computed in batches through the same
        embedder and the same index functions) and measure indexing throughput (chunks/s) and
        query latency percentiles of hybrid search.
    python -m idp_assets.bench.search snapshot --results DIR --out FILE
        write the trimmed, gzipped JSONL snapshot of pipeline exports used by the tests.

Both measuring commands start their own ArcadeDB Bolt server (a free port, a temporary
home) unless --graph-uri is given, and write JSON (stdout and --out).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from idp_assets.hybrid_search import (
    _context,
    chunk_metadata,
    entity_entry_id,
    NAME_KINDS,
    from_export,
    index_export,
    prepare_document,
    search,
    trim_export,
)
from idp_assets.logic.chunking import embedding_input

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SNAPSHOT = REPO / "tests" / "data" / "corpus_results.jsonl.gz"
DEFAULT_QUERIES = REPO / "tests" / "data" / "search_queries.jsonl"


# -- corpus ------------------------------------------------------------------------------------

def load_results_dir(results: str | Path) -> list[dict]:
    """`idp process` exports (one JSON per document), trimmed; `corpus_id` = file stem."""
    out = []
    for p in sorted(Path(results).glob("*.json")):
        d = json.loads(p.read_text())
        if "document_id" not in d or "pages" not in d:
            continue
        t = trim_export(d)
        t["corpus_id"] = p.stem
        out.append(t)
    return out


def load_snapshot(path: str | Path = DEFAULT_SNAPSHOT) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_snapshot(docs: list[dict], path: str | Path) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(d, ensure_ascii=False, sort_keys=True) + "\n")


def load_queries(path: str | Path = DEFAULT_QUERIES) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def index_corpus(docs: Iterable[dict], embedder, vector_store, graph_store=None) -> dict:
    t0 = time.perf_counter()
    n_docs = n_chunks = n_entities = 0
    for d in docs:
        got = index_export(d, embedder, vector_store, graph_store)
        n_docs += 1
        n_chunks += got["chunks"]
        n_entities += got["entities"]
    return {"documents": n_docs, "chunks": n_chunks, "entities": n_entities,
            "seconds": round(time.perf_counter() - t0, 2)}


def recall_at(hit_ids: list[str], relevant: list[str], k: int) -> float:
    top = set(hit_ids[:k])
    return sum(r in top for r in relevant) / len(relevant)


def evaluate(queries: list[dict], docs: list[dict], embedder, vector_store, graph_store=None, k: int = 5) -> dict:
    """Recall@k of hybrid and vector-only search; `relevant` in the queries are corpus ids."""
    by_corpus = {d["corpus_id"]: d["document_id"] for d in docs}
    to_corpus = {v: k_ for k_, v in by_corpus.items()}
    unknown = sorted({r for q in queries for r in q["relevant"] if r not in by_corpus})
    if unknown:
        raise ValueError(f"query set names documents not in the corpus: {unknown}")
    rows = []
    for q in queries:
        rel = [by_corpus[r] for r in q["relevant"]]
        row = {"query": q["query"], "relevant": q["relevant"]}
        for mode in ("hybrid", "vector"):
            timing: dict = {}
            hits = search(q["query"], embedder, vector_store, graph_store, k=max(k, 10), mode=mode, timings=timing)
            ids = [h.document_id for h in hits]
            row[mode] = round(recall_at(ids, rel, k), 4)
            row[f"{mode}_top"] = [to_corpus.get(i, i[:12]) for i in ids[:k]]
            row[f"{mode}_ms"] = round(timing["total_ms"], 1)
        rows.append(row)
    return {
        "k": k,
        "queries": len(rows),
        f"hybrid_recall@{k}": round(statistics.mean(r["hybrid"] for r in rows), 4),
        f"vector_recall@{k}": round(statistics.mean(r["vector"] for r in rows), 4),
        "per_query": rows,
    }


# -- servers for the command line ----------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _stores(work: Path, graph_uri: str | None, password: str | None):
    from resources.embedder import Embedder
    from resources.graph import GraphStore
    from resources.graph_server import ensure_running, stop
    from resources.vectors import VectorStore

    home = None
    if graph_uri is None:
        home = work / "graph"
        bolt, http = _free_port(), _free_port()
        password = "idp-bench-password"
        graph_uri = ensure_running(home, bolt_port=bolt, http_port=http, password=password, database="idp",
                                   timeout=180)
    gs = GraphStore(uri=graph_uri, password=password or "", database="idp", manage_local_server=False)
    try:
        yield Embedder(torch_threads=1), VectorStore(path=str(work / "chroma")), gs
    finally:
        gs.close()
        if home is not None:
            stop(home)


# -- synthetic benchmark -----------------------------------------------------------------------

_SUPPLIERS = [f"{a} {b} {c}" for a in ("Nord", "Süd", "Alpha", "Beta", "Mega", "Blue", "Green", "Rapid", "Prime", "Delta")
              for b in ("Bau", "Tech", "Logistik", "Food", "Paper", "Office", "Auto", "Energy", "Med", "Data")
              for c in ("GmbH", "AG", "Ltd", "SE", "KG")]
_PRODUCTS = ["printer paper A4", "toner cartridge", "office chair", "standing desk", "laptop stand", "USB-C cable",
             "coffee beans", "cleaning service", "software licence", "cloud hosting", "freight transport",
             "diesel fuel", "safety shoes", "LED panel", "server rack", "consulting hours", "catering",
             "hotel night", "train ticket", "maintenance kit"]


def _iban(rng: random.Random) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(18))
    num = int("".join(str(int(c, 36)) for c in bban + "DE00"))
    return f"DE{98 - num % 97:02d}{bban}"


def synthetic_export(i: int, rng: random.Random) -> dict:
    """One generated invoice-like document in the shape of an `idp process` export."""
    from hashlib import sha256

    doc_id = sha256(f"synthetic-{i}".encode()).hexdigest()
    sup = _SUPPLIERS[rng.randrange(len(_SUPPLIERS))]
    sup_i = _SUPPLIERS.index(sup)
    iban = _iban(random.Random(sup_i))  # one IBAN per supplier: shared entities connect documents
    inv = f"INV-{rng.randrange(2019, 2026)}-{i:06d}"
    date = f"{rng.randrange(2019, 2026)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    items = rng.sample(_PRODUCTS, rng.randrange(2, 6))
    rows = [["description", "quantity", "unit_price", "amount"]]
    total = 0.0
    for it in items:
        q, p = rng.randrange(1, 20), rng.randrange(100, 50000) / 100
        rows.append([it, str(q), f"{p:.2f}", f"{q * p:.2f}"])
        total += q * p
    street = random.Random(-sup_i)
    text = (f"{sup}\nMusterstraße {street.randrange(1, 200)}\n{street.randrange(10000, 99999)} Musterstadt\n"
            f"Invoice number: {inv}\nDate: {date}\nTotal: {total:.2f} EUR\n"
            f"Please pay to IBAN {iban} within 30 days. Thank you for your order of {', '.join(items)}.")
    field = lambda v: {"value": v, "confidence": 0.9, "source": "synthetic", "page": 1, "raw": v}  # noqa: E731
    return {
        "document_id": doc_id,
        "corpus_id": f"synthetic-{i}",
        "source": {"uri": f"file:///synthetic/{i}.pdf", "filename": f"synthetic-{i}.pdf",
                   "media_type": "application/pdf", "bytes": 1000 + i, "store_uri": f"file:///store/{doc_id}"},
        "pages": [{"number": 1, "width": 0, "height": 0, "dpi": 300.0, "rotation": 0, "engine": "text_layer",
                   "compute": "cpu", "route_reason": "synthetic", "confidence": 1.0, "text": text}],
        "tables": [{"page": 1, "rows": rows, "source": "synthetic"}],
        "fields": {"supplier_name": field(sup), "invoice_number": field(inv), "date": field(date),
                   "total": field(f"{total:.2f}"), "currency": field("EUR"), "iban": field(iban)},
        "supplier_match": {"supplier_id": f"sup-{sup_i:03d}", "name": sup, "score": 0.95, "method": "iban"},
    }


def bulk_index(docs: list[dict], embedder, vector_store, graph_store, batch: int = 256, graph_threads: int = 2) -> dict:
    """Index many documents: embeddings in large batches, Chroma upserts in bulk, one graph tx per document."""
    from resources.vectors import ENTITIES_COLLECTION

    t0 = time.perf_counter()
    t_embed = t_chroma = t_graph = 0.0
    n_chunks = n_entities = 0
    cache: dict[str, list[float]] = {}
    pool = ThreadPoolExecutor(graph_threads) if graph_store is not None else None
    for start in range(0, len(docs), batch):
        part = docs[start : start + batch]
        prepared = []
        texts: list[str] = []
        for d in part:
            src, ocr, tables, fields, sup = from_export(d)
            chunks, all_entities, props = prepare_document(src, ocr, tables, fields, sup)
            ctx = _context(props)
            prepared.append((src, ocr, tables, sup, chunks, all_entities, props))
            entities = [e for e in all_entities if e.kind in NAME_KINDS]
            texts += [embedding_input(c, ctx) for c in chunks] + [e.value for e in entities]
        t1 = time.perf_counter()
        todo = [t for t in dict.fromkeys(texts) if t not in cache]  # same text, same vector: embed once
        for t, v in zip(todo, embedder.embed(todo)):
            cache[t] = v
        vecs = [cache[t] for t in texts]
        if len(cache) > 200_000:
            cache.clear()
        t2 = time.perf_counter()
        t_embed += t2 - t1
        pos = 0
        ids, embs, docs_, metas = [], [], [], []
        eids, eembs, edocs, emetas = [], [], [], []
        for src, ocr, tables, sup, chunks, entities, props in prepared:
            for c in chunks:
                ids.append(c.chunk_id)
                embs.append(vecs[pos])
                docs_.append(c.text)
                metas.append(chunk_metadata(c, src, sup, props))
                pos += 1
            for e in (e for e in entities if e.kind in NAME_KINDS):
                eids.append(entity_entry_id(src.document_id, e.key))
                eembs.append(vecs[pos])
                edocs.append(e.value)
                emetas.append({"document_id": src.document_id, "entity_key": e.key, "kind": e.kind,
                               "value": e.value, "chunk_id": e.chunk_ids[0], "page": 1,
                               "supplier_id": sup.supplier_id or "", "supplier_key": sup.supplier_id or "",
                               "doc_type": props["doc_type"], "date_num": 0})
                pos += 1
            n_chunks += len(chunks)
            n_entities += len(entities)
        for i in range(0, len(ids), 2000):
            vector_store.add_many(ids[i:i + 2000], embs[i:i + 2000], docs_[i:i + 2000], metas[i:i + 2000])
        for i in range(0, len(eids), 2000):
            vector_store.add_many(eids[i:i + 2000], eembs[i:i + 2000], edocs[i:i + 2000], emetas[i:i + 2000],
                                  collection=ENTITIES_COLLECTION)
        t3 = time.perf_counter()
        t_chroma += t3 - t2
        if pool is not None:  # one transaction per document, a few documents at a time
            list(pool.map(lambda p: graph_store.write_document(p[0], p[1], p[4], p[3], tables=p[2], entities=p[5],
                                                               properties=p[6]), prepared))
        t_graph += time.perf_counter() - t3
        print(f"indexed {start + len(part)}/{len(docs)} docs, {n_chunks} chunks, "
              f"{time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    if pool is not None:
        pool.shutdown()
    total = time.perf_counter() - t0
    return {"documents": len(docs), "graph_threads": graph_threads if graph_store is not None else 0, "chunks": n_chunks, "entities": n_entities, "seconds": round(total, 1),
            "chunks_per_s": round(n_chunks / total, 1), "embed_s": round(t_embed, 1), "chroma_s": round(t_chroma, 1),
            "graph_s": round(t_graph, 1),
            "chunks_per_s_without_graph": round(n_chunks / max(total - t_graph, 1e-9), 1)}


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))], 1)


def synthetic_queries(docs: list[dict], n: int, rng: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        d = docs[rng.randrange(len(docs))]
        f = d["fields"]
        kind = rng.randrange(4)
        if kind == 0:
            out.append(f["invoice_number"]["value"])
        elif kind == 1:
            out.append(f"{f['supplier_name']['value']} invoice {f['date']['value'][:7]}")
        elif kind == 2:
            out.append(f"invoice for {d['tables'][0]['rows'][1][0]}")
        else:
            out.append(f"IBAN {f['iban']['value']}")
    return out


def run_synthetic(n_docs: int, n_queries: int, work: Path, graph_uri=None, password=None, graph=True) -> dict:
    rng = random.Random(7)
    docs = [synthetic_export(i, rng) for i in range(n_docs)]
    with _stores(work, graph_uri, password) as (emb, vs, gs):
        gs = gs if graph else None
        if gs is not None:
            gs.ensure_schema()
        emb.embed(["warm-up"])
        idx = bulk_index(docs, emb, vs, gs)
        queries = synthetic_queries(docs, n_queries, random.Random(11))
        for q in queries[:5]:  # warm caches
            search(q, emb, vs, gs, k=10)
        lat, parts = [], {"vector_ms": [], "exact_ms": [], "graph_ms": []}
        found = 0
        for q in queries:
            t: dict = {}
            hits = search(q, emb, vs, gs, k=10, timings=t)
            lat.append(t["total_ms"])
            for key in parts:
                parts[key].append(t[key])
            found += bool(hits)
        counts = gs.counts() if gs is not None else None
    return {
        "benchmark": "synthetic",
        "index": idx,
        "graph_counts": counts,
        "queries": len(queries),
        "queries_with_hits": found,
        "latency_ms": {"p50": _pct(lat, 50), "p95": _pct(lat, 95), "p99": _pct(lat, 99), "max": round(max(lat), 1),
                       "mean": round(statistics.mean(lat), 1)},
        "latency_parts_p95_ms": {k: _pct(v, 95) for k, v in parts.items()},
        "goal_p95_ms": 300,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m idp_assets.bench.search")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recall")
    r.add_argument("--results", help="folder of `idp process` JSON exports")
    r.add_argument("--snapshot", default=str(DEFAULT_SNAPSHOT))
    r.add_argument("--queries", default=str(DEFAULT_QUERIES))
    r.add_argument("--k", type=int, default=5)
    s = sub.add_parser("synthetic")
    s.add_argument("--docs", type=int, default=10000)
    s.add_argument("--queries", type=int, default=200)
    s.add_argument("--no-graph", action="store_true")
    sn = sub.add_parser("snapshot")
    sn.add_argument("--results", required=True)
    for p in (r, s, sn):
        p.add_argument("--out")
    for p in (r, s):
        p.add_argument("--work", help="folder for Chroma and the graph server (default: a temporary one)")
        p.add_argument("--graph-uri")
        p.add_argument("--graph-password")
    a = ap.parse_args(argv)

    if a.cmd == "snapshot":
        docs = load_results_dir(a.results)
        write_snapshot(docs, a.out)
        print(json.dumps({"documents": len(docs), "out": a.out}))
        return 0

    with tempfile.TemporaryDirectory(prefix="idp-bench-") as tmp:
        work = Path(a.work or tmp)
        if a.cmd == "recall":
            docs = load_results_dir(a.results) if a.results else load_snapshot(a.snapshot)
            with _stores(work, a.graph_uri, a.graph_password) as (emb, vs, gs):
                idx = index_corpus(docs, emb, vs, gs)
                res = {"benchmark": "recall", "index": idx, **evaluate(load_queries(a.queries), docs, emb, vs, gs, a.k)}
        else:
            res = run_synthetic(a.docs, a.queries, work, a.graph_uri, a.graph_password, graph=not a.no_graph)
    text = json.dumps(res, indent=2, ensure_ascii=False)
    if a.out:
        Path(a.out).write_text(text)
    summary = {k: v for k, v in res.items() if k != "per_query"}
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
