"""Prometheus metrics fed from the Dagster event log (`idp metrics --port 9464`).

The exporter reads, incrementally (storage-id cursors), what the assets already
record: `ocr_pages` materializations carry per-page `page_stats` (engine, seconds,
confidence); failed steps carry a `reason` (the quarantine code); the run queue
gives the queue depth. Nothing in the assets depends on the exporter, and it can
run anywhere that reaches the instance (SQLite DAGSTER_HOME or PostgreSQL).

Metrics:
  idp_pages_processed_total{engine}            counter
  idp_page_latency_seconds{engine}             histogram (seconds per page, all attempts)
  idp_page_confidence{engine}                  histogram
  idp_document_failures_total{reason}          counter
  idp_documents_processed_total                counter (document_exports materializations)
  idp_run_queue_depth{status}                  gauge (queued / in progress runs)
"""

from __future__ import annotations

import threading
from collections import defaultdict

import click
from dagster import AssetKey, DagsterEventType, DagsterInstance, EventRecordsFilter, RunsFilter
from dagster._core.storage.dagster_run import DagsterRunStatus

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


class _Histogram:
    def __init__(self, buckets):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.total += 1
        self.sum += v
        for i, b in enumerate(self.buckets):
            if v <= b:
                self.counts[i] += 1

    def prom_buckets(self):
        return [(str(b), c) for b, c in zip(self.buckets, self.counts)] + [("+Inf", self.total)]


class IdpCollector:
    """A prometheus_client collector; each scrape first reads the events added since the last one."""

    def __init__(self, instance: DagsterInstance):
        self.instance = instance
        self._lock = threading.Lock()
        self._cursors: dict[str, int | None] = {"ocr": None, "export": None}
        self._failed_after = None
        self._failed_runs: set[str] = set()
        self.pages: dict[str, int] = defaultdict(int)
        self.latency: dict[str, _Histogram] = defaultdict(lambda: _Histogram(LATENCY_BUCKETS))
        self.confidence: dict[str, _Histogram] = defaultdict(lambda: _Histogram(CONFIDENCE_BUCKETS))
        self.failures: dict[str, int] = defaultdict(int)
        self.documents = 0

    def _records(self, name: str, flt_kwargs: dict):
        out = []
        while True:
            flt = EventRecordsFilter(after_cursor=self._cursors[name], **flt_kwargs)
            recs = self.instance.get_event_records(flt, limit=1000, ascending=True)
            if not recs:
                return out
            out += recs
            self._cursors[name] = recs[-1].storage_id

    def refresh(self) -> None:
        with self._lock:
            for r in self._records("ocr", {"event_type": DagsterEventType.ASSET_MATERIALIZATION,
                                           "asset_key": AssetKey("ocr_pages")}):
                stats = r.asset_materialization.metadata.get("page_stats")
                for p in (stats.value if stats is not None else []):
                    engine = p.get("engine") or "unknown"
                    self.pages[engine] += 1
                    self.latency[engine].observe(float(p.get("seconds") or 0.0))
                    if p.get("confidence") is not None:
                        self.confidence[engine].observe(float(p["confidence"]))
            # failed runs are read per run: the default SQLite event log is sharded by run
            for rec in self.instance.get_run_records(RunsFilter(statuses=[DagsterRunStatus.FAILURE],
                                                                updated_after=self._failed_after), ascending=True):
                run_id = rec.dagster_run.run_id
                self._failed_after = max(self._failed_after or rec.update_timestamp, rec.update_timestamp)
                if run_id in self._failed_runs:
                    continue
                self._failed_runs.add(run_id)
                for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
                    data = entry.dagster_event.step_failure_data
                    ufd = data.user_failure_data if data else None
                    reason = ufd.metadata["reason"].value if ufd is not None and "reason" in ufd.metadata else "step_error"
                    self.failures[str(reason)] += 1
            self.documents += len(self._records("export", {"event_type": DagsterEventType.ASSET_MATERIALIZATION,
                                                           "asset_key": AssetKey("document_exports")}))

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        self.refresh()
        pages = CounterMetricFamily("idp_pages_processed", "Pages read, by the engine that produced the text", labels=["engine"])
        lat = HistogramMetricFamily("idp_page_latency_seconds", "Seconds per page (all engine attempts)", labels=["engine"])
        conf = HistogramMetricFamily("idp_page_confidence", "Measured page confidence", labels=["engine"])
        for engine in sorted(self.pages):
            pages.add_metric([engine], self.pages[engine])
            h = self.latency[engine]
            lat.add_metric([engine], h.prom_buckets(), h.sum)
            c = self.confidence[engine]
            conf.add_metric([engine], c.prom_buckets(), c.sum)
        fails = CounterMetricFamily("idp_document_failures", "Failed document steps by reason", labels=["reason"])
        for reason in sorted(self.failures):
            fails.add_metric([reason], self.failures[reason])
        docs = CounterMetricFamily("idp_documents_processed", "Documents exported")
        docs.add_metric([], self.documents)
        queue = GaugeMetricFamily("idp_run_queue_depth", "Runs waiting or running", labels=["status"])
        for status in (DagsterRunStatus.QUEUED, DagsterRunStatus.STARTED):
            queue.add_metric([status.value.lower()], self.instance.get_runs_count(RunsFilter(statuses=[status])))
        yield from (pages, lat, conf, fails, docs, queue)


def registry_for(instance: DagsterInstance):
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry()
    reg.register(IdpCollector(instance))
    return reg


@click.command()
@click.option("--port", default=9464, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--data-dir", default=None)
def metrics(port: int, host: str, data_dir: str | None) -> None:
    """Serve Prometheus metrics (pages per engine, latency, confidence, failures, queue depth)."""
    import time

    from prometheus_client import start_http_server

    from idp_assets.audit import instance_for

    start_http_server(port, addr=host, registry=registry_for(instance_for(data_dir)))
    click.echo(f"metrics on http://{host}:{port}/metrics", err=True)
    while True:
        time.sleep(3600)
