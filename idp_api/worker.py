"""Background workers of the API process: take queued documents and materialize every stage.

Each worker runs the same Dagster `materialize` of all document assets for one partition that
`idp process` runs (`DocumentRunner`'s assets and resources), on the shared DagsterInstance of
`DAGSTER_HOME`, tagged ``idp/runner: api``: the runs appear in the Dagster UI and the status endpoint
reads them back from the instance.  With `IDP_API_WORKERS` > 1 the runs execute in as many worker
processes (`IDP_PROCESS_WORKER_KIND`, default ``process``; models loaded once per worker, the API
process keeps the only Chroma client and serves it to them); with one, or with ``thread``, in threads
of the API process (models shared with the search endpoint).  At most `IDP_API_WORKERS` documents
run at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool

from dagster import DagsterInstance, RunsFilter
from dagster._core.storage.dagster_run import DagsterRunStatus

from idp_api.intake import ensure_partition
from idp_api.jobs import Job, JobQueue
from idp_assets.document_run import DocumentRunner, release_memory, run_document_assets

log = logging.getLogger("idp_api.worker")

RUNNER_TAG = "idp/runner"
JOB_TAG = "idp/api_job"
_UNFINISHED = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED,
               DagsterRunStatus.QUEUED]


def run_tags(job: Job) -> dict[str, str]:
    return {RUNNER_TAG: "api", JOB_TAG: job.document_id, "idp/source_uri": job.uri[:250],
            "idp/source_filename": job.filename[:250], "idp/submitted_by": job.submitted_by[:100]}


def close_orphaned_runs(instance: DagsterInstance, jobs: list[Job]) -> int:
    """Runs of jobs whose process stopped mid-run stay STARTED in the instance forever: mark them failed."""
    n = 0
    for job in jobs:
        for run in instance.get_runs(RunsFilter(tags={JOB_TAG: job.document_id}, statuses=_UNFINISHED)):
            instance.report_run_failed(run, "the API service stopped while this run was in progress; "
                                            "the document was queued again")
            n += 1
    return n


class Workers:
    """`threads` dispatch threads take queued jobs; each runs its document in this process or, with a
    `pool` (`idp_assets.worker_pool.DocumentProcessPool` of as many processes), in a worker process."""

    def __init__(self, queue: JobQueue, runner: DocumentRunner, threads: int,
                 on_finished: Callable[[str], None] | None = None, pool=None):
        self.queue = queue
        self.runner = runner
        self.threads = threads
        self.on_finished = on_finished
        self.pool = pool
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.busy: dict[str, str] = {}  # thread name -> document id

    def start(self) -> None:
        orphans = self.queue.recover()
        if orphans:
            closed = close_orphaned_runs(self.runner.instance, orphans)
            log.warning("re-queued %d documents left running by a stopped process (%d runs marked failed)",
                        len(orphans), closed)
        for i in range(self.threads):
            t = threading.Thread(target=self._loop, name=f"idp-api-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self.queue.wakeup:
            self.queue.wakeup.notify_all()
        for t in self._threads:
            t.join(timeout)
        if self.pool is not None:
            self.pool.close(wait=False)

    def _loop(self) -> None:
        name = threading.current_thread().name
        while not self._stop.is_set():
            job = self.queue.claim()
            if job is None:
                self.queue.wait(5.0)
                continue
            self.busy[name] = job.document_id
            try:
                self.process(job)
            finally:
                self.busy.pop(name, None)

    def process(self, job: Job) -> None:
        doc_id = job.document_id
        run_id = reason = None
        ok = False
        try:
            ensure_partition(self.runner.instance, doc_id)  # a job queued just before a crash may lack it
            if self.pool is not None:
                ok, run_id, reason = self.pool.submit_run(doc_id, run_tags(job)).result()
            else:
                ok, run_id, reason = run_document_assets(self.runner, doc_id, run_tags(job))
        except BrokenProcessPool:
            reason = "worker_lost"
            self.pool.recover()
            log.error("document %s: the worker process running it ended", doc_id)
        except Exception as exc:  # noqa: BLE001 - one document never stops the worker
            reason = "run_error"
            log.exception("document %s: the run could not be executed: %s", doc_id, type(exc).__name__)
        self.queue.finish(doc_id, ok, run_id, reason)
        log.info("document %s: run %s %s%s", doc_id, run_id, "succeeded" if ok else "failed",
                 f" ({reason})" if reason else "")
        release_memory()
        if self.on_finished is not None:
            try:
                self.on_finished(doc_id)
            except Exception:  # noqa: BLE001
                log.exception("document %s: catalog refresh failed", doc_id)
