"""Everything a request needs, opened once per process and kept warm.

The resources come from `idp_assets.settings.build_resources` (the same environment variables as
the Dagster code location and `idp process`); the Dagster instance is `$DAGSTER_HOME`'s (else one
under `IDP_DATA_DIR`, as `idp process` / `idp audit` use).  The search resources (embedder with its
model loaded, Chroma, the Bolt driver) are initialized here and stay open; the worker's runs get
the configured resources as every Dagster run does.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from dagster import DagsterInstance

from idp_api.catalog import Catalog
from idp_api.config import ApiConfig
from idp_api.db import Database
from idp_api.jobs import JobQueue
from idp_api.limits import RateLimiter
from idp_api.reviews import ReviewStore
from idp_api.security import Authenticator
from idp_api.worker import Workers

log = logging.getLogger("idp_api")


@dataclass
class Services:
    config: ApiConfig
    auth: Authenticator
    instance: DagsterInstance
    resources: dict  # configured (unresolved) resources, as build_resources returns them
    store: object  # DocumentStore, initialized
    master: object  # SupplierMaster, initialized
    embedder: object
    vector_store: object
    graph_store: object
    ocr_router: object
    queue: JobQueue
    catalog: Catalog
    reviews: ReviewStore
    limiter: RateLimiter
    workers: Workers | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def close(self) -> None:
        if self.workers is not None:
            self.workers.stop()
        self._stack.close()
        self.instance.dispose()


def open_services(config: ApiConfig, env: Mapping[str, str] | None = None,
                  instance: DagsterInstance | None = None) -> Services:
    from idp_assets.audit import instance_for
    from idp_assets.runner import DocumentRunner, default_env, default_worker_kind
    from idp_assets.settings import build_resources

    default_env()
    env = os.environ if env is None else env
    auth = Authenticator.from_config(config)
    if not auth.configured:
        log.warning("no API keys (IDP_API_KEYS) and no JWT key (IDP_API_JWT_SECRET) configured: "
                    "every request will be refused")
    resources = build_resources(env=env, data_dir=str(config.data_dir))
    instance = instance or instance_for(str(config.data_dir))
    stack = contextlib.ExitStack()
    live = {k: stack.enter_context(resources[k].process_config_and_initialize_cm())
            for k in ("document_store", "supplier_master", "embedder", "vector_store", "graph_store", "ocr_router")}
    db = Database(config.db_path)
    store = live["document_store"]
    reviews = ReviewStore(db)
    svc = Services(
        config=config, auth=auth, instance=instance, resources=resources, store=store,
        master=live["supplier_master"], embedder=live["embedder"], vector_store=live["vector_store"],
        graph_store=live["graph_store"], ocr_router=live["ocr_router"], queue=JobQueue(db),
        catalog=Catalog(db, instance, store, reviews), reviews=reviews,
        limiter=RateLimiter(config.uploads_per_minute, 60.0), _stack=stack,
    )
    if config.warm:  # the first search without a model load or a graph server start
        svc.embedder.embed(["warm-up"])
        svc.vector_store.collection()
        try:
            svc.graph_store.driver().verify_connectivity()
        except Exception as exc:  # noqa: BLE001 - reported by /api/v1/health; search falls back per request
            log.warning("graph store not reachable at start-up: %s", type(exc).__name__)
    if config.workers:
        runner = DocumentRunner(resources, instance)
        pool = None
        if config.workers > 1 and default_worker_kind() == "process":
            from idp_assets.worker_pool import DocumentProcessPool

            # the workers write vectors through the search's own store (one Chroma client in this process)
            pool = DocumentProcessPool(config.workers, {**resources, "vector_store": svc.vector_store}, instance)
        svc.workers = Workers(svc.queue, runner, config.workers, on_finished=svc.catalog.refresh, pool=pool)
        svc.workers.start()
    return svc
