"""The API's Prometheus metrics (requests by route and status, latency) next to the pipeline's
(`idp_assets.metrics.IdpCollector`, read from the event log), in one registry served at /metrics;
and the access log line (method, route, status, principal name, ms - never a credential)."""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter, Histogram

from idp_assets.metrics import registry_for

log = logging.getLogger("idp_api.access")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    def __init__(self, instance):
        self.registry = registry_for(instance)
        self.requests = Counter("idp_api_requests", "API requests by route and status", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("idp_api_request_seconds", "API request latency by route", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.uploads = Counter("idp_api_uploads", "Uploads by outcome (created, duplicate)", ["outcome"],
                               registry=self.registry)


class MetricsMiddleware:
    """ASGI middleware: one observation per HTTP request, labelled with the route template (not the path).
    The metrics live in `app.state.metrics` (made when the lifespan has opened the Dagster instance)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        metrics = getattr(scope["app"].state, "metrics", None) if "app" in scope else None
        if scope["type"] != "http" or metrics is None:
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(msg):
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            await send(msg)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            dt = time.perf_counter() - t0
            metrics.requests.labels(scope["method"], template, str(status["code"])).inc()
            metrics.latency.labels(scope["method"], template).observe(dt)
            state = scope.get("state") or {}
            log.info("%s %s %s %s %.1fms", scope["method"], template, status["code"], state.get("principal") or "-",
                     dt * 1000)
