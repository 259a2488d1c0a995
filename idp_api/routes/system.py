"""`/api/v1/health` (engines, stores, queues) and `/metrics` (Prometheus)."""

from __future__ import annotations

import time

from dagster import RunsFilter
from dagster._core.storage.dagster_run import DagsterRunStatus
from fastapi import APIRouter, Request, Response

from idp_api.deps import needs
from idp_api.models import EngineHealth, HealthOut, StoreHealth
from idp_api.routes.documents import AUTH_ERRORS
from resources.storage import original_key

router = APIRouter(tags=["system"])
POOLS = ("cpu", "gpu")


def _probe(fn) -> StoreHealth:
    t0 = time.perf_counter()
    try:
        detail = fn()
        ok = True
    except Exception as exc:  # noqa: BLE001 - an unreachable store is reported, not raised
        ok, detail = False, f"{type(exc).__name__}: {str(exc)[:200]}"
    return StoreHealth(ok=ok, detail=str(detail), ms=round((time.perf_counter() - t0) * 1000, 2))


def _graph_ping(gs) -> str:
    with gs.driver().session(database=gs.database) as s:
        return f"bolt {gs.uri}: answered {s.run('RETURN 1 AS one').single()['one']}"


@router.get("/api/v1/health", response_model=HealthOut, responses=AUTH_ERRORS)
def health(request: Request, principal=needs("admin")):
    """Each engine's health and reason, whether the stores answer, queue depth per pool."""
    svc = request.app.state.services
    engines = {name: EngineHealth(ok=ok, reason=reason) for name, (ok, reason) in svc.ocr_router.engines_health().items()}
    emb = _probe(lambda: f"{svc.embedder.version}: {len(svc.embedder.embed(['health'])[0])} dimensions")
    engines["embedder"] = EngineHealth(ok=emb.ok, reason=emb.detail)
    inst = svc.instance
    stores = {
        "document_store": _probe(lambda: f"{svc.store.kind}: original lookup answered "
                                         f"({svc.store.exists(original_key('0' * 64))})"),
        "vector_store": _probe(lambda: f"chroma {svc.vector_store.mode}: {svc.vector_store.count()} chunks"),
        "graph_store": _probe(lambda: _graph_ping(svc.graph_store)),
        "supplier_master": _probe(lambda: f"{svc.master.count()} suppliers"),
        "dagster_instance": _probe(lambda: f"{inst.get_runs_count()} runs"),
        "api_db": _probe(lambda: f"{sum(svc.queue.depth().values())} jobs"),
    }
    queues: dict[str, dict[str, int | None]] = {"api": svc.queue.depth()}
    try:
        queues["dagster_runs"] = {s.value.lower(): inst.get_runs_count(RunsFilter(statuses=[s]))
                                  for s in (DagsterRunStatus.QUEUED, DagsterRunStatus.STARTED)}
        for pool in POOLS:
            info = inst.event_log_storage.get_concurrency_info(pool)
            queues[f"pool:{pool}"] = {"limit": info.limit if info.limit is not None else None,
                                      "claimed": int(info.active_slot_count),
                                      "pending": int(info.pending_step_count)}
    except Exception:  # noqa: BLE001 - the instance being down is reported under stores
        pass
    workers = dict(svc.workers.busy) if svc.workers else {}
    for i in range(svc.workers.threads if svc.workers else 0):
        workers.setdefault(f"idp-api-worker-{i}", None)
    ok = all(s.ok for s in stores.values()) and any(e.ok for n, e in engines.items() if n != "embedder") and emb.ok
    return HealthOut(ok=ok, engines=engines, stores=stores, queues=queues, workers=workers)


@router.get("/metrics", response_class=Response, responses={**AUTH_ERRORS, 200: {"content": {"text/plain": {}}}})
def metrics(request: Request, principal=needs("admin")):
    """Prometheus metrics: the pipeline's (idp_assets.metrics, from the event log) and the API's own."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
