"""Worker processes for `idp process --workers N`: documents on all cores, models loaded once per worker.

Threads of one process share one interpreter lock: the OCR engines release it while they read,
but every Python stage (pages, tables, fields, suppliers, exports) and Dagster's per-run
bookkeeping (~270 events per document) take turns on it.  Here each of the N workers is a
process (``spawn``) that

* builds its `DocumentRunner` once from the batch's resources and the same Dagster instance
  (by its ref: runs, event log and partitions are shared on disk, as with the daemon's run
  workers), keeps the models it loads for every later document and gives freed memory back
  after each one;
* writes vectors through the batch process (`resources.vector_relay`) when Chroma is embedded:
  one process owns a ``PersistentClient``'s folder;
* splits the machine's cores between the workers for torch's intra-op threads;
* ignores SIGINT/SIGTERM from the terminal (the batch process decides: it forwards SIGINT to
  stop the current runs as one run in the main thread would stop) and dies with the batch
  process (``PR_SET_PDEATHSIG``), so no worker outlives a killed batch.

Each document is still its own Dagster run, recorded in the shared instance: lineage, audit,
quarantine and re-runs by content hash are what they are with one worker.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import pickle
import signal
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from dagster import DagsterInstance

from idp_assets.logic.inputs import InputFile

_PR_SET_PDEATHSIG = 1
_STATE: dict = {}  # in a worker process: its DocumentRunner


def worker_threads(workers: int, cpus: int | None = None) -> int:
    """Intra-op threads (torch) per worker: the machine's cores split between the workers."""
    return max(1, (cpus or os.cpu_count() or 1) // max(1, workers))


def resources_blob(resources: dict) -> bytes:
    """The batch's resources as their configuration, to build them again in a worker: Pythonic
    resources by class and the fields set (an ``EnvVar`` stays a reference to the variable, so no
    secret travels), anything else pickled as it is."""
    spec = {}
    for key, value in resources.items():
        if hasattr(value, "_get_non_default_public_field_values"):  # ConfigurableResource / IOManager
            spec[key] = ("config", type(value), dict(value._get_non_default_public_field_values()))
        else:
            spec[key] = ("object", value)
    return pickle.dumps(spec)


def resources_from_blob(blob: bytes) -> dict:
    return {key: (item[1](**item[2]) if item[0] == "config" else item[1]) for key, item in pickle.loads(blob).items()}


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux/glibc: the batch process kills its workers itself
        pass


def _init_worker(blob: bytes, instance_ref, relay: tuple[str, bytes] | None, threads: int,
                 parent_pid: int) -> None:
    _die_with_parent()
    if os.getppid() != parent_pid:  # the batch process died before this worker set its death signal
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch / numpy's BLAS when first imported
    from idp_assets.audit import relax_sqlite_sync
    from idp_assets.document_run import DocumentRunner, default_env

    default_env()
    relax_sqlite_sync()
    if relay is not None:
        from resources.vector_relay import use_relay

        use_relay(*relay)
    resources = resources_from_blob(blob)
    _STATE["runner"] = DocumentRunner(resources, DagsterInstance.from_ref(instance_ref))
    _STATE["threads"] = threads


@contextmanager
def _document_scope():
    """Around one document in a worker: torch's threads as split for this worker, SIGINT armed (a stop
    asked while the document runs reaches the run, where Dagster's own interrupt capture handles it;
    between documents it stays ignored), and freed memory given back afterwards."""
    from idp_assets.document_run import release_memory

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != _STATE["threads"]:
        torch.set_num_threads(_STATE["threads"])
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield _STATE["runner"]
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        release_memory()


def _run_document(inp: InputFile, doc_id: str, t0: float):
    """In a worker: one document's run (the same as `DocumentRunner.run` in the batch process)."""
    with _document_scope() as runner:
        try:
            return runner.run(inp, doc_id, t0)
        except KeyboardInterrupt:  # the stop arrived before the run captured it
            return runner.failed_run(inp, doc_id, "interrupted", "the batch was stopped while this document ran", t0)


def _materialize(doc_id: str, tags: dict[str, str]) -> tuple[bool, str, str | None]:
    """In a worker: one run of every document asset for a registered partition (the API's queue, a
    sensor's run request in `idp bench pipeline --mode processes`); (success, run id, failure reason)."""
    from idp_assets.document_run import run_document_assets

    with _document_scope() as runner:
        return run_document_assets(runner, doc_id, tags)


class DocumentProcessPool:
    """N worker processes running documents of one batch (see the module docstring)."""

    def __init__(self, workers: int, resources: dict, instance: DagsterInstance):
        self.workers = workers
        self._relay = None
        self._workers: set[int] = set()  # pids of the current pool's workers
        self._interrupted = False
        resources = dict(resources)
        store = resources.get("vector_store")
        if store is not None and getattr(store, "mode", None) == "persistent":
            from resources.vector_relay import RelayedVectorStore, VectorRelay

            self._relay = VectorRelay(store)
            resources["vector_store"] = RelayedVectorStore(relay_address=self._relay.address)
        try:
            self._resources_blob = resources_blob(resources)
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise TypeError(f"the batch's resources cannot be sent to worker processes ({exc}); "
                            "use IDP_PROCESS_WORKER_KIND=thread") from exc
        self._instance_ref = instance.get_ref()
        self._lock = threading.RLock()  # submitted from several threads (the API's dispatch threads)
        self.executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        relay = (self._relay.address, self._relay.authkey) if self._relay is not None else None
        return ProcessPoolExecutor(
            max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._resources_blob, self._instance_ref, relay, worker_threads(self.workers), os.getpid()))

    def _submit(self, fn, *args) -> Future:
        with self._lock:
            self._replace_if_broken()
            try:
                fut = self.executor.submit(fn, *args)
            except BrokenProcessPool:  # broke since the check: its documents are recorded as worker_lost
                self._replace_if_broken(force=True)
                fut = self.executor.submit(fn, *args)
            self._workers.update(self._live_pids())  # spawned by submit: known for kill() and recovery
            return fut

    def recover(self) -> None:
        """After a worker died (a future raised BrokenProcessPool): end the broken pool, start a new one."""
        with self._lock:
            self._replace_if_broken()

    def _replace_if_broken(self, force: bool = False) -> None:
        if not (force or getattr(self.executor, "_broken", False)):
            return
        # the survivors of a broken pool are terminated with SIGTERM and joined by the pool's manager
        # thread; inside a run Dagster turns SIGTERM into an interrupt and the worker lives on, so that
        # join (and the interpreter's exit, which joins the manager) would wait for ever: SIGKILL them
        self.kill()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self._workers = set()
        self.executor = self._new_executor()

    def submit(self, inp: InputFile, doc_id: str, t0: float) -> Future:
        """`DocumentRunner.run` of a registered document in a worker; the future gives its Outcome."""
        return self._submit(_run_document, inp, doc_id, t0)

    def submit_run(self, doc_id: str, tags: dict[str, str]) -> Future:
        """A run of every document asset for a registered partition; the future gives
        (success, run id, failure reason or None)."""
        return self._submit(_materialize, doc_id, tags)

    def __enter__(self) -> DocumentProcessPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _live_pids(self) -> set[int]:
        return {p.pid for p in (getattr(self.executor, "_processes", None) or {}).values() if p.pid}

    def _pids(self) -> list[int]:
        return sorted(self._workers | self._live_pids())

    def interrupt(self) -> None:
        """Stop the workers' current runs (SIGINT: Dagster interrupts the step, the run fails as
        interrupted); idempotent enough to be called while waiting."""
        if self._interrupted:
            return
        self._interrupted = True
        for pid in self._pids():
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        for pid in self._pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self, wait: bool = True) -> None:
        executor = getattr(self, "executor", None)
        if executor is not None:
            if not wait or getattr(executor, "_broken", False):
                self.kill()  # (a broken pool's survivors would be joined for ever, see _replace_if_broken)
            executor.shutdown(wait=wait, cancel_futures=True)
        if self._relay is not None:
            self._relay.close()
            self._relay = None
