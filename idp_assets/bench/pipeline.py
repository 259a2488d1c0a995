"""`idp bench pipeline`: documents/s and pages/s of the whole Dagster pipeline, per stage, vs the raw engines.

    idp bench pipeline --docs 200 --source-dir ../shared/corpus/receipts --mode both --out bench_pipeline.json

What is measured, on a fresh Dagster instance (SQLite) in a work folder:

1. `inputs`: N documents made from the given files, repeated in turn; a repeat gets a
   harmless unique trailer (PDF: a `%idp-bench-<i>` comment line after `%%EOF`; PNG/JPEG:
   bytes after the IEND / EOI marker, which the decoders ignore) so that every copy is
   its own partition (sha256) with the same pages.
2. `sensor`: the files are dropped into an inbox folder and the real folder sensor
   (`sensors.inbox.inbox_sensor`, evaluated with `build_sensor_context`) registers them
   and emits one run request per document.
3. `modes.per_run`: one run per partition of the `process_document` job with the
   *multiprocess* executor (`execute_job` of a reconstructable job): every step is a
   fresh Python process (import + resource and model start-up per step), outputs pass
   through the filesystem IO manager.  Runs are executed one after the other.
4. `modes.batched`: the same run requests executed back to back in this one process
   with the in-process executor (what `idp process` does): one Python start-up and one
   model load amortised over all partitions.  Dagster cannot put several partitions of
   these assets into one run (each asset reads `context.partition_key`), so a "batch"
   is many runs in one process, not one run with a partition range.
5. Per mode: documents/s, pages/s, run wall time, per-stage seconds from the event log
   (STEP_START -> STEP_SUCCESS/STEP_FAILURE of every asset step), the run overhead
   (wall - steps), peak RSS (sampled process tree, and `getrusage` self/children).
6. `raw_engines`: the OCR engines the pipeline chose (`ocr_pages` routes) timed on the
   very same pages with `idp_assets.bench.ocr.bench_engine`, and `ratios`: pipeline pages/s over raw
   engine pages/s (and the `ocr_pages` stage alone over the raw engines).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click

from idp_assets.bench.ocr import _map, bench_engine
from idp_assets.sqlite_storage import storage_overrides

BENCH_TRAILER = b"idp-bench-%d"
SUPPORTED_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg")
_ENV_KEYS = ("IDP_DATA_DIR", "IDP_EXPORT_DIR", "IDP_INBOX", "IDP_GRAPH_URI", "IDP_GRAPH_USER", "IDP_GRAPH_PASSWORD",
             "IDP_GRAPH_DATABASE", "IDP_GRAPH_MANAGED", "IDP_EXECUTOR")


# ---------------------------------------------------------------- inputs


def distinct_copy(data: bytes, i: int) -> bytes:
    """Copy `i` of a document: the bytes unchanged for i == 0, else with a unique trailer the loaders ignore."""
    if i == 0:
        return data
    tag = BENCH_TRAILER % i
    if data.startswith(b"%PDF-"):
        return data + (b"" if data.endswith(b"\n") else b"\n") + b"%" + tag + b"\n"
    if data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff"):
        return data + tag
    raise ValueError("only PDF, PNG and JPEG inputs can be repeated as distinct documents")


def prepare_inputs(files: Sequence[Path], docs: int, inbox: Path) -> list[Path]:
    """`docs` files in `inbox`: the inputs in turn, round r of a file carrying trailer r."""
    if not files:
        raise click.UsageError("no input files")
    inbox.mkdir(parents=True, exist_ok=True)
    out = []
    for n in range(docs):
        src = files[n % len(files)]
        rnd = n // len(files)
        dest = inbox / f"{n:05d}-{src.stem}{'' if rnd == 0 else f'-r{rnd}'}{src.suffix.lower()}"
        dest.write_bytes(distinct_copy(src.read_bytes(), rnd))
        out.append(dest)
    return out


def source_files(source_dir: Path | None, files: Sequence[str]) -> list[Path]:
    """Explicit files, else the PDF/PNG/JPEG files directly in `source_dir` (sorted; ground-truth sub-folders skipped)."""
    if files:
        return [Path(f) for f in files]
    if source_dir is None:
        raise click.UsageError("give --source-dir or --files")
    return sorted(p for p in source_dir.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                  and not p.name.startswith("."))


# ---------------------------------------------------------------- environment


@contextmanager
def bench_environment(work: Path) -> Iterator[dict]:
    """IDP_* variables pointing every resource into `work`; a private ArcadeDB server on free ports
    unless IDP_GRAPH_URI is already set. Step subprocesses (multiprocess executor) inherit them."""
    from resources import graph_server
    from idp_assets.webserver import free_port

    saved = {k: os.environ.get(k) for k in _ENV_KEYS}
    started = False
    try:
        os.environ["IDP_DATA_DIR"] = str(work / "data")
        os.environ["IDP_EXPORT_DIR"] = str(work / "exports")
        os.environ["IDP_INBOX"] = str(work / "inbox")
        if not os.environ.get("IDP_GRAPH_URI"):
            password = "idp-bench"
            uri = graph_server.ensure_running(work / "graph", bolt_port=free_port(), http_port=free_port(),
                                              password=password, database="idp", timeout=120)
            started = True
            os.environ.update({"IDP_GRAPH_URI": uri, "IDP_GRAPH_USER": graph_server.DEFAULT_USER,
                               "IDP_GRAPH_PASSWORD": password, "IDP_GRAPH_DATABASE": "idp", "IDP_GRAPH_MANAGED": "0"})
        yield {k: os.environ.get(k) for k in _ENV_KEYS}
    finally:
        if started:
            graph_server.stop(work / "graph")
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def multiprocess_job():
    """The `process_document` job with the multiprocess executor, resources from the environment.

    Module-level so that `reconstructable()` can rebuild it in every step subprocess."""
    from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor

    from idp_assets.definitions import ALL_ASSETS, DOCUMENT_ASSETS
    from idp_assets.settings import build_resources
    from sensors.common import PROCESS_JOB_NAME

    job = define_asset_job(PROCESS_JOB_NAME, selection=AssetSelection.assets(*DOCUMENT_ASSETS),
                           executor_def=multiprocess_executor)
    return Definitions(assets=ALL_ASSETS, jobs=[job], resources=build_resources()).resolve_job_def(PROCESS_JOB_NAME)


def in_process_job(resources: dict):
    from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

    from idp_assets.definitions import ALL_ASSETS, DOCUMENT_ASSETS
    from sensors.common import PROCESS_JOB_NAME

    job = define_asset_job(PROCESS_JOB_NAME, selection=AssetSelection.assets(*DOCUMENT_ASSETS),
                           executor_def=in_process_executor)
    return Definitions(assets=ALL_ASSETS, jobs=[job], resources=resources).resolve_job_def(PROCESS_JOB_NAME)


# ---------------------------------------------------------------- sensor


def sensor_requests(instance, resources: dict, inbox: Path, expected: int) -> tuple[list, dict]:
    """Tick the folder sensor until it has nothing new; returns (run requests, sensor figures)."""
    from dagster import build_sensor_context

    from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
    from sensors.inbox import InboxSettings, inbox_sensor

    settings = InboxSettings(path=str(inbox), min_age_seconds=0)
    cursor, requests, ticks = None, [], 0
    t0 = time.perf_counter()
    while True:
        ctx = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"inbox_settings": settings, "document_store": resources["document_store"]})
        result = inbox_sensor(ctx)
        ticks += 1
        for req in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, list(req.partition_keys))
        cursor = result.cursor or ctx.cursor
        if not result.run_requests:
            break
        requests += result.run_requests
        if ticks > expected + 2:
            raise RuntimeError("the inbox sensor keeps emitting run requests")
    seconds = time.perf_counter() - t0
    return requests, {"ticks": ticks, "run_requests": len(requests), "seconds": round(seconds, 3),
                      "documents_per_s": round(len(requests) / seconds, 2) if seconds else None}


# ---------------------------------------------------------------- measurement


class TreeRss:
    """Peak resident memory of this process plus all its descendants, sampled every `interval` seconds."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> float:
        import psutil

        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        mb = total / 2**20
        self.peak_mb = max(self.peak_mb, mb)
        return mb

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeRss:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def _maxrss_mb(who: int) -> float:
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # KiB on Linux


def run_figures(instance, run_id: str) -> dict:
    """Step seconds per stage, page count and page routes of one run, from its event log."""
    from dagster import DagsterEventType as E

    starts: dict[str, float] = {}
    steps: dict[str, float] = {}
    pids: set[int] = set()
    failed: list[str] = []
    pages = None
    routes: dict[str, str] = {}
    run_start = run_end = None
    for entry in instance.all_logs(run_id):
        ev = entry.dagster_event
        if ev is None:
            continue
        kind = ev.event_type
        if kind == E.RUN_START:
            run_start = entry.timestamp
        elif kind in (E.RUN_SUCCESS, E.RUN_FAILURE):
            run_end = entry.timestamp
        elif kind == E.STEP_START:
            starts[ev.step_key] = entry.timestamp
            pids.add(ev.pid)
        elif kind in (E.STEP_SUCCESS, E.STEP_FAILURE) and ev.step_key in starts:
            steps[ev.step_key] = entry.timestamp - starts[ev.step_key]
            if kind == E.STEP_FAILURE:
                failed.append(ev.step_key)
        elif kind == E.ASSET_MATERIALIZATION:
            mat = ev.step_materialization_data.materialization
            name = mat.asset_key.path[-1]
            if name == "raw_pages" and "page_count" in mat.metadata:
                pages = int(mat.metadata["page_count"].value)
            elif name == "ocr_pages" and "routes" in mat.metadata:
                routes = {k: v.split(":", 1)[0] for k, v in mat.metadata["routes"].value.items()}
    return {"steps": steps, "failed_steps": failed, "pages": pages, "routes": routes, "step_processes": len(pids),
            "run_seconds": (run_end - run_start) if run_start and run_end else None}


def _sig(x: float, digits: int = 4) -> float:
    """`x` to `digits` significant digits (ratios far below 1 stay readable)."""
    return float(f"{x:.{digits}g}")


def _stage_table(runs: list[dict]) -> dict:
    per: dict[str, list[float]] = {}
    for r in runs:
        for step, s in r["steps"].items():
            per.setdefault(step, []).append(s)
    return {
        step: {"runs": len(v), "total_s": round(sum(v), 3), "mean_s": round(statistics.fmean(v), 4),
               "median_s": round(statistics.median(v), 4), "max_s": round(max(v), 4)}
        for step, v in sorted(per.items(), key=lambda kv: -sum(kv[1]))
    }


def execute_mode(mode: str, instance, requests: list, resources: dict, workers: int = 1) -> tuple[dict, dict[str, dict]]:
    """Execute every run request in `mode`, `workers` runs at a time (as `max_concurrent_runs` lets
    the run queue do); returns (mode report, per-partition run figures)."""
    from concurrent.futures import ThreadPoolExecutor

    from dagster import execute_job, reconstructable

    figures: dict[str, dict] = {}
    if mode == "processes":  # what `idp process --workers N` does: N worker processes, models loaded once each
        from idp_assets.worker_pool import DocumentProcessPool

        t0 = time.perf_counter()
        with TreeRss() as rss, DocumentProcessPool(workers, resources, instance) as pool:
            futures = {req.partition_key: pool.submit_run(req.partition_key, {**req.tags, "idp/bench": mode})
                       for req in requests}
            for key, fut in futures.items():
                success, run_id, _reason = fut.result()
                figures[key] = {"success": success, **run_figures(instance, run_id)}
        return _mode_report(mode, figures, time.perf_counter() - t0, workers, rss), figures
    if mode == "per_run":
        job = reconstructable(multiprocess_job)

        def one(req):
            tags = {**req.tags, "dagster/partition": req.partition_key, "idp/bench": mode}
            with execute_job(job, instance=instance, tags=tags) as result:
                figures[req.partition_key] = {"success": result.success, **run_figures(instance, result.run_id)}
    else:
        job = in_process_job(resources)

        def one(req):
            result = job.execute_in_process(instance=instance, partition_key=req.partition_key,
                                            tags={**req.tags, "idp/bench": mode}, raise_on_error=False)
            figures[req.partition_key] = {"success": result.success, **run_figures(instance, result.run_id)}

    t0 = time.perf_counter()
    with TreeRss() as rss:
        if workers <= 1:
            for req in requests:
                one(req)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench-run") as pool:
                list(pool.map(one, requests))
    wall = time.perf_counter() - t0
    return _mode_report(mode, figures, wall, workers, rss), figures


def _mode_report(mode: str, figures: dict[str, dict], wall: float, workers: int, rss) -> dict:
    runs = list(figures.values())
    ok = [r for r in runs if r["success"]]
    pages = sum(r["pages"] or 0 for r in ok)
    step_total = sum(sum(r["steps"].values()) for r in runs)
    report = {
        "executor": {"per_run": "multiprocess", "processes": "in_process, one worker process per concurrent run"}.get(
            mode, "in_process"),
        "concurrent_runs": workers,
        "runs": len(runs),
        "succeeded": len(ok),
        "failed": len(runs) - len(ok),
        "documents": len(ok),
        "pages": pages,
        "seconds": round(wall, 3),
        "documents_per_s": round(len(ok) / wall, 4) if wall else None,
        "pages_per_s": round(pages / wall, 4) if wall else None,
        "seconds_per_document": round(wall / len(runs), 3) if runs else None,
        "run_seconds_median": round(statistics.median([r["run_seconds"] for r in runs if r["run_seconds"]]), 3)
        if any(r["run_seconds"] for r in runs) else None,
        "step_seconds": round(step_total, 3),
        "step_processes": sum(r["step_processes"] for r in runs),
        # what is not spent inside asset steps: run start-up, step process start-up and model load
        # (multiprocess), event log writes, IO manager hand-over
        # (with concurrent runs the steps overlap: the share is of the runs' summed capacity, wall x workers)
        "overhead_seconds": round(max(0.0, wall * workers - step_total), 3),
        "overhead_share": round(max(0.0, wall * workers - step_total) / (wall * workers), 3) if wall else None,
        "stages": _stage_table(runs),
        "memory": {"tree_peak_rss_mb": round(rss.peak_mb, 1)},
    }
    return report


def raw_engine_timing(router, docs: list, routes: dict[str, dict[str, str]], workers: int = 1,
                      weights: dict[str, int] | None = None) -> dict:
    """`bench_engine` for every engine the pipeline chose, on the same pages; the time of each page's chosen engine.

    `weights`: document id -> how many pipeline documents have its pages (byte variants of one
    input share their pages, so each distinct input is read once and counted that many times).
    With `workers` > 1 the chosen engines also read the same pages `workers` at a time
    (`parallel`), the fair baseline for runs executed concurrently."""
    weights = weights or {}
    chosen = sorted({e for r in routes.values() for e in r.values()})
    engines: dict[str, dict] = {}
    per_page: dict[str, dict[str, float]] = {}
    for name in chosen:
        try:
            eng = router.engine(name)
            if eng.health()[0] and "image" in eng.inputs:  # model load is not part of the per-page time
                first = next(((p, im) for _, _, raw, ims in docs for p, im in zip(raw.pages, ims) if im is not None), None)
                if first is not None:
                    eng.read(first[1], first[0])
        except Exception:  # noqa: BLE001 - bench_engine reports the broken engine
            pass
        res = bench_engine(name, router, docs)
        if res is None:
            engines[name] = {"pages": 0, "reason": "no pages of its input kind"}
            continue
        per_page[name] = res.pop("_per_page", {})
        engines[name] = res
    seconds, timed, missing = 0.0, 0, 0
    for doc_id, r in routes.items():
        for page, engine in r.items():
            t = per_page.get(engine, {}).get(f"{doc_id}#{page}")
            w = weights.get(doc_id, 1)
            if t is None:
                missing += w
            else:
                seconds += t * w
                timed += w
    out = {"engines": engines, "pages": timed, "pages_without_raw_timing": missing, "seconds": round(seconds, 6),
           "pages_per_s": round(timed / seconds, 3) if seconds else None}
    if workers > 1:
        todo = [(router.engine(routes[doc_id][str(p.number)]), p, im)
                for doc_id, _, raw, ims in docs for p, im in zip(raw.pages, ims)
                if engines.get(routes[doc_id].get(str(p.number)), {}).get("pages")]
        t0 = time.perf_counter()
        _map(lambda t: t[0].read(t[2], t[1]), todo, workers)
        wall = time.perf_counter() - t0
        out["parallel"] = {"workers": workers, "pages": len(todo), "seconds": round(wall, 3),
                           "pages_per_s": round(len(todo) / wall, 3) if wall else None}
    return out


def run_bench_pipeline(files: Sequence[Path], docs: int, modes: Sequence[str], work: Path, raw: bool = True,
                       workers: int = 1) -> dict:
    from dagster import DagsterInstance

    from idp_assets.logic.pages import load_document
    from idp_assets.settings import build_resources

    inbox = work / "inbox"
    inputs = prepare_inputs(files, docs, inbox)
    report: dict = {
        "inputs": {"files": [str(f) for f in files], "documents": len(inputs),
                   "bytes": sum(p.stat().st_size for p in inputs)},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "env": {k: os.environ.get(k) for k in ("OMP_THREAD_LIMIT", "OMP_NUM_THREADS", "IDP_OCR_GPU_ENGINES")},
        "modes": {},
        "notes": [
            "seconds/documents_per_s/pages_per_s: wall time of executing the runs (sensor ticks are under sensor)",
            "per_run: execute_job one run after the other in this process; a daemon would add one run-worker "
            "process start per run (DefaultRunLauncher) on top",
            "stages: STEP_START -> STEP_SUCCESS from the event log; model loads happen inside the first step that "
            "needs them (every step in per_run, the first run in batched)",
            "memory.largest_child_peak_rss_mb is meaningful for per_run (step processes); a child forked from a "
            "large process reports that process's peak",
        ],
    }
    all_routes: dict[str, dict[str, str]] = {}
    with bench_environment(work):
        for mode in modes:
            # every mode gets its own instance and store: same documents, nothing already materialized
            home = work / f"dagster_home_{mode}"
            home.mkdir(parents=True, exist_ok=True)
            os.environ["IDP_DATA_DIR"] = str(work / f"data_{mode}")
            resources = build_resources()
            instance = DagsterInstance.local_temp(str(home), overrides=storage_overrides(str(home)))
            try:
                requests, sensor = sensor_requests(instance, resources, inbox, len(inputs))
                mode_report, figures = execute_mode(mode, instance, requests, resources, workers)
            finally:
                instance.dispose()
            mode_report["sensor"] = sensor
            report["modes"][mode] = mode_report
            for doc_id, f in figures.items():
                if f["success"]:
                    all_routes.setdefault(doc_id, f["routes"])
        # getrusage peaks cover the whole command (all modes): this process, and its largest finished
        # child (a multiprocess step); modes.<m>.memory.tree_peak_rss_mb is per mode (process tree, sampled)
        report["memory"] = {"self_peak_rss_mb": _maxrss_mb(resource.RUSAGE_SELF),
                            "largest_child_peak_rss_mb": _maxrss_mb(resource.RUSAGE_CHILDREN)}
        report["pages"] = sum(len(r) for r in all_routes.values())
        if raw and all_routes:
            # copies of one input (byte variants) have the same pages: each distinct input is read once by the
            # raw engines and weighted by its copies (1,000 documents need not be decoded and read twice)
            by_id = {hashlib.sha256(data).hexdigest(): (i % len(files), p, data)
                     for i, (p, data) in enumerate((p, p.read_bytes()) for p in inputs)}
            reps: dict[int, str] = {}
            weights: dict[str, int] = {}
            for doc_id in all_routes:
                src = by_id[doc_id][0]
                rep = reps.setdefault(src, doc_id)
                weights[rep] = weights.get(rep, 0) + 1
            loaded = []
            for rep in reps.values():
                _src, p, data = by_id[rep]
                raw_pages, images = load_document(rep, data, filename=p.name)
                loaded.append((rep, "bench", raw_pages, images))
            raw_report = raw_engine_timing(resources["ocr_router"], loaded, {r: all_routes[r] for r in reps.values()},
                                           workers, weights=weights)
            raw_report["distinct_documents_read"] = len(reps)
            report["raw_engines"] = raw_report
            ratios = {}
            # runs executed `workers` at a time are compared with the engines reading `workers` pages at a time
            raw_pps = raw_report.get("parallel", raw_report)["pages_per_s"]
            for mode, m in report["modes"].items():
                ocr = m["stages"].get("ocr_pages", {}).get("total_s")
                ratios[mode] = {
                    # 1.0 would mean the pipeline reads pages as fast as the bare engines
                    "pipeline_vs_raw_engines": _sig(m["pages_per_s"] / raw_pps) if m["pages_per_s"] and raw_pps else None,
                    "ocr_stage_vs_raw_engines": _sig(raw_report["seconds"] / ocr) if ocr else None,
                }
            report["ratios"] = ratios
    return report


@click.command(name="pipeline")
@click.option("--docs", "docs", default=20, show_default=True, type=int, help="documents (the inputs repeated in turn)")
@click.option("--source-dir", default="../shared/corpus/receipts", show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="PDF/PNG/JPEG files directly in this folder")
@click.option("--files", "files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="explicit input files (repeatable; overrides --source-dir)")
@click.option("--mode", type=click.Choice(["per-run", "batched", "processes", "both"]), default="both", show_default=True,
              help="per-run: multiprocess executor; batched: runs in threads of this process; processes: runs in "
                   "worker processes with models loaded once each (what `idp process --workers N` does)")
@click.option("--no-raw", is_flag=True, help="skip the raw engine timing on the same pages")
@click.option("--workers", default=1, show_default=True, type=int,
              help="runs executed at once (threads or worker processes; like the run queue's max_concurrent_runs)")
@click.option("--work-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="keep the instance/data here (default: a temp folder, removed afterwards)")
@click.option("--out", "out", default="bench_pipeline.json", show_default=True, type=click.Path(dir_okay=False))
def bench_pipeline(docs: int, source_dir: Path, files: tuple[str, ...], mode: str, no_raw: bool, workers: int,
                   work_dir: Path | None, out: str) -> None:
    """Documents/s, pages/s, per-stage time and peak RSS of the process_document job, vs the raw engines."""
    if docs < 1:
        raise click.UsageError("--docs must be at least 1")
    inputs = source_files(source_dir if not files else None, files)
    modes = {"per-run": ["per_run"], "batched": ["batched"], "processes": ["processes"],
             "both": ["per_run", "batched"]}[mode]
    tmp = None
    if work_dir is None:
        tmp = tempfile.mkdtemp(prefix="idp-bench-pipeline-")
        work_dir = Path(tmp)
    try:
        report = run_bench_pipeline(inputs, docs, modes, work_dir.resolve(), raw=not no_raw, workers=max(1, workers))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    Path(out).write_text(json.dumps(report, indent=2))
    for name, m in report["modes"].items():
        top = ", ".join(f"{k} {v['total_s']}s" for k, v in list(m["stages"].items())[:3])
        click.echo(f"{name:8s} {m['executor']:12s} {m['documents']}/{m['runs']} docs {m['pages']} pages "
                   f"{m['seconds']}s  {m['documents_per_s']} docs/s  {m['pages_per_s']} pages/s  "
                   f"overhead {m['overhead_share']}  peak {m['memory']['tree_peak_rss_mb']} MB  [{top}]")
    if "raw_engines" in report:
        r = report["raw_engines"]
        click.echo(f"raw engines {r['pages']} pages {r['pages_per_s']} pages/s; ratios {json.dumps(report['ratios'])}")
    click.echo(f"-> {out}")


__all__ = ["bench_pipeline", "run_bench_pipeline", "distinct_copy", "prepare_inputs"]
