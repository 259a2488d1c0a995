"""Tables on scanned pages: OCR words as a PDF text layer, ruling lines from the image, then the
born-digital table readers (idp_assets.logic.ocr_pdf)."""

from __future__ import annotations

import ast
import collections
import gzip
import io
import json
from pathlib import Path

import pdfplumber
import pytest
from PIL import Image, ImageDraw

from idp_assets.logic.ocr_pdf import ScanPage, ruling_lines, scanned_page_tables, searchable_pdf
from idp_assets.logic.tables import extract_pdf_tables, normalize_table
from idp_assets.models import OcrPage, OcrPages, OcrWord

OCR_CACHE = Path(__file__).resolve().parent / "data" / "calibration_ocr.jsonl.gz"


def test_words_land_whole_in_their_boxes():
    # the second word nearly touches the first (2 px): still two words
    words = [("Größe", (300, 300, 600, 350)), ("€12,50", (602, 300, 850, 350)), ("Straße(1)", (300, 500, 700, 560))]
    data = searchable_pdf([ScanPage(width=2480, height=3508, dpi=300, words=words)])
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        page = pdf.pages[0]
        assert (round(page.width), round(page.height)) == (595, 842)  # A4 at 300 dpi
        got = page.extract_words()
    assert [w["text"] for w in got] == ["Größe", "€12,50", "Straße(1)"]
    s = 72 / 300
    for w, (_t, (x0, y0, x1, y1)) in zip(got, words):
        # scaled to the box width (the word's trailing space takes the box's last few points)
        assert abs(w["x0"] - x0 * s) < 0.5 and (x1 - 0.15 * (x1 - x0)) * s < w["x1"] <= x1 * s + 0.01
        assert y0 * s - 3 < w["top"] < w["bottom"] < y1 * s + 3


def _grid_image(w=1200, h=800, xs=(100, 500, 800, 1100), ys=(100, 250, 400, 550), thick_block=True):
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    for x in xs:
        d.line([(x, ys[0]), (x, ys[-1])], fill=0, width=2)
    for y in ys:
        d.line([(xs[0], y), (xs[-1], y)], fill=0, width=2)
    if thick_block:
        d.rectangle([100, 650, 1100, 700], fill=0)  # a filled bar: not a rule
    d.text((150, 150), "Menge", fill=0)
    return im


def test_ruling_lines_finds_rules_not_bars_or_text():
    lines = ruling_lines(_grid_image())
    horizontal = sorted(round(y0) for x0, y0, x1, y1 in lines if y0 == y1)
    vertical = sorted(round(x0) for x0, y0, x1, y1 in lines if x0 == x1)
    assert [abs(a - b) <= 2 for a, b in zip(horizontal, (100, 250, 400, 550))] == [True] * 4
    assert len(horizontal) == 4 and len(vertical) == 4
    assert [abs(a - b) <= 2 for a, b in zip(vertical, (100, 500, 800, 1100))] == [True] * 4
    assert ruling_lines(Image.new("L", (600, 400), 255)) == []


CELLS = [["Artikel", "Menge", "Betrag"], ["Schrauben M4", "10", "12,50"], ["Dübel", "20", "8,00"]]


def _scan(words_grid, xs=(100, 500, 800, 1100), ys=(100, 250, 400, 550)) -> OcrPages:
    words = []
    for r, row in enumerate(words_grid):
        top = ys[r] + 50
        for c, text in enumerate(row):
            x = xs[c] + 20
            for tok in text.split():
                words.append(OcrWord(text=tok, confidence=0.95, bbox=(x, top, x + 25 * len(tok), top + 40)))
                x += 25 * len(tok) + 20
    page = OcrPage(number=1, width=1200, height=800, dpi=300, rotation=0, engine="tesseract", compute="cpu",
                   route_reason="test", confidence=0.95, text="", words=words)
    return OcrPages(document_id="0" * 64, pages=[page])


def test_ruled_table_on_a_scan_is_read_by_the_lattice_reader():
    tables = scanned_page_tables(_scan(CELLS), page_image=lambda n: _grid_image())
    assert [t.source for t in tables] == ["ocr_ruling"]
    assert tables[0].rows == CELLS and tables[0].page == 1


def test_without_the_image_the_words_alone_give_the_table_by_alignment():
    grid = [["Artikel", "Menge", "Betrag"], ["Schrauben", "10", "12,50"], ["Dübel", "20", "8,00"],
            ["Muttern", "5", "1,25"]]
    tables = scanned_page_tables(_scan(grid, ys=(100, 200, 300, 400, 500)), page_image=None)
    assert [t.source for t in tables] == ["ocr_text_alignment"]
    assert tables[0].rows[-3:] == grid[-3:]
    # a page read from its text layer is no scan
    born = _scan(grid).model_copy(deep=True)
    born.pages[0].engine = "text_layer"
    assert scanned_page_tables(born, page_image=None) == []


def _cached_scans():
    with gzip.open(OCR_CACHE, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["corpus_id"].startswith("invoices_scan:"):
                yield rec["corpus_id"].split(":", 1)[1], rec["pages"]


def _line_totals(tables):
    return collections.Counter(str(li.line_total.value) for t in tables for li in t.line_items
                               if li.line_total is not None and li.line_total.value is not None)


@pytest.mark.slow
def test_scanned_invoices_get_the_line_items_of_their_print(corpus):
    """The 32 print invoices as 200 dpi scans, read by the router (cached OCR words): every line total the
    born-digital print gives is found on the scan too, none more; and no scan table cell cuts an OCR word."""
    import pypdfium2 as pdfium

    printed = scanned = matched = docs_with_items = 0
    cells = 0
    for cid, pages in _cached_scans():
        pdf = pdfium.PdfDocument(str(corpus / "invoices_print" / "scan" / f"{cid}.pdf"))
        ocr_pages = []
        for i, p in enumerate(pages, start=1):
            words = p["words"] if isinstance(p["words"], list) else ast.literal_eval(p["words"])
            w, h = pdf[i - 1].render(scale=300 / 72, grayscale=True).to_pil().size  # the image the router read
            ocr_pages.append(OcrPage(number=i, width=w, height=h, dpi=300, rotation=0, engine=p["engine"], compute="cpu",
                                     route_reason="cache", confidence=None if p["confidence"] is None else float(p["confidence"]), text=p["text"],
                                     words=[OcrWord(text=t, confidence=c, bbox=(a, b, x, y)) for t, c, a, b, x, y in words]))

        def image(n, pdf=pdf):
            return pdf[n - 1].render(scale=300 / 72, grayscale=True).to_pil().convert("L")

        tables = [normalize_table(t) for t in scanned_page_tables(OcrPages(document_id="0" * 64, pages=ocr_pages), image)]
        vocab = {w.text for p in ocr_pages for w in p.words}
        for t in tables:
            assert t.source in ("ocr_ruling", "ocr_text_alignment")
            for row in t.rows:
                for cell in row:
                    for tok in cell.split():
                        assert tok in vocab, (cid, cell, tok)
                        cells += 1
        want = _line_totals(normalize_table(t) for t in
                            extract_pdf_tables((corpus / "invoices_print" / "print" / f"{cid}.pdf").read_bytes()))
        got = _line_totals(tables)
        printed += sum(want.values())
        scanned += sum(got.values())
        matched += sum((want & got).values())
        docs_with_items += bool(got)
    assert cells > 1000
    assert docs_with_items >= 3 and printed >= 9
    assert matched == printed == scanned, (matched, printed, scanned)
