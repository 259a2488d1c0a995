"""Bounded work on hostile content: PDF page guard (child process with limits), form values, text bounds."""

from __future__ import annotations

import time

import pytest

from idp_assets.logic.chunking import chunk_document
from idp_assets.logic.fields import extract_fields
from idp_assets.logic.pages import DocumentError, load_document, page_image_loader
from idp_assets.logic.pdf_guard import IsolatedFailure, preflight, risk, run_isolated
from idp_assets.logic.textguard import MAX_LINE_CHARS, bounded_pages, csv_fast, html_text, wrap_long_lines
from idp_assets.models import OcrPage, OcrPages
from idp_assets.samples import born_digital_pdf
from tests.fixtures.hostile import acroform_invoice_pdf, deep_arrays_pdf, nested_forms_pdf, one_line_csv

DOC = "d" * 64


# ---------------------------------------------------------------- PDF pages pdfium must not draw in-process


def test_exponential_form_fanout_is_refused_before_drawing():
    data = nested_forms_pdf(24, 4)  # 4^24 draws from 7 KB
    assert len(data) < 20_000
    verdict, why = risk(preflight(data).pages[0])
    assert verdict == "hopeless" and "nested forms" in why
    t0 = time.monotonic()
    with pytest.raises(DocumentError) as err:
        load_document(DOC, data)
    assert err.value.code == "page_too_complex" and "page 1" in err.value.message
    assert time.monotonic() - t0 < 30


def test_risky_page_is_read_in_a_child_process():
    data = nested_forms_pdf(12, 3)  # 3^12 draws: a few seconds of pdfium
    assert risk(preflight(data).pages[0])[0] == "risky"
    raw, images = load_document(DOC, data)
    assert raw.pages[0].number == 1 and images[0] is not None and images[0].width > 1000  # rendered for OCR


def test_child_process_time_limit(monkeypatch):
    monkeypatch.setenv("IDP_PDF_PAGE_TIMEOUT_S", "1")
    data = nested_forms_pdf(14, 3)  # ~4.8 million draws: far more than a second
    assert risk(preflight(data).pages[0])[0] == "risky"
    t0 = time.monotonic()
    with pytest.raises(DocumentError) as err:
        load_document(DOC, data)
    assert err.value.code == "page_too_complex" and "not read within 1 s" in err.value.message
    assert time.monotonic() - t0 < 60


def test_child_process_memory_limit():
    job = {"dpi": 300, "max_pixels": 40_000_000, "render": True, "form_values": {}}
    with pytest.raises(IsolatedFailure):
        run_isolated(born_digital_pdf(), [0], job, timeout_s=30, memory_mb=40)  # cannot even import numpy
    ok = run_isolated(born_digital_pdf(), [0], job, timeout_s=30, memory_mb=3072)
    assert ok[0]["png"]


def test_on_demand_rendering_of_a_risky_page_is_isolated_too():
    data = nested_forms_pdf(12, 3)
    raw, _ = load_document(DOC, data)
    image = page_image_loader(data, raw, dpi=50)(1)
    assert image is not None and image.width < 1000
    hopeless = nested_forms_pdf(24, 4)
    assert page_image_loader(hopeless, raw, dpi=50)(1) is None  # never drawn in-process


def test_deeply_nested_pdf_objects_do_not_crash():
    try:
        raw, _ = load_document(DOC, deep_arrays_pdf())
        assert raw.pages
    except DocumentError as exc:
        assert exc.code in ("corrupt_pdf", "page_too_complex")


def test_ordinary_pdf_is_not_isolated():
    pre = preflight(born_digital_pdf())
    assert [risk(p)[0] for p in pre.pages] == ["safe"]


# ---------------------------------------------------------------- AcroForm values are page content


def test_form_field_values_become_page_text_and_fields():
    raw, _ = load_document(DOC, acroform_invoice_pdf())
    text = raw.pages[0].text_layer
    assert "Rechnungsnummer: RE-2024-0815" in text and "Gesamtbetrag: 1.234,56 EUR" in text
    found = extract_fields([text], [[]], None, [None])
    assert found.fields["invoice_number"].value == "RE-2024-0815"
    assert found.fields["total"].value == "1234.56"


# ---------------------------------------------------------------- text bounds: linear work per input byte


def test_long_lines_are_wrapped_without_losing_text():
    text = one_line_csv(400_000).decode()
    t0 = time.monotonic()
    wrapped = wrap_long_lines(text)
    assert time.monotonic() - t0 < 5
    assert max(len(ln) for ln in wrapped.split("\n")) <= MAX_LINE_CHARS
    assert wrapped.replace("\n", "").replace(" ", "") == text.replace(" ", "")
    assert wrap_long_lines("short\nlines") == "short\nlines"


def test_big_text_formats_skip_docling_and_stay_linear():
    t0 = time.monotonic()
    raw, _ = load_document(DOC, one_line_csv(4_000_000), filename="one-line.csv")
    assert time.monotonic() - t0 < 60  # docling needed minutes for this; generous bound on 2 shared cores
    page = raw.pages[0]
    assert max(len(ln) for ln in page.text_layer.split("\n")) <= MAX_LINE_CHARS
    assert raw.office_tables == []  # one row of 300,000 columns is no table
    text, tables = csv_fast("a;b;c\n1;2;3\n4;5;6\n")
    assert tables == [[["a", "b", "c"], ["1", "2", "3"], ["4", "5", "6"]]] and text.splitlines()[0] == "a | b | c"
    assert html_text("<html><head><style>x{}</style></head><body><h1>Rechnung</h1><table><tr><td>Total</td>"
                     "<td>12,50</td></tr></table><script>alert(1)</script></body></html>") == "Rechnung\n| Total | 12,50"


def test_field_rules_see_bounded_text():
    pages = ["a" * 900_000, "b" * 900_000, "c" * 900_000]
    out = bounded_pages(pages, 1_000_000)
    assert sum(map(len, out)) <= 1_000_000 and out[0].startswith("a") and out[2].endswith("c")  # first and last kept
    assert bounded_pages(["x", "y"], 10) == ["x", "y"]
    text = ("Rechnungsnummer: " * 100_000).strip()
    t0 = time.monotonic()
    extract_fields([wrap_long_lines(text)], [[]], None, [None])
    assert time.monotonic() - t0 < 120


def test_chunks_are_capped(monkeypatch):
    monkeypatch.setenv("IDP_MAX_CHUNKS", "50")
    text = wrap_long_lines(one_line_csv(1_000_000).decode())
    ocr = OcrPages(document_id=DOC, pages=[OcrPage(number=1, width=0, height=0, dpi=0, rotation=0, engine="text_layer",
                                                  compute="cpu", route_reason="", confidence=1.0, text=text)])
    chunks = chunk_document(ocr, [])
    assert 0 < len(chunks) <= 50
