"""`idp bench ocr`: pages/s per OCR engine and for the whole routed `ocr_pages` path, peak RSS, JSON out.

    idp bench ocr --corpus ../shared/corpus --out bench-ocr.json
    idp bench ocr --engines tesseract,rapidocr --categories receipts --limit 10 --pages 500

What is measured (one process, pages read one at a time, documents loaded and
pages rendered before the clock starts):

* `engines.<name>`: the raw engine's `read()` on the corpus pages it is made for
  (image engines: the page images of scanned documents; `text_layer`: the
  born-digital PDF pages) - pages, seconds, pages/s, mean confidence;
* `ocr_pages`: `OcrRouter.ocr_document` (what the `ocr_pages` asset runs: routing,
  complexity features, engine, fallbacks) over the same documents, split into
  scanned and born-digital pages, `--workers` documents at a time (the `cpu`
  pool's slots: that many runs read documents at once), with `vs_engine` = its
  pages/s divided by the pages/s of the raw engines it kept, run on the same
  pages with the same number of workers;
* `memory`: RSS sampled after every page (every `--workers` pages) while
  `--pages` pages are read through the router (cycling over the corpus), its peak (`ru_maxrss`) and the growth
  between the first and the last tenth of the run.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import click


def _rss_mb() -> float:
    """Current resident set size (Linux /proc; the peak where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_corpus(corpus: Path, categories: list[str] | None, limit: int | None):
    """[(doc id, category, RawPages, images)] for the manifest's documents."""
    from idp_assets.logic.pages import load_document

    docs = []
    per_cat: dict[str, int] = {}
    for line in (corpus / "manifest.jsonl").read_text().splitlines():
        d = json.loads(line)
        if categories and d["category"] not in categories:
            continue
        if limit and per_cat.get(d["category"], 0) >= limit:
            continue
        per_cat[d["category"]] = per_cat.get(d["category"], 0) + 1
        path = corpus / d["file"]
        raw, images = load_document(d["id"][:64].ljust(64, "0"), path.read_bytes(), filename=path.name)
        docs.append((d["id"], d["category"], raw, images))
    return docs


def _cold_caches() -> None:
    """Forget cached page measurements (the text-layer validity), so every timed pass starts cold."""
    from idp_assets.logic.pages import text_validity

    text_validity.cache_clear()


def _summary(seconds: list[float], confs: list[float | None]) -> dict:
    total = sum(seconds)
    c = [x for x in confs if x is not None]
    return {
        "pages": len(seconds),
        "seconds": round(total, 3),
        "pages_per_s": round(len(seconds) / total, 3) if total else None,
        "seconds_per_page_median": round(statistics.median(seconds), 4) if seconds else None,
        "mean_confidence": round(statistics.fmean(c), 4) if c else None,
    }


def bench_engine(name: str, router, docs) -> dict | None:
    """Raw `read()` speed of one engine on the pages it is made for."""
    try:
        engine = router.engine(name)
        ok, why = engine.health()
    except Exception as exc:  # noqa: BLE001 - an unknown/broken engine is reported, not fatal
        return {"healthy": False, "reason": f"{type(exc).__name__}: {exc}"}
    if not ok:
        return {"healthy": False, "reason": why}
    seconds, confs, per_page = [], [], {}
    todo = []
    for doc_id, _cat, raw, images in docs:
        for page, image in zip(raw.pages, images):
            if "image" in engine.inputs:
                if image is None:
                    continue
            elif "pdf_text" in engine.inputs:
                if raw.kind != "pdf" or image is not None:
                    continue
            else:
                continue
            todo.append((f"{doc_id}#{page.number}", page, image))
    batch = engine.batch_size if hasattr(engine, "read_batch") else 1
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        _cold_caches()
        t0 = time.perf_counter()
        if batch > 1:
            outs = engine.read_batch([c[2] for c in chunk], [c[1] for c in chunk])
        else:
            outs = [engine.read(chunk[0][2], chunk[0][1])]
        dt = (time.perf_counter() - t0) / len(chunk)
        for (key, _, _), out in zip(chunk, outs):
            seconds.append(dt)
            confs.append(out.confidence)
            per_page[key] = dt
    if not seconds:
        return None
    return {
        "healthy": True,
        "compute": engine.compute,
        "batch_size": batch,
        **_summary(seconds, confs),
        "_per_page": per_page,
    }


# timed passes per group (the best is kept): a born-digital pass is over in milliseconds, where one
# garbage collection or scheduler hiccup would decide the ratio
REPEATS = {"scanned": 1, "born_digital": 25}


def bench_router(router, docs, workers: int = 1) -> dict:
    """The routed path, split into scanned and born-digital pages, with the engines it chose.

    Scanned and born-digital documents are timed as two separate batches, each by the
    wall clock while `workers` documents are read at once (as `workers` concurrent runs
    holding the `cpu` pool's slots would); per-page seconds are the wall time's share.
    """
    engines: dict[str, int] = {}
    groups: dict[str, dict] = {}
    batches = {
        "scanned": [d for d in docs if d[2].kind != "office" and any(im is not None for im in d[3])],
        "born_digital": [d for d in docs if d[2].kind == "pdf" and all(im is None for im in d[3])],
    }
    for gname, batch in batches.items():
        if not batch:
            continue
        wall = float("inf")
        for _ in range(REPEATS[gname]):  # best of N: a born-digital pass takes milliseconds
            _cold_caches()
            t0 = time.perf_counter()
            results = _map(lambda d: router.ocr_document(d[2], d[3]), batch, workers)
            wall = min(wall, time.perf_counter() - t0)
        keys, confs = [], []
        for (doc_id, _cat, raw, _images), result in zip(batch, results):
            for page, ocr in zip(raw.pages, result.pages):
                keys.append((f"{doc_id}#{page.number}", ocr.engine))
                confs.append(ocr.confidence)
                engines[ocr.engine] = engines.get(ocr.engine, 0) + 1
        groups[gname] = {"wall": wall, "keys": keys, "c": confs, "docs": batch, "repeats": REPEATS[gname]}
    return {"groups": groups, "engines_chosen": engines}


def _map(fn, items, workers: int) -> list:
    if workers <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def bench_chosen_engines(router, group: dict, workers: int) -> float:
    """Wall seconds for the raw engines the router kept, on the same pages, with the same parallelism."""
    from resources.ocr.registry import known_engines

    chosen = dict(group["keys"])
    known = set(known_engines())
    todo = []
    for doc_id, _cat, raw, images in group["docs"]:
        for page, image in zip(raw.pages, images):
            name = chosen[f"{doc_id}#{page.number}"]
            if name in known:  # 'none': no engine could read the page, nothing to time
                todo.append((router.engine(name), page, image))
    wall = float("inf")
    for _ in range(group.get("repeats", 1)):
        _cold_caches()
        t0 = time.perf_counter()
        _map(lambda t: t[0].read(t[2], t[1]), todo, workers)
        wall = min(wall, time.perf_counter() - t0)
    return wall


def run_bench(
    corpus: Path,
    engines: list[str],
    categories: list[str] | None,
    limit: int | None,
    pages: int,
    engine_settings: dict | None = None,
    workers: int = 1,
) -> dict:
    from resources.ocr.router import OcrRouter

    t_load = time.perf_counter()
    docs = load_corpus(corpus, categories, limit)
    load_s = time.perf_counter() - t_load
    settings = engine_settings or {}
    gpu = [e for e in engines if e in settings and e not in ("tesseract", "rapidocr", "text_layer")]
    # documents are read `workers` at a time, each one's pages one after the other
    router = OcrRouter(engine_settings=settings, gpu_engines=gpu, page_workers=1)
    router.engines_health()
    # warm up every engine once (model loading is not part of the per-page figures)
    for name in engines:
        try:
            eng = router.engine(name)
        except Exception:  # noqa: BLE001 - reported by bench_engine
            continue
        if eng.health()[0] and "image" in eng.inputs and "vlm_endpoint" != name:
            img = next((im for _, _, _, ims in docs for im in ims if im is not None), None)
            if img is not None:
                eng.read(img, next(p for _, _, r, ims in docs for p, im in zip(r.pages, ims) if im is not None))

    report: dict = {
        "corpus": str(corpus),
        "documents": len(docs),
        "categories": sorted({c for _, c, _, _ in docs}),
        "load_seconds": round(load_s, 3),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "env": {k: os.environ.get(k) for k in ("OMP_THREAD_LIMIT", "OMP_NUM_THREADS")},
        "engines": {},
    }
    raw_per_page: dict[str, dict[str, float]] = {}
    for name in engines:
        res = bench_engine(name, router, docs)
        if res is None:
            report["engines"][name] = {"pages": 0, "reason": "no pages of its input kind in the selection"}
            continue
        raw_per_page[name] = res.pop("_per_page", {})
        report["engines"][name] = res

    routed = bench_router(router, docs, workers)
    ocr_pages: dict = {"engines_chosen": routed["engines_chosen"], "workers": workers}
    for gname, g in routed["groups"].items():
        n = len(g["keys"])
        entry = _summary([g["wall"] / n] * n, g["c"])
        # the raw engines the router kept, on exactly these pages: one at a time (the
        # per-engine figures above) and with the same number of workers as the routed path
        raw_times = [raw_per_page.get(eng, {}).get(key) for key, eng in g["keys"]]
        if all(t is not None for t in raw_times) and sum(raw_times):
            entry["raw_engine_sequential_pages_per_s"] = round(n / sum(raw_times), 3)
        raw_wall = bench_chosen_engines(router, g, workers)
        entry["raw_engine_pages_per_s"] = round(n / raw_wall, 3) if raw_wall else None
        entry["vs_engine"] = round(raw_wall / g["wall"], 3) if g["wall"] else None
        ocr_pages[gname] = entry
    report["ocr_pages"] = ocr_pages

    # memory over many pages through the router (`workers` pages at a time)
    if pages:
        samples: list[float] = []
        image_pages = [
            (raw.model_copy(update={"pages": [page]}), image)
            for _doc_id, _cat, raw, images in docs
            if raw.kind != "office"
            for page, image in zip(raw.pages, images)
        ]
        todo = [image_pages[i % len(image_pages)] for i in range(pages)] if image_pages else []
        n = 0
        t0 = time.perf_counter()
        for i in range(0, len(todo), workers):
            _map(lambda item: router.ocr_document(item[0], [item[1]]), todo[i : i + workers], workers)
            n += len(todo[i : i + workers])
            samples.append(_rss_mb())
        tenth = max(1, len(samples) // 10)
        report["memory"] = {
            "pages": n,
            "seconds": round(time.perf_counter() - t0, 3),
            "rss_first_tenth_mb": round(statistics.fmean(samples[:tenth]), 1) if samples else None,
            "rss_last_tenth_mb": round(statistics.fmean(samples[-tenth:]), 1) if samples else None,
            "rss_growth_mb": round(statistics.fmean(samples[-tenth:]) - statistics.fmean(samples[:tenth]), 1)
            if samples
            else None,
            # the first tenth still loads models and fills the runtimes' per-shape caches: the
            # growth over the second half says whether memory keeps climbing
            "rss_middle_tenth_mb": round(statistics.fmean(samples[len(samples) // 2 - tenth // 2:][:tenth]), 1)
            if samples else None,
            "rss_growth_second_half_mb": round(
                statistics.fmean(samples[-tenth:]) - statistics.fmean(samples[len(samples) // 2 - tenth // 2:][:tenth]), 1)
            if samples else None,
            "rss_curve_mb": [round(x) for x in samples[:: max(1, len(samples) // 25)]],
        }
    report.setdefault("memory", {})["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return report


@click.command(name="ocr")
@click.option("--corpus", "corpus", default="../shared/corpus", type=click.Path(exists=True, file_okay=False))
@click.option("--engines", default="text_layer,tesseract,rapidocr", help="comma-separated engine names")
@click.option("--categories", default="", help="comma-separated manifest categories (default: all)")
@click.option("--limit", default=0, type=int, help="documents per category (0: all)")
@click.option("--pages", default=0, type=int, help="pages read through the router for the memory check (e.g. 500)")
@click.option("--workers", default=1, type=int, show_default=True,
              help="documents read at once by the routed path and its raw-engine baseline (e.g. the cpu pool's 2 slots)")
@click.option("--engine-settings", default="", help='JSON options per engine, e.g. \'{"got_ocr2": {"model_path": "/m"}}\'')
@click.option("--out", "out", default="bench-ocr.json", type=click.Path(dir_okay=False))
def bench_ocr(
    corpus: str, engines: str, categories: str, limit: int, pages: int, workers: int, engine_settings: str, out: str
) -> None:
    """Pages/s per engine and for the routed ocr_pages path on corpus pages; peak RSS; JSON report."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    report = run_bench(
        Path(corpus),
        [e for e in engines.split(",") if e],
        [c for c in categories.split(",") if c] or None,
        limit or None,
        pages,
        json.loads(engine_settings) if engine_settings else None,
        workers=max(1, workers),
    )
    Path(out).write_text(json.dumps(report, indent=2))
    for name, e in report["engines"].items():
        click.echo(f"{name:12s} {e.get('pages', 0):4d} pages  {e.get('pages_per_s')} pages/s  {e.get('reason', '')}")
    for g in ("scanned", "born_digital"):
        if g in report["ocr_pages"]:
            e = report["ocr_pages"][g]
            click.echo(
                f"ocr_pages/{g:12s} {e['pages']:4d} pages  {e['pages_per_s']} pages/s  "
                f"(raw engines {e.get('raw_engine_pages_per_s')} pages/s, {workers} worker(s))  vs engine {e.get('vs_engine')}"
            )
    click.echo(f"peak RSS {report['memory']['peak_rss_mb']} MB -> {out}")


__all__ = ["bench_ocr", "run_bench"]
