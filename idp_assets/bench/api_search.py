"""`idp bench api-search`: latency of `GET /api/v1/search` on the running service at N documents.

Indexes N synthetic invoice-like documents (`idp_assets.bench.search.synthetic_export`, the same
generator and bulk indexing as `python -m idp_assets.bench.search synthetic`) into a fresh Chroma
folder and a private ArcadeDB server, starts the API (`python -m idp_api.serve`, no workers) on a
free 127.0.0.1 port over that data, and sends the queries one after another over HTTP (keep-alive).
Reports client-side latency percentiles (what a caller waits: HTTP, auth, JSON) and the server's own
search time (`took_ms`), as JSON (stdout and --out).  `--work DIR` keeps the index for a re-run
(`--reuse` skips indexing).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from idp_assets.bench.search import _free_port, _pct, _stores, bulk_index, synthetic_export, synthetic_queries

BENCH_KEY = "idp-bench-api-key"  # a throw-away key of a throw-away service on 127.0.0.1


def _wait_ready(base: str, headers: dict, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API server exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/api/v1/health", headers=headers, timeout=30).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise RuntimeError(f"the API server did not answer within {timeout:.0f} s")


def run(n_docs: int, n_queries: int, work: Path, reuse: bool = False) -> dict:
    import hashlib

    import httpx

    rng = random.Random(7)
    docs = [synthetic_export(i, rng) for i in range(n_docs)]
    queries = synthetic_queries(docs, n_queries, random.Random(11))
    with _stores(work, None, None) as (emb, vs, gs):
        idx = None
        if not reuse or vs.count() == 0:
            gs.ensure_schema()
            idx = bulk_index(docs, emb, vs, gs)
        chunks = vs.count()
        gs.close()  # the service opens its own driver
        port = _free_port()
        keys = json.dumps([{"name": "bench", "roles": ["viewer", "admin"],
                            "sha256": hashlib.sha256(BENCH_KEY.encode()).hexdigest()}])
        env = {**os.environ, "IDP_DATA_DIR": str(work), "IDP_API_DB": str(work / "api.sqlite"),
               "IDP_API_PORT": str(port), "IDP_API_HOST": "127.0.0.1", "IDP_API_WORKERS": "0",
               "IDP_API_KEYS": keys, "IDP_GRAPH_URI": gs.uri, "IDP_GRAPH_MANAGED": "0",
               "IDP_GRAPH_PASSWORD": gs.password, "IDP_GRAPH_DATABASE": gs.database or "idp",
               "DAGSTER_HOME": str(work / "dagster_home")}
        (work / "dagster_home").mkdir(parents=True, exist_ok=True)
        log = open(work / "api-server.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "idp_api.serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        base, headers = f"http://127.0.0.1:{port}", {"X-API-Key": BENCH_KEY}
        try:
            _wait_ready(base, headers, proc)
            client_ms, server_ms, hits = [], [], 0
            parts: dict[str, list[float]] = {"vector_ms": [], "exact_ms": [], "graph_ms": []}
            with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
                for q in queries[:5]:  # warm caches (HNSW pages, Bolt connections)
                    client.get("/api/v1/search", params={"q": q, "k": 10}).raise_for_status()
                for q in queries:
                    t0 = time.perf_counter()
                    r = client.get("/api/v1/search", params={"q": q, "k": 10})
                    client_ms.append((time.perf_counter() - t0) * 1000)
                    r.raise_for_status()
                    body = r.json()
                    server_ms.append(body["took_ms"])
                    for key, values in parts.items():
                        values.append(body["timings_ms"].get(key, 0.0))
                    hits += bool(body["hits"])
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()

    def summary(v: list[float]) -> dict:
        return {"p50": _pct(v, 50), "p95": _pct(v, 95), "p99": _pct(v, 99), "max": round(max(v), 1),
                "mean": round(statistics.mean(v), 1)}

    return {"benchmark": "api-search", "documents": n_docs, "chunks": chunks, "index": idx, "queries": len(queries),
            "queries_with_hits": hits, "client_latency_ms": summary(client_ms), "server_search_ms": summary(server_ms),
            "server_parts_p95_ms": {k: _pct(v, 95) for k, v in parts.items()},
            "goal_p95_ms": 300, "cpu_count": os.cpu_count()}


@click.command("api-search")
@click.option("--docs", default=10000, show_default=True, help="synthetic documents indexed")
@click.option("--queries", default=200, show_default=True)
@click.option("--work", default=None, type=click.Path(file_okay=False), help="keep Chroma + graph here (default: temp)")
@click.option("--reuse", is_flag=True, help="use the index already in --work")
@click.option("--out", default="bench_api_search.json", show_default=True)
def bench_api_search(docs: int, queries: int, work: str | None, reuse: bool, out: str) -> None:
    """p50/p95 of GET /api/v1/search over HTTP with the models warm in the service, at N documents."""
    with tempfile.TemporaryDirectory(prefix="idp-bench-api-") as tmp:
        res = run(docs, queries, Path(work or tmp), reuse=reuse)
    text = json.dumps(res, indent=2)
    Path(out).write_text(text)
    click.echo(text)
