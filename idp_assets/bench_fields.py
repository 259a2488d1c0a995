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
from idp_assets.logic.tables import document_tables, normalize_table, pdf_layout_text

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


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
def bench_fields(corpus: str, results: str | None, category: tuple[str, ...], repeat: int, out_file: str | None) -> None:
    """Tables/s and fields/s per page type (einvoice, born_digital, scanned) as JSON."""
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
