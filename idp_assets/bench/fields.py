"""Throughput of table and field extraction per page type (`idp bench-fields`).

Page types: ``einvoice`` (PDF with embedded CII XML: XML line items + fields), ``born_digital``
(PDF text layer: ruled / aligned tables, label rules over text and layout lines) and ``scanned``
(images: field rules over OCR text taken from a previous ``idp process`` output folder, since
OCR itself is benchmarked elsewhere; table detection on scanned pages is not implemented, so
no table figure is reported for them).  Writes one JSON report.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import click

from idp_assets.logic.einvoice import extract_einvoice
from idp_assets.logic.fields import extract_fields
from idp_assets.logic.tables import document_tables, normalize_table, ocr_layout_text, pdf_layout_text
from idp_assets.models import OcrWord

DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


def _pdf_text(data: bytes) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()


def page_type(doc: dict) -> str:
    if doc["category"] == "einvoices":
        return "einvoice"
    return "born_digital" if doc["file"].lower().endswith(".pdf") and doc["category"] != "scans_rotated" else "scanned"


def bench_document(doc: dict, corpus: Path, results: Path | None, repeat: int = 1) -> dict | None:
    """Timings of one document: ``{"type", "pages", "tables", "table_seconds", "fields",
    "field_seconds"}`` (``None`` when its text is not available)."""
    kind = page_type(doc)
    data = (corpus / doc["file"]).read_bytes()
    out = {"id": doc["id"], "type": kind, "pages": doc.get("pages") or 1, "tables": 0, "table_seconds": None,
           "fields": 0, "field_seconds": None}
    if kind == "scanned":
        rec_path = results / (Path(doc["file"]).stem + ".json") if results else None
        if rec_path is None or not rec_path.is_file():
            return None
        rec = json.loads(rec_path.read_text(encoding="utf-8"))
        texts = [p["text"] for p in rec.get("pages", [])]
        confs = [p.get("confidence") for p in rec.get("pages", [])]
        out["pages"] = len(texts) or 1
        t0 = time.perf_counter()
        for _ in range(repeat):
            fx = extract_fields(texts, None, None, confs)
        out["field_seconds"] = (time.perf_counter() - t0) / repeat
        out["fields"] = len(fx.fields)
        return out
    t0 = time.perf_counter()
    for _ in range(repeat):
        einv = extract_einvoice(data)
        tables = [normalize_table(t) for t in document_tables(data, None, einv)]
    out["table_seconds"] = (time.perf_counter() - t0) / repeat
    out["tables"] = len(tables)
    texts = _pdf_text(data)
    out["pages"] = len(texts) or 1
    t0 = time.perf_counter()
    for _ in range(repeat):
        fx = extract_fields(texts, None, einv, layout_text_by_page=lambda: pdf_layout_text(data))
    out["field_seconds"] = (time.perf_counter() - t0) / repeat
    out["fields"] = len(fx.fields)
    return out


def summarize(rows: list[dict]) -> dict:
    by: dict[str, dict] = {}
    for r in rows:
        s = by.setdefault(r["type"], {"documents": 0, "pages": 0, "tables": 0, "table_seconds": 0.0,
                                      "table_documents": 0, "fields": 0, "field_seconds": 0.0})
        s["documents"] += 1
        s["pages"] += r["pages"]
        if r["table_seconds"] is not None:
            s["table_documents"] += 1
            s["tables"] += r["tables"]
            s["table_seconds"] += r["table_seconds"]
        s["fields"] += r["fields"]
        s["field_seconds"] += r["field_seconds"] or 0.0
    for s in by.values():
        ts, fs = s["table_seconds"], s["field_seconds"]
        s["tables_per_s"] = round(s["tables"] / ts, 2) if ts else None
        s["table_pages_per_s"] = round(s["pages"] / ts, 2) if ts and s["table_documents"] else None
        s["fields_per_s"] = round(s["fields"] / fs, 1) if fs else None
        s["field_documents_per_s"] = round(s["documents"] / fs, 2) if fs else None
        s["table_seconds"], s["field_seconds"] = round(ts, 4), round(fs, 4)
    return by


@click.command("bench-fields")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False), default=str(DEFAULT_CORPUS), show_default=True)
@click.option("--results", type=click.Path(file_okay=False), default=None,
              help="an `idp process` output folder: OCR text of scanned documents")
@click.option("--category", multiple=True, help="only these corpus categories (repeatable)")
@click.option("--repeat", type=int, default=1, show_default=True, help="timed repetitions per document")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None, help="write the JSON report here")
@click.option("--reliability", is_flag=True, help="print the reliability table of the fitted field-confidence model "
              "(in-sample, out-of-fold, per family) and stop")
def bench_fields(corpus: str, results: str | None, category: tuple[str, ...], repeat: int, out_file: str | None,
                 reliability: bool = False) -> None:
    """Tables/s and fields/s per page type (einvoice, born_digital, scanned) as JSON."""
    if reliability:
        from idp_assets.logic.field_rules.confidence import MODEL_PATH, load_model

        model = load_model()
        if model is None:
            raise click.ClickException(f"no fitted model at {MODEL_PATH}: run `idp bench fields-calibrate`")
        click.echo(format_reliability(model["report"]))
        return
    corpus_p = Path(corpus)
    docs = [json.loads(ln) for ln in (corpus_p / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if ln.strip()]
    if category:
        docs = [d for d in docs if d["category"] in category]
    rows, skipped = [], []
    for d in docs:
        r = bench_document(d, corpus_p, Path(results) if results else None, max(1, repeat))
        (rows.append(r) if r else skipped.append(d["id"]))
    report = {"machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
              "repeat": repeat, "by_type": summarize(rows), "skipped_no_text": skipped, "documents": rows}
    text = json.dumps(report, indent=2)
    if out_file:
        Path(out_file).write_text(text, encoding="utf-8")
    click.echo(json.dumps(report["by_type"], indent=2) if out_file else text)


# -- confidence calibration (`idp bench fields-calibrate`, `python -m idp_assets.bench.fields calibrate`) ------

CALIBRATION_FIELDS = ("supplier_name", "invoice_number", "date", "total", "currency", "due_date", "net_total",
                      "tax_total", "vat_id", "iban")
# the pipeline's OCR of the scanned calibration documents (receipts, invoice images, print-invoice scans),
# written by `idp bench fields-ocr-cache` from `idp process` output folders
DEFAULT_OCR_RESULTS = Path(__file__).resolve().parents[2] / "tests" / "data" / "calibration_ocr.jsonl.gz"
OCR_CATEGORIES = ("invoices_image", "receipts", "invoices_scan")
PRINT_CATEGORIES = ("invoices_print", "invoices_scan")


def _score_module(corpus: Path):
    import importlib.util

    path = corpus.parent / "tools" / "score.py"
    spec = importlib.util.spec_from_file_location("idp_corpus_score", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def family_of(doc: dict) -> str:
    """The fold a document belongs to: its source family (a sample and its profiles/releases stay together)."""
    if doc["category"] in PRINT_CATEGORIES:  # a print and its scan are one invoice: same fold
        return "print:" + "/".join(doc["source_path"].split("/")[:3 if doc["source_path"].startswith("ZUGFeRDv2") else 1])
    if doc["category"] in ("invoices_pdf", "invoices_image"):
        return "invoice2data"
    return f"{doc['category']}:{doc['source_repo']}"


def calibration_documents(corpus: Path) -> list[dict]:
    docs = [json.loads(ln) for ln in (corpus / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if ln.strip()]
    docs = [d for d in docs if d["category"] in ("invoices_pdf", "einvoices", "invoices_image", "receipts")]
    for name in ("manifest-print.jsonl", "manifest-scan.jsonl"):
        pm = corpus / "invoices_print" / name
        if pm.is_file():
            for ln in pm.read_text(encoding="utf-8").splitlines():
                if ln.strip():
                    d = json.loads(ln)
                    docs.append(dict(d, file="invoices_print/" + d["file"]))
    return docs


def _ocr_pages(ocr_results: Path | None) -> dict[str, dict]:
    import gzip

    if ocr_results is None or not ocr_results.is_file():
        return {}
    opener = gzip.open if ocr_results.suffix == ".gz" else open
    with opener(ocr_results, "rt", encoding="utf-8") as f:
        return {r["corpus_id"]: r for r in (json.loads(ln) for ln in f if ln.strip())}


def calibration_rows(corpus: Path, ocr_results: Path | None, today=None) -> list[dict]:
    """One row per extracted field with a known truth: ``{doc, family, field, group, x, correct}``.
    Print manifests list only printed XML values: a field they omit counts as wrong when extracted."""
    from datetime import date as _date

    from idp_assets.logic.field_rules.confidence import feature_vector, group_of

    score = _score_module(corpus)
    today = today or _date.today()
    cached = _ocr_pages(ocr_results)
    rows = []
    for d in calibration_documents(corpus):
        if d["category"] in OCR_CATEGORIES:
            r = cached.get(f"{d['category']}:{d['id']}")
            if r is None:
                continue
            words = [[OcrWord(text=w[0], confidence=w[1], bbox=tuple(w[2:6])) for w in p.get("words", [])]
                     for p in r["pages"]]
            # as the extracted_fields asset reads an OCR'd page: text, words, and the words' visual lines
            fx = extract_fields([p["text"] for p in r["pages"]], words, None,
                                [p.get("confidence") for p in r["pages"]], today=today,
                                layout_text_by_page=lambda words=words: [ocr_layout_text(ws) for ws in words])
        else:
            data = (corpus / d["file"]).read_bytes()
            einv = extract_einvoice(data)
            fx = extract_fields(_pdf_text(data), None, einv, layout_text_by_page=lambda data=data: pdf_layout_text(data),
                                today=today)
        gt = d.get("fields") or {}
        for name in CALIBRATION_FIELDS:
            fv = fx.fields.get(name)
            if fv is None or fv.value is None:
                continue
            if d["category"] in PRINT_CATEGORIES:
                truth = gt.get(name)
                ok = truth is not None and score.field_correct(name, fv.value, truth)
            elif gt.get(name) is None:
                continue  # not annotated
            else:
                ok = score.field_correct(name, fv.value, gt[name])
            ev = (fx.evidence or {}).get(name, {})
            rows.append({"doc": d["id"], "family": family_of(d), "field": name, "group": group_of(name, ev),
                         "x": feature_vector(ev), "correct": int(bool(ok))})
    return rows


def _ocr_record(category: str, doc_id: str, ocr) -> dict:
    return {"corpus_id": f"{category}:{doc_id}", "pages": [
        {"text": p.text or "", "confidence": p.confidence, "engine": p.engine,
         "words": [[w.text, round(w.confidence, 3), *(round(v, 1) for v in w.bbox)] for w in p.words]}
        for p in ocr.pages]}


def ocr_cache(corpus: Path, out: Path, workers: int = 2) -> int:
    """Read the scanned calibration documents (receipts, invoice images, print-invoice scans) through
    the OCR router exactly as the ``ocr_pages`` asset does, and store per page the text, confidence,
    engine and words (text, confidence, box) as gzipped JSON lines; returns the number of documents.
    Keys are ``<category>:<id>`` (a print invoice and its scan share ids)."""
    import gzip
    from concurrent.futures import ThreadPoolExecutor

    from idp_assets.logic.pages import load_document
    from resources.ocr.router import OcrRouter

    docs = [d for d in calibration_documents(corpus) if d["category"] in OCR_CATEGORIES]
    router = OcrRouter(languages="deu+eng", page_workers=1)  # the defaults idp_assets.settings builds

    def read(d: dict) -> dict:
        path = corpus / d["file"]
        raw, images = load_document(d["id"][:64].ljust(64, "0"), path.read_bytes(), filename=path.name)
        return _ocr_record(d["category"], d["id"], router.ocr_document(raw, images))

    with ThreadPoolExecutor(max(1, workers)) as pool, gzip.open(out, "wt", encoding="utf-8") as f:
        for i, rec in enumerate(pool.map(read, docs), start=1):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            click.echo(f"[{i}/{len(docs)}] {rec['corpus_id']}", err=True)
    return len(docs)


@click.command("fields-ocr-cache")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False), default=str(DEFAULT_CORPUS), show_default=True)
@click.option("--workers", default=2, show_default=True, help="documents read at a time")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=str(DEFAULT_OCR_RESULTS), show_default=True)
def ocr_cache_command(corpus: str, workers: int, out_file: str) -> None:
    """OCR the scanned calibration documents through the router and store pages and words for
    `fields-calibrate` (run it after an OCR change, then refit)."""
    n = ocr_cache(Path(corpus), Path(out_file), workers)
    click.echo(f"wrote {n} documents to {out_file}")


# L2 penalties a group's fit may choose from (`fit_calibration`, chosen by leave-one-family-out log loss)
L2_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
MIN_GROUP_ROWS = 5  # fewer training fields of a group: no fitted parameters (needs_review)


def _log_loss(p: float, y: int) -> float:
    import math

    p = min(max(p, 1e-6), 1 - 1e-6)
    return -math.log(p if y else 1 - p)


def choose_l2(sub: list[dict], grid: tuple[float, ...] = L2_GRID) -> float:
    """The L2 penalty of one group's logistic regression: the one of ``grid`` with the lowest log loss
    when each family's fields are predicted by a fit on the other families (the rows given are training
    rows only: inside an out-of-fold evaluation this is nested cross-validation).  Ties go to the
    smaller penalty; a family whose complement has too few fields is predicted by the base rate."""
    from idp_assets.logic.field_rules.confidence import fit_logistic, predict

    base = sum(r["correct"] for r in sub) / len(sub)
    families = sorted({r["family"] for r in sub})
    best = None
    for l2 in grid:
        loss = 0.0
        for fam in families:
            test = [r for r in sub if r["family"] == fam]
            train = [r for r in sub if r["family"] != fam]
            if len(train) < MIN_GROUP_ROWS:
                loss += sum(_log_loss(base, r["correct"]) for r in test)
                continue
            p = fit_logistic([r["x"] for r in train], [r["correct"] for r in train], l2=l2)
            loss += sum(_log_loss(predict(p, r["x"]), r["correct"]) for r in test)
        if best is None or loss < best[0] - 1e-9:
            best = (loss, l2)
    return best[1]


def fit_calibration(rows: list[dict], l2: float | None = None, review_threshold: float = 0.9) -> dict:
    """Per-group logistic regression on all rows, plus in-sample and leave-one-family-out figures.

    ``l2=None`` (the default): each group's L2 penalty is chosen from ``L2_GRID`` by leave-one-family-out
    log loss on the training rows (:func:`choose_l2`), so the out-of-fold figures are nested: the
    held-out family takes no part in choosing its penalty.  A number: that penalty for every group."""
    from idp_assets.logic.field_rules.confidence import FEATURES, fit_logistic, predict, reliability

    groups = sorted({r["group"] for r in rows})

    def fit(train: list[dict]) -> dict:
        out = {}
        for g in groups:
            sub = [r for r in train if r["group"] == g]
            if len(sub) >= MIN_GROUP_ROWS:
                lam = choose_l2(sub) if l2 is None else l2
                out[g] = fit_logistic([r["x"] for r in sub], [r["correct"] for r in sub], l2=lam)
                out[g]["l2"] = lam
        return out

    def pred(params: dict, r: dict) -> float:
        p = params.get(r["group"])
        return predict(p, r["x"]) if p else sum(x["correct"] for x in rows) / len(rows)

    full = fit(rows)
    ins = [pred(full, r) for r in rows]
    oof = [0.0] * len(rows)
    families = sorted({r["family"] for r in rows})
    per_fold = {}
    for fam in families:
        idx = [i for i, r in enumerate(rows) if r["family"] == fam]
        params = fit([r for r in rows if r["family"] != fam])
        for i in idx:
            oof[i] = pred(params, rows[i])
        per_fold[fam] = {
            "in_sample": reliability([ins[i] for i in idx], [rows[i]["correct"] for i in idx]),
            "out_of_fold": reliability([oof[i] for i in idx], [rows[i]["correct"] for i in idx]),
        }
    y = [r["correct"] for r in rows]
    # what a user sees accepted without review: confidence >= threshold and no failed validation
    # (a failed check always means needs_review, whatever the fitted confidence)
    fail = FEATURES.index("check_fail")
    accepted = {}
    for kind, conf in (("in_sample", ins), ("out_of_fold", oof)):
        ok = [r["correct"] for r, c in zip(rows, conf) if c >= review_threshold and not r["x"][fail]]
        accepted[kind] = {"n": len(ok), "precision": round(sum(ok) / len(ok), 4) if ok else None}
    per_group = {g: {"in_sample": reliability([ins[i] for i, r in enumerate(rows) if r["group"] == g],
                                              [r["correct"] for r in rows if r["group"] == g]),
                     "out_of_fold": reliability([oof[i] for i, r in enumerate(rows) if r["group"] == g],
                                                [r["correct"] for r in rows if r["group"] == g])}
                 for g in groups}
    for v in list(per_fold.values()) + list(per_group.values()):
        for k in v:
            v[k].pop("table", None)
    return {
        "version": "1",
        "created_by": "idp bench fields-calibrate (python -m idp_assets.bench.fields calibrate)",
        "model": "logistic regression per field group (Newton; features in FEATURES order), L2 "
                 + ("per group from %s by leave-one-family-out log loss (nested in the out-of-fold figures)"
                    % list(L2_GRID) if l2 is None else "%.2f" % l2),
        "features": list(FEATURES),
        "review_threshold": review_threshold,
        "groups": full,
        "training": {"fields": len(rows), "documents": len({r["doc"] for r in rows}), "families": families},
        "report": {"in_sample": reliability(ins, y), "out_of_fold": reliability(oof, y), "per_fold": per_fold,
                   "per_group": per_group, "accepted_without_review": accepted},
    }


def format_reliability(report: dict) -> str:
    lines = []
    for kind in ("in_sample", "out_of_fold"):
        r = report[kind]
        lines.append(f"{kind}: n={r['n']} accuracy={r['accuracy']} ECE={r['ece']} "
                     f"precision@0.9={r['precision_at_0.9']} (n={r['n_at_0.9']})")
        lines.append(f"  {'bin':<9} {'n':>5} {'conf':>7} {'acc':>7}")
        for row in r.get("table", []):
            lines.append(f"  {row['bin']:<9} {row['n']:>5} {row['mean_confidence']:>7.3f} {row['accuracy']:>7.3f}")
    acc = report.get("accepted_without_review")
    if acc:
        lines.append("accepted without review (confidence >= threshold, no failed check): precision in-sample "
                     f"{acc['in_sample']['precision']} (n={acc['in_sample']['n']}), out-of-fold "
                     f"{acc['out_of_fold']['precision']} (n={acc['out_of_fold']['n']})")
    lines.append("per fold (family): n, ECE in-sample / out-of-fold, precision@0.9 in-sample / out-of-fold")
    for fam, v in report.get("per_fold", {}).items():
        a, b = v["in_sample"], v["out_of_fold"]
        lines.append(f"  {fam:<48} {a['n']:>4}  {a['ece']} / {b['ece']}  {a['precision_at_0.9']} / {b['precision_at_0.9']}")
    return "\n".join(lines)


@click.command("fields-calibrate")
@click.option("--corpus", type=click.Path(exists=True, file_okay=False), default=str(DEFAULT_CORPUS), show_default=True)
@click.option("--ocr-results", type=click.Path(dir_okay=False), default=str(DEFAULT_OCR_RESULTS), show_default=True,
              help="cached `idp process` records (JSON lines, .gz) with the OCR text of scanned documents")
@click.option("--l2", type=float, default=None,
              help="one L2 penalty for every group (default: each group's chosen from L2_GRID by "
                   "leave-one-family-out log loss, nested inside the out-of-fold evaluation)")
@click.option("--review-threshold", type=float, default=0.9, show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="write the parameters here (default: idp_assets/logic/data/field_confidence.json)")
def calibrate_fields(corpus: str, ocr_results: str, l2: float | None, review_threshold: float,
                     out_file: str | None) -> None:
    """Fit the field-confidence model on the development corpus (folds = source families) and print
    the reliability table, in-sample and out-of-fold."""
    from idp_assets.logic.field_rules.confidence import MODEL_PATH

    rows = calibration_rows(Path(corpus), Path(ocr_results) if ocr_results else None)
    model = fit_calibration(rows, l2=l2, review_threshold=review_threshold)
    target = Path(out_file) if out_file else MODEL_PATH
    target.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    click.echo(format_reliability(model["report"]))
    click.echo(f"wrote {target}")


@click.group()
def _main() -> None:
    """python -m idp_assets.bench.fields calibrate"""


_main.add_command(calibrate_fields, name="calibrate")
_main.add_command(bench_fields, name="bench")
_main.add_command(ocr_cache_command, name="ocr-cache")

if __name__ == "__main__":
    _main()
