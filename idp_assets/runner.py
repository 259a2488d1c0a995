"""Run the document assets in-process for a list of files (what `idp process` does).

The same asset definitions as the Dagster UI run, one partition per document, on a
Dagster instance under `<data_dir>/dagster` (or an ephemeral one).  One
document's failure is recorded with its reason and the batch goes on.

* Inputs are classified with ``lstat`` before anything is opened
  (``idp_assets.logic.inputs``): a path that does not exist, is not a regular file
  (FIFO, socket, device, symlink loop), is a symlink leading outside the given
  folders or cannot be read is one record in ``index.jsonl`` (status ``failed``,
  reason ``not_found`` / ``not_a_regular_file`` / ``unreadable`` / ``file_too_large``).
* Every stage runs on a time budget (``idp_assets.budget``): a stuck stage ends the
  document with reason ``stage_timeout``.
* ``index.jsonl`` is appended to after every document; SIGTERM / SIGINT stop the batch
  after (or by abandoning) the current document, and re-running the same command skips
  every document already finished there (by sha256), so it continues where it stopped.
"""

from __future__ import annotations

import faulthandler
import hashlib
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dagster import DagsterInstance

# the single-document part (DocumentRunner and default_env also imported from here by their callers)
from idp_assets.document_run import (  # noqa: F401
    DocumentRunner,
    Outcome,
    _uri,
    default_env,
    max_input_bytes,
    release_memory,
)
from idp_assets.logic.export import export_files, failed_export, safe_stem
from idp_assets.logic.inputs import InputError, InputFile, display_path, expand, is_utf8_name, read_input

INDEX = "index.jsonl"
# records of these reasons are not "finished": a re-run processes their inputs again
RETRY_REASONS = {"interrupted", "worker_lost", "not_found", "not_a_regular_file", "unreadable", "file_too_large"}
DEFAULT_STOP_GRACE_S = 8.0


def output_name(path: Path, document_id: str | None, taken: set[str]) -> str:
    """`<input file stem>`, made file-system safe (no separators or control characters, at most
    120 characters so that `.fields.csv` etc. still fit); a repeated stem gets `-<hash8>`."""
    stem = safe_stem(os.fsencode(os.path.basename(os.fspath(path))).decode("utf-8", "replace"))
    name = stem
    if name in taken:
        name = f"{stem}-{(document_id or hashlib.sha256(os.fsencode(path)).hexdigest())[:8]}"
    i = 2
    base = name
    while name in taken:  # same stem and same content prefix: keep every output
        name = f"{base}-{i}"
        i += 1
    taken.add(name)
    return name


# --------------------------------------------------------------------------- stopping


class BatchInterrupted(Exception):
    """The batch stopped on SIGINT/SIGTERM; `exit_code` is 128 + the signal number."""

    def __init__(self, signum: int, outcomes: list[Outcome]):
        super().__init__(f"stopped by signal {signum}")
        self.signum = signum
        self.exit_code = 128 + signum
        self.outcomes = outcomes


class StopSignals:
    """SIGINT / SIGTERM during a batch: the first asks the batch to stop (the current document is
    finished or, inside a stage, abandoned: Dagster interrupts the step); if the process is still
    busy `grace_s` later (stuck in native code), `on_timeout` runs and the process exits.

    The signal is seen through ``signal.set_wakeup_fd`` by a watcher thread, so it is noticed
    even while Dagster's own interrupt handler is installed or the main thread is in C code.
    """

    def __init__(self, grace_s: float = DEFAULT_STOP_GRACE_S, on_timeout=None):
        self.signum: int | None = None
        self.grace_s = grace_s
        self.on_timeout = on_timeout
        self._old: dict[int, object] = {}
        self._old_wakeup = -1
        self._pipe: tuple[int, int] | None = None
        self._watcher: threading.Thread | None = None
        self._done = threading.Event()
        self._handled = 0
        self.installed = False

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handler)
        r, w = os.pipe()
        os.set_blocking(w, False)
        self._pipe = (r, w)
        self._old_wakeup = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self._watcher = threading.Thread(target=self._watch, name="idp-stop-watcher", daemon=True)
        self._watcher.start()
        self.installed = True
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if not self.installed:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for s, h in self._old.items():
            signal.signal(s, h)
        r, w = self._pipe
        os.close(w)  # the watcher reads EOF and ends
        self._watcher.join(timeout=2)
        os.close(r)

    def _handler(self, signum, frame):
        # counted here, not through self.signum: the watcher thread may have set that already for
        # this very signal (it reads the wakeup fd before the main thread runs this handler)
        self._handled += 1
        if self._handled > 1 and signum == self.signum:
            raise KeyboardInterrupt  # asked twice: abandon now
        self.signum = self.signum or signum

    def _watch(self) -> None:
        r = self._pipe[0]
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data:
                return
            for b in data:
                if b in (signal.SIGINT, signal.SIGTERM) and not self._done.is_set():
                    first = self.signum is None
                    self.signum = self.signum or b
                    if first:
                        threading.Thread(target=self._deadline, daemon=True).start()

    def _deadline(self) -> None:
        if self._done.wait(self.grace_s):
            return
        try:
            sys.stderr.write(f"still busy {self.grace_s:g} s after signal {self.signum}: abandoning the current "
                             "document and exiting; where it was stuck:\n")
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            if self.on_timeout is not None:
                self.on_timeout()
        finally:
            os._exit(128 + (self.signum or signal.SIGTERM))


# --------------------------------------------------------------------------- the batch


def _read_index(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut off by a killed process
        if isinstance(rec, dict) and "source" in rec:
            out.append(rec)
    return out


def _finished(rec: dict, out_dir: Path) -> bool:
    return (bool(rec.get("document_id")) and rec.get("reason") not in RETRY_REASONS
            and bool(rec.get("output")) and (out_dir / rec["output"]).exists())


def _index_line(rec: dict) -> str:
    return json.dumps(rec, ensure_ascii=False) + "\n"


def default_workers() -> int:
    """Documents run at once by `idp process` (IDP_PROCESS_WORKERS, default 1)."""
    env = os.environ.get("IDP_PROCESS_WORKERS")
    return max(1, int(env)) if env else 1


WORKER_KINDS = ("process", "thread")


def default_worker_kind() -> str:
    """How `--workers N` (N > 1) runs documents at once (IDP_PROCESS_WORKER_KIND, default ``process``).

    ``process``: N worker processes, each with its own models and clients, loaded once and kept for
    the batch; Python stages of different documents run on different cores.  ``thread``: N threads
    of this process sharing models and clients; the engines release the GIL while they read, but
    every Python stage and Dagster's per-run bookkeeping take turns on one interpreter lock."""
    kind = (os.environ.get("IDP_PROCESS_WORKER_KIND") or "process").lower()
    if kind not in WORKER_KINDS:
        raise ValueError(f"IDP_PROCESS_WORKER_KIND={kind!r}: expected one of {', '.join(WORKER_KINDS)}")
    return kind


@dataclass
class _Pending:
    """An input handed to a worker (or resolved without a run): what its record needs afterwards."""

    i: int
    inp: InputFile
    t0: float
    name: str | None  # output name, chosen in input order so that names never depend on timing
    future: Future | None = None
    outcome: Outcome | None = None
    skipped_rec: dict | None = None


def process_paths(paths: list[str], out_dir: Path, resources: dict, instance: DagsterInstance | None = None,
                  progress=sys.stderr, *, follow_symlinks: bool = False, reprocess: bool = False,
                  stop_grace_s: float | None = None, workers: int = 1,
                  worker_kind: str | None = None) -> list[Outcome]:
    """Process every input; one record per input in ``<out_dir>/index.jsonl``.

    Up to `workers` documents run at once: in worker processes (`worker_kind` ``process``, the
    default: see `idp_assets.worker_pool`) or in threads of this process (``thread``: models,
    clients and the Dagster instance shared).  Each document is still its own Dagster run in the
    same instance, so lineage stays per document.  Inputs are read,
    hashed and registered in input order; records are written as documents finish and the index
    is rewritten in input order at the end.  Documents already finished in `out_dir` (same
    sha256) are skipped unless `reprocess`.  Raises BatchInterrupted after SIGINT/SIGTERM (what
    was done is recorded).
    """
    workers = max(1, int(workers))
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / INDEX
    limit = max_input_bytes()
    inputs = expand(paths, follow_symlinks=follow_symlinks, max_bytes=limit)
    previous = [] if reprocess else _read_index(index_path)
    done_before: dict[str, dict] = {}  # document id -> its first finished record
    done_at: dict[tuple[str, str], dict] = {}  # (source, document id) -> that input's own record
    for rec in previous:
        if _finished(rec, out_dir):
            done_before.setdefault(rec["document_id"], rec)
            done_at.setdefault((rec["source"], rec["document_id"]), rec)
    runner = DocumentRunner(resources, instance)
    outcomes: list[tuple[int, Outcome]] = []
    records: list[tuple[int, dict]] = []
    taken: set[str] = {r["output"] for r in done_before.values()}
    done: dict[str, Outcome] = {}  # document id -> outcome of this batch
    inflight: dict[str, _Pending] = {}  # document id -> the pending run (same bytes twice: one run)
    lock = threading.Lock()
    index = open(index_path, "w" if reprocess else "a", encoding="utf-8")
    running: dict[int, dict] = {}  # input number -> what an abandoned document's record needs
    procs = None  # worker processes (worker_kind "process")
    pool = None
    if workers > 1:
        kind = worker_kind or default_worker_kind()
        if kind == "process":
            from idp_assets.worker_pool import DocumentProcessPool

            procs = DocumentProcessPool(workers, resources, runner.instance)
        else:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="idp-doc")

    def write(rec: dict) -> None:
        with lock:
            index.write(_index_line(rec))
            index.flush()

    def on_timeout() -> None:  # still busy after the grace period: record the documents as abandoned
        if procs is not None:
            procs.kill()
        for cur in list(running.values()):
            try:
                write({**cur, "status": "failed", "reason": "interrupted",
                       "error": "the batch was stopped; the document was abandoned",
                       "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            except Exception:  # noqa: BLE001
                pass

    grace = float(os.environ.get("IDP_STOP_GRACE_S") or DEFAULT_STOP_GRACE_S) if stop_grace_s is None else stop_grace_s
    stopper = StopSignals(grace, on_timeout)

    def stopped_while_running(o: Outcome) -> Outcome:
        if o.status == "failed" and o.document_id and stopper.signum and o.reason != "interrupted":
            o.reason, o.error = "interrupted", "the batch was stopped while this document ran"
            o.record = failed_export(o.document_id, o.record["source"]["uri"], o.record["source"]["filename"],
                                     o.reason, o.error)
        return o

    def run_one(p: _Pending, doc_id: str) -> Outcome:
        return stopped_while_running(runner.run(p.inp, doc_id, p.t0))

    def submit(p: _Pending, doc_id: str) -> Future:
        if procs is not None:
            return procs.submit(p.inp, doc_id, p.t0)
        return pool.submit(run_one, p, doc_id)

    def finish(p: _Pending) -> None:
        """Write the outputs and the index record of a resolved input (main thread only)."""
        o = p.outcome
        if p.skipped_rec is not None:
            rec = p.skipped_rec
        else:
            if o.document_id and o.reason != "interrupted":
                done[o.document_id] = o
            if o.reason != "interrupted":
                (out_dir / f"{p.name}.json").write_text(json.dumps(o.record, ensure_ascii=False, indent=2),
                                                        encoding="utf-8")
                for suffix, blob in export_files(o.record).items():  # <name>.fields.csv / .lines.csv / .cii.xml
                    (out_dir / f"{p.name}.{suffix}").write_bytes(blob)
            else:
                taken.discard(p.name)
            rec = {
                "source": o.display, "output": f"{p.name}.json" if o.reason != "interrupted" else None,
                "document_id": o.document_id, "status": o.status,
                "reason": o.reason, "error": o.error, "quarantine": o.record.get("quarantine_uri"),
                "seconds": round(time.perf_counter() - p.t0, 3),
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            if not is_utf8_name(p.inp.path):
                rec["source_bytes_hex"] = os.fsencode(p.inp.path).hex()  # a name that is not UTF-8, exactly
        ran = running.pop(p.i, None) is not None
        write(rec)
        if ran:
            release_memory()
        records.append((p.i, rec))
        outcomes.append((p.i, o))
        if progress:
            skipped = p.skipped_rec is not None
            msg = (f"[{p.i}/{len(inputs)}] {'skipped' if skipped else o.status:<7} "
                   f"{0.0 if skipped else rec['seconds']:6.1f}s  {o.display}")
            if skipped:
                msg += "  (already processed)"
            elif o.error:
                msg += f"  ({o.reason}: {o.error[:160]})"
            print(msg, file=progress, flush=True)
        if o.reason == "interrupted":
            stopper.signum = stopper.signum or signal.SIGINT

    def collect(p: _Pending, outcome=None) -> None:
        """Finish a run: its outcome from `outcome()`, by default the worker's result (waited for)."""
        try:
            p.outcome = (outcome or p.future.result)()
        except OSError as exc:
            p.outcome = runner.refused(p.inp, "unreadable", str(exc))
        except BrokenProcessPool as exc:  # a worker process died: this input only
            procs.recover()  # the broken pool's survivors are killed, new workers take the next documents
            doc_id = running.get(p.i, {}).get("document_id")
            p.outcome = runner.failed_run(p.inp, doc_id, "worker_lost",
                                          f"the worker process running this document ended: {exc!r}", p.t0)
            if doc_id:
                runner.close_abandoned_runs(doc_id, "the worker process running this document ended")
        if procs is not None:
            p.outcome = stopped_while_running(p.outcome)
        inflight.pop(p.outcome.document_id or "", None)
        finish(p)

    queue: list[_Pending] = []  # submitted, in input order

    def drain(block_until: int) -> None:
        """Finish submitted documents until at most `block_until` are left running."""
        while queue:
            ready = [p for p in queue if p.future.done()]
            if not ready and len(queue) <= block_until:
                return
            if procs is not None and stopper.signum:
                procs.interrupt()  # the workers' current runs stop as one run would in this process
            if not ready:
                wait([p.future for p in queue], timeout=0.5, return_when=FIRST_COMPLETED)
                continue
            for p in ready:
                queue.remove(p)
                collect(p)

    completed = False
    try:
        with stopper:
            for i, inp in enumerate(inputs, 1):
                if stopper.signum:
                    break
                t0 = time.perf_counter()
                data = None
                digest = None
                if inp.ok:
                    try:
                        data = read_input(inp, limit)
                        digest = hashlib.sha256(data).hexdigest()
                    except InputError as exc:
                        inp = InputFile(inp.path, reason=exc.reason, message=exc.message)
                if digest in inflight:  # same bytes as a document still running: wait for its one run
                    p0 = inflight[digest]
                    queue.remove(p0)
                    collect(p0)
                p = _Pending(i, inp, t0, None)
                if not inp.ok:
                    p.outcome = runner.refused(inp, inp.reason, inp.message or inp.reason)
                elif digest in done:  # same bytes again: one partition, one run
                    prev = done[digest]
                    p.outcome = Outcome(Path(inp.path), prev.document_id, prev.status, prev.error, prev.reason,
                                        prev.record, 0.0)
                elif digest in done_before:  # finished by an earlier run of this batch
                    rec = done_at.get((inp.display, digest)) or done_before[digest]
                    p.outcome = Outcome(Path(inp.path), digest, rec["status"], rec.get("error"), rec.get("reason"),
                                        {}, 0.0, skipped=True)
                    p.skipped_rec = {**rec, "source": inp.display}
                if p.outcome is not None:
                    if p.skipped_rec is None:
                        p.name = output_name(Path(inp.path), p.outcome.document_id, taken)
                    del data
                    finish(p)
                    continue
                try:  # the original is stored first; the batch then holds no copy of the bytes
                    doc_id = runner.register_bytes(data, _uri(inp.path), display_path(inp.name))
                except OSError as exc:
                    p.outcome = runner.refused(inp, "unreadable", str(exc))
                    p.name = output_name(Path(inp.path), None, taken)
                    del data
                    finish(p)
                    continue
                del data
                p.name = output_name(Path(inp.path), doc_id, taken)
                running[i] = {"source": inp.display, "document_id": doc_id, "output": None}
                if pool is None and procs is None:  # in this (main) thread: Dagster's interrupt handling applies
                    collect(p, lambda: run_one(p, doc_id))
                else:
                    p.future = submit(p, doc_id)
                    inflight[doc_id] = p
                    queue.append(p)
                    drain(workers - 1)  # keep `workers` documents running, no more (bounded memory)
            drain(0)
            completed = not stopper.signum
    finally:
        stopped = stopper.signum
        if procs is not None:
            procs.close(wait=not stopped)
        elif pool is not None:
            pool.shutdown(wait=not stopped, cancel_futures=True)
        index.close()
        # one record per input, in input order: this run's records, then (after a stop) earlier
        # records not redone yet
        ordered = [r for _, r in sorted(records, key=lambda t: t[0])]
        written = {r["source"] for r in ordered}
        keep = list(ordered)
        if not completed:
            latest: dict[str, dict] = {}
            for rec in previous:
                latest[rec["source"]] = rec
            keep += [r for s, r in latest.items() if s not in written]
        tmp = index_path.with_name(f".{INDEX}.tmp")
        tmp.write_text("".join(_index_line(r) for r in keep), encoding="utf-8")
        os.replace(tmp, index_path)
    result = [o for _, o in sorted(outcomes, key=lambda t: t[0])]
    if stopped:
        raise BatchInterrupted(stopped, result)
    return result
