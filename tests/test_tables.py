"""PDF table extraction (idp_assets.logic.tables) measured with the corpus scorer."""

from __future__ import annotations

import importlib.util
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from idp_assets.logic.einvoice import extract_einvoice
from hypothesis import given, settings
from hypothesis import strategies as st

from idp_assets.logic.numbers import format_amount
from idp_assets.logic.tables import (
    clean_rows,
    column_names,
    detect_header_rows,
    document_tables,
    extract_pdf_tables,
    map_columns,
    normalize_cell,
    normalize_table,
    pdf_layout_text,
    structure_lattice,
)
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
    # measured when written: 0.972 (us-016 keeps 0.77: its ground truth drops two spaces,
    # 'eachmark' / 'asYes', that the PDF has as explicit space characters)
    assert mean >= 0.95, f1s
    # text-highlight boxes are not rules; row groups split by whitespace; spanning header split
    for doc in ("table-icdar2013-us-032", "table-icdar2013-eu-010", "table-icdar2013-us-004"):
        assert f1s[doc] == pytest.approx(1.0), (doc, f1s[doc])


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


# --------------------------------------------------------------------------- lattice refinement


def _w(text, x0, top, x1=None, h=8.0):
    return {"text": text, "x0": x0, "x1": x1 if x1 is not None else x0 + 6 * len(text), "top": top, "bottom": top + h}


def test_structure_lattice_splits_ruled_row_groups_by_whitespace():
    # two ruled rows; the second holds three text rows separated by blank bands
    cells = [(0, 0, 100, 20), (100, 0, 300, 20), (0, 20, 100, 120), (100, 20, 300, 120)]
    words = [_w("Source", 5, 5), _w("Definition", 105, 5),
             _w("Stationary:", 5, 25),
             _w("Major", 5, 50), _w("Ten", 105, 50), _w("tons", 130, 50), _w("more", 105, 61),
             _w("Area", 5, 90), _w("Less", 105, 90)]
    rows = structure_lattice(cells, words)
    assert rows == [["Source", "Definition"], ["Stationary:", ""], ["Major", "Ten tons more"], ["Area", "Less"]]


def test_structure_lattice_splits_spanning_header_into_its_columns():
    cells = [(0, 0, 100, 40), (100, 0, 400, 20),
             (100, 20, 200, 40), (200, 20, 300, 40), (300, 20, 400, 40),
             (0, 40, 100, 60), (100, 40, 200, 60), (200, 40, 300, 60), (300, 40, 400, 60)]
    words = [_w("Loan", 5, 5), _w("2009", 120, 5), _w("2010", 220, 5), _w("2011", 320, 5),
             _w("$", 130, 25), _w("$", 230, 25), _w("$", 330, 25),
             _w("Home", 5, 45), _w("1", 150, 45), _w("2", 250, 45), _w("3", 350, 45)]
    rows = structure_lattice(cells, words)
    assert rows == [["Loan", "2009", "2010", "2011"], ["", "$", "$", "$"], ["Home", "1", "2", "3"]]
    # one centred heading over several columns stays one cell at its first column
    cells2 = [(0, 0, 300, 20), (0, 20, 100, 40), (100, 20, 200, 40), (200, 20, 300, 40)]
    words2 = [_w("Annual", 110, 5), _w("figures", 160, 5), _w("a", 5, 25), _w("b", 105, 25), _w("c", 205, 25)]
    assert structure_lattice(cells2, words2) == [["Annual figures", "", ""], ["a", "b", "c"]]
    assert structure_lattice([], words) == [] and structure_lattice(cells, []) == []


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "kind", "value", "extra"),
    [
        ("1.234,56", "number", "1234.56", {}),
        ("1,234.56", "number", "1234.56", {}),
        ("-12,00", "number", "-12.00", {}),
        ("12,00-", "number", "-12.00", {}),
        ("26.10.2022", "date", "2022-10-26", {}),
        ("2022-10-26", "date", "2022-10-26", {}),
        ("26 Oct 2022", "date", "2022-10-26", {}),
        ("19 %", "percent", "19", {}),
        ("7,5%", "percent", "7.5", {}),
        ("12,50 €", "amount", "12.50", {"currency": "EUR"}),
        ("USD 1,000.00", "amount", "1000.00", {"currency": "USD"}),
        ("3 Stk", "quantity", "3", {"unit": "H87"}),
        ("1.00 kg", "quantity", "1.00", {"unit": "KGM"}),
        ("2,5 Std.", "quantity", "2.5", {"unit": "HUR"}),
        ("Office Chair", "text", None, {}),
        ("", "text", None, {}),
    ],
)
def test_normalize_cell(text, kind, value, extra):
    got = normalize_cell(text)
    assert got["kind"] == kind and got["value"] == value, got
    for k, v in extra.items():
        assert got[k] == v


_amounts = st.decimals(min_value=Decimal("-9999999.99"), max_value=Decimal("9999999.99"), places=2,
                       allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(_amounts, st.sampled_from(["de", "en"]), st.sampled_from(["{}", "{} EUR", "€ {}", "{} €"]))
def test_property_cells_keep_text_and_type_numbers_in_both_locales(value, style, template):
    text = template.format(format_amount(value, style=style))
    got = normalize_cell(text)
    assert got["kind"] == ("number" if template == "{}" else "amount")
    assert Decimal(got["value"]) == value
    t = normalize_table(Table(page=1, rows=[["Betrag"], [text]], source="pdf_ruling"))
    assert t.rows == [["Betrag"], [text]]  # the printed text is kept as is
    assert [c.text for c in t.cells] == ["Betrag", text]


@settings(max_examples=100, deadline=None)
@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2035, 12, 31)))
def test_property_date_cells(d):
    for text in (f"{d.day:02d}.{d.month:02d}.{d.year}", d.isoformat(),
                 f"{d.day} {['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.month - 1]} {d.year}"):
        got = normalize_cell(text)
        assert got["kind"] == "date" and got["value"] == d.isoformat(), text


def test_header_detection_and_column_names():
    rows = [["", "2009", "", "2010", ""], ["Loan", "$", "%", "$", "%"], ["Home", "4,151", "25.0", "4,090", "27.5"]]
    assert detect_header_rows(rows) == 2
    assert column_names(rows, 2) == ["Loan", "2009 $", "2009 %", "2010 $", "2010 %"]
    assert detect_header_rows([["1", "2"], ["3", "4"]]) == 0  # data from the first row
    assert detect_header_rows([["a", "b"], ["c", "d"]]) == 0  # never typed: no header claimed


def test_line_items_german_table_with_confidences():
    t = normalize_table(Table(page=1, source="pdf_ruling", rows=[
        ["Pos", "Menge", "Bezeichnung", "Einzelpreis", "MwSt", "Gesamt"],
        ["1", "2 Stk", "Widget", "10,00", "19 %", "20,00"],
        ["2", "1", "Gadget", "5,00", "7 %", "6,00"],
        ["", "", "Zwischensumme", "", "", ""],
    ]))
    assert t.header_rows == 1 and t.columns[2] == "Bezeichnung"
    assert [li.row for li in t.line_items] == [1, 2]  # the label-only row is not an item
    a, b = t.line_items
    assert (a.description.value, a.quantity.value, a.unit.value, a.unit_price.value, a.line_total.value,
            a.tax_rate.value) == ("Widget", "2", "H87", "10.00", "20.00", "19")
    assert a.quantity.text == "2 Stk" and a.unit_price.text == "10,00"
    # 1 x 5,00 != 6,00: the arithmetic disagreement lowers the amounts' confidence
    assert b.line_total.confidence < a.line_total.confidence
    confs = {v.confidence for li in t.line_items for v in (li.description, li.quantity, li.unit_price, li.line_total)}
    assert len(confs) > 1 and all(0 < c <= 1 for c in confs)


def test_map_columns_english_french():
    assert map_columns(["Description", "Qty", "Unit Price", "Amount"]) == {
        "description": (0, 0.85), "quantity": (1, 0.9), "unit_price": (2, 0.95), "line_total": (3, 0.9)}
    roles = map_columns(["Désignation", "Quantité", "Prix unitaire", "TVA", "Montant"])
    assert {r: j for r, (j, _) in roles.items()} == {"description": 0, "quantity": 1, "unit_price": 2,
                                                     "tax_rate": 3, "line_total": 4}


def test_einvoice_table_line_items_match_xml(corpus):
    for d in _docs(corpus, "einvoices"):
        einv = extract_einvoice((corpus / d["file"]).read_bytes())
        tables = [normalize_table(t) for t in document_tables(None, None, einv)]
        if not einv.get("line_items"):
            assert tables == []
            continue
        t = tables[0]
        assert t.header_rows == 1 and t.rows == [[" ".join(c.split()) for c in r] for r in d["tables"][0]]
        want = [li for li in einv["line_items"] if li["name"] and (li["line_total"] or li["net_unit_price"])]
        assert [li.description.value for li in t.line_items] == [" ".join(li["name"].split()) for li in want]
        for li, x in zip(t.line_items, want):
            if x["line_total"]:
                assert Decimal(li.line_total.value) == Decimal(x["line_total"])
            if x["quantity"]:
                assert Decimal(li.quantity.value) == Decimal(x["quantity"]) and li.unit.value == x["unit"]


def test_pdf_layout_text_puts_label_and_value_on_one_line(corpus):
    pdf = (corpus / "invoices_pdf" / "invoice-i2d-qualityhosting.pdf").read_bytes()
    pages = pdf_layout_text(pdf)
    assert len(pages) == 2 and any("Rechnungsnr. 30064443" in ln for ln in pages[0].splitlines())
    assert pdf_layout_text(pdf, [2])[0] == ""
    assert pdf_layout_text(b"not a pdf") == []


def test_no_cell_boundary_inside_a_word_of_the_text_layer(corpus):
    """Every token of every table cell found on a born-digital corpus page is a whole word of that
    page's text layer: column edges found by alignment or ruling never cut a word in two."""
    import io

    import pdfplumber

    checked = 0
    for category in ("tables", "invoices_pdf"):
        for d in _docs(corpus, category):
            data = (corpus / d["file"]).read_bytes()
            tables = extract_pdf_tables(data, None)
            with pdfplumber.open(io.BytesIO(data)) as pdf:
                words = {t.page: {w["text"] for w in pdf.pages[t.page - 1].extract_words(
                    keep_blank_chars=False, use_text_flow=False)} for t in tables}
            for t in tables:
                for row in t.rows:
                    for cell in row:
                        for tok in cell.split():
                            assert tok in words[t.page], (d["id"], t.page, cell, tok)
                            checked += 1
    assert checked > 500
