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
  scanned and born-digital pages, with `vs_engine` = its pages/s divided by the
  raw pages/s of the engines it chose, on the same pages;
* `memory`: RSS sampled after every page while `--pages` pages are read through
  the router (cycling over the corpus), its peak (`ru_maxrss`) and the growth
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


def bench_router(router, docs) -> dict:
    """The routed path, split into scanned and born-digital pages, with the engines it chose."""
    groups: dict[str, dict] = {"scanned": {"s": [], "c": [], "keys": []}, "born_digital": {"s": [], "c": [], "keys": []}}
    engines: dict[str, int] = {}
    for doc_id, _cat, raw, images in docs:
        if raw.kind == "office":
            continue
        t0 = time.perf_counter()
        result = router.ocr_document(raw, images)
        dt = time.perf_counter() - t0
        for page, image, ocr in zip(raw.pages, images, result.pages):
            g = groups["scanned" if image is not None else "born_digital"]
            g["s"].append(dt / len(raw.pages))
            g["c"].append(ocr.confidence)
            g["keys"].append((f"{doc_id}#{page.number}", ocr.engine))
            engines[ocr.engine] = engines.get(ocr.engine, 0) + 1
    return {"groups": groups, "engines_chosen": engines}


def run_bench(
    corpus: Path,
    engines: list[str],
    categories: list[str] | None,
    limit: int | None,
    pages: int,
    engine_settings: dict | None = None,
) -> dict:
    from resources.ocr.router import OcrRouter

    t_load = time.perf_counter()
    docs = load_corpus(corpus, categories, limit)
    load_s = time.perf_counter() - t_load
    settings = engine_settings or {}
    gpu = [e for e in engines if e in settings and e not in ("tesseract", "rapidocr", "text_layer")]
    router = OcrRouter(engine_settings=settings, gpu_engines=gpu)
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

    routed = bench_router(router, docs)
    ocr_pages: dict = {"engines_chosen": routed["engines_chosen"]}
    for gname, g in routed["groups"].items():
        if not g["s"]:
            continue
        entry = _summary(g["s"], g["c"])
        # raw engine time for exactly the pages the router sent to it
        raw_times = [raw_per_page.get(eng, {}).get(key) for key, eng in g["keys"]]
        if all(t is not None for t in raw_times):
            raw_total = sum(raw_times)
            entry["raw_engine_pages_per_s"] = round(len(raw_times) / raw_total, 3) if raw_total else None
            entry["vs_engine"] = round(raw_total / sum(g["s"]), 3) if sum(g["s"]) else None
        ocr_pages[gname] = entry
    report["ocr_pages"] = ocr_pages

    # memory over many pages through the router
    if pages:
        samples: list[float] = []
        image_docs = [d for d in docs if d[2].kind != "office"]
        n = 0
        t0 = time.perf_counter()
        while n < pages and image_docs:
            for _doc_id, _cat, raw, images in image_docs:
                for page, image in zip(raw.pages, images):
                    if n >= pages:
                        break
                    sub = raw.model_copy(update={"pages": [page]})
                    router.ocr_document(sub, [image])
                    n += 1
                    samples.append(_rss_mb())
                if n >= pages:
                    break
        tenth = max(1, len(samples) // 10)
        report["memory"] = {
            "pages": n,
            "seconds": round(time.perf_counter() - t0, 3),
            "rss_first_tenth_mb": round(statistics.fmean(samples[:tenth]), 1) if samples else None,
            "rss_last_tenth_mb": round(statistics.fmean(samples[-tenth:]), 1) if samples else None,
            "rss_growth_mb": round(statistics.fmean(samples[-tenth:]) - statistics.fmean(samples[:tenth]), 1)
            if samples
            else None,
        }
    report.setdefault("memory", {})["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    return report


@click.group(name="bench")
def bench() -> None:
    """Benchmarks that write JSON reports."""


@bench.command(name="ocr")
@click.option("--corpus", "corpus", default="../shared/corpus", type=click.Path(exists=True, file_okay=False))
@click.option("--engines", default="text_layer,tesseract,rapidocr", help="comma-separated engine names")
@click.option("--categories", default="", help="comma-separated manifest categories (default: all)")
@click.option("--limit", default=0, type=int, help="documents per category (0: all)")
@click.option("--pages", default=0, type=int, help="pages read through the router for the memory check (e.g. 500)")
@click.option("--engine-settings", default="", help='JSON options per engine, e.g. \'{"got_ocr2": {"model_path": "/m"}}\'')
@click.option("--out", "out", default="bench-ocr.json", type=click.Path(dir_okay=False))
def bench_ocr(corpus: str, engines: str, categories: str, limit: int, pages: int, engine_settings: str, out: str) -> None:
    """Pages/s per engine and for the routed ocr_pages path on corpus pages; peak RSS; JSON report."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    report = run_bench(
        Path(corpus),
        [e for e in engines.split(",") if e],
        [c for c in categories.split(",") if c] or None,
        limit or None,
        pages,
        json.loads(engine_settings) if engine_settings else None,
    )
    Path(out).write_text(json.dumps(report, indent=2))
    for name, e in report["engines"].items():
        click.echo(f"{name:12s} {e.get('pages', 0):4d} pages  {e.get('pages_per_s')} pages/s  {e.get('reason', '')}")
    for g in ("scanned", "born_digital"):
        if g in report["ocr_pages"]:
            e = report["ocr_pages"][g]
            click.echo(f"ocr_pages/{g:12s} {e['pages']:4d} pages  {e['pages_per_s']} pages/s  vs engine {e.get('vs_engine')}")
    click.echo(f"peak RSS {report['memory']['peak_rss_mb']} MB -> {out}")


__all__ = ["bench", "bench_ocr", "run_bench"]
