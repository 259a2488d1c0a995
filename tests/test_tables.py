"""PDF table extraction (idp_assets.logic.tables) measured with the corpus scorer."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from idp_assets.logic.einvoice import extract_einvoice
from idp_assets.logic.tables import clean_rows, document_tables, extract_pdf_tables
from idp_assets.models import Table


def _score_module(corpus: Path):
    spec = importlib.util.spec_from_file_location("idp_corpus_score", corpus.parent / "tools" / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _docs(corpus: Path, category: str) -> list[dict]:
    with open(corpus / "manifest.jsonl", encoding="utf-8") as fh:
        return [d for d in map(json.loads, fh) if d["category"] == category]


def test_clean_rows_collapses_whitespace_and_drops_empty_lines():
    rows = clean_rows([[" a \n b", None, ""], ["", None, ""], ["1", None, "2  3"]])
    assert rows == [["a b", ""], ["1", "2 3"]]
    assert clean_rows([[None, ""], ["", None]]) == []


def test_icdar_tables_f1(corpus):
    score = _score_module(corpus)
    f1s = {}
    for d in _docs(corpus, "tables"):
        tables = extract_pdf_tables((corpus / d["file"]).read_bytes(), None)
        for t in tables:
            assert isinstance(t, Table) and t.source in ("pdf_ruling", "pdf_text_alignment")
            assert len(t.rows) >= 2 and max(len(r) for r in t.rows) >= 2  # no degenerate tables
            assert all(isinstance(c, str) and c == " ".join(c.split()) for r in t.rows for c in r)
        f1s[d["id"]] = score.tables_prf([t.rows for t in tables], d["tables"])[2]
    mean = sum(f1s.values()) / len(f1s)
    print("tables mean F1", round(mean, 3), {k: round(v, 3) for k, v in f1s.items()})
    assert mean >= 0.85, f1s


def test_only_requested_pages(corpus):
    pdf = (corpus / "tables" / "table-icdar2013-us-004.pdf").read_bytes()
    tables = extract_pdf_tables(pdf, [2])
    assert [t.page for t in tables] == [2]
    assert tables[0].source == "pdf_ruling" and tables[0].bbox is not None
    # page 1 is prose only: text alignment must not invent a table there
    assert extract_pdf_tables(pdf, [1]) == []
    assert extract_pdf_tables(pdf, [7]) == []  # out of range is ignored


def test_text_alignment_fallback_on_unruled_invoice(corpus):
    pdf = (corpus / "invoices_pdf" / "invoice-i2d-saeco.pdf").read_bytes()
    tables = extract_pdf_tables(pdf, [1])
    assert tables and all(t.source == "pdf_text_alignment" for t in tables)
    cells = [c for t in tables for r in t.rows for c in r]
    assert "E103184" in cells and "49,99" in cells
    assert extract_pdf_tables(pdf, [1], text_fallback=False) == []


def test_broken_pdf_gives_no_tables():
    assert extract_pdf_tables(b"%PDF-1.4 not really", None) == []
    assert extract_pdf_tables(b"", [1]) == []


def test_einvoice_line_items_first(corpus):
    score = _score_module(corpus)
    f1s = []
    for d in _docs(corpus, "einvoices"):
        data = (corpus / d["file"]).read_bytes()
        einv = extract_einvoice(data)
        tables = document_tables(data, None, einv)
        assert tables[0].source == "einvoice_xml"
        f1s.append(score.tables_prf([t.rows for t in tables], d["tables"])[2])
    assert sum(f1s) / len(f1s) == pytest.approx(1.0)
    with_print = document_tables(data, None, einv, pdf_tables_for_einvoice=True)
    assert with_print[0].source == "einvoice_xml"
