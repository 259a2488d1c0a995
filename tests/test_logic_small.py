"""Unit tests for small pure functions: chunking, export naming, supplier scoring."""

import pytest

from idp_assets.logic.chunking import chunk_document, chunk_id
from idp_assets.logic.export import safe_stem
from idp_assets.logic.suppliers import Supplier, decide, find_identifiers, iban_valid, normalize_name
from idp_assets.models import OcrPage, OcrPages, Table

DOC = "a" * 64


def _page(n, text):
    return OcrPage(number=n, width=10, height=10, dpi=72, rotation=0, engine="text_layer", compute="cpu",
                   route_reason="test", confidence=0.9, text=text)


def test_chunk_ids_are_stable_and_tables_are_own_chunks():
    ocr = OcrPages(document_id=DOC, pages=[_page(1, "Intro para.\n\nSecond para."), _page(2, "line a\nline b")])
    tables = [Table(page=2, rows=[["a", "b"], ["1", "2"]], source="pdf")]
    c1 = chunk_document(ocr, tables)
    c2 = chunk_document(ocr, tables)
    assert [c.chunk_id for c in c1] == [c.chunk_id for c in c2]
    assert len({c.chunk_id for c in c1}) == len(c1)
    kinds = [c.kind for c in c1]
    assert kinds.count("table") == 1 and c1[-1].text == "a | b\n1 | 2"
    assert chunk_id(DOC, 1, "paragraph", 0) != chunk_id("b" * 64, 1, "paragraph", 0)


def test_long_text_is_split_under_limit():
    ocr = OcrPages(document_id=DOC, pages=[_page(1, " ".join(["word"] * 1000))])
    chunks = chunk_document(ocr, [], max_chars=200)
    assert len(chunks) > 10 and all(len(c.text) <= 200 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == ["word"] * 1000


@pytest.mark.parametrize(
    "name,expected",
    [("invoice.pdf", "invoice"), ("../../etc/passwd", "passwd"), ("a b\nc.png", "a_b_c"), (".hidden", "hidden"),
     ("x" * 300 + ".pdf", "x" * 120), ("Rechnung März.pdf", "Rechnung_März")],
)
def test_safe_stem(name, expected):
    assert safe_stem(name) == expected


def test_legal_forms_are_stripped():
    assert normalize_name("Muster Bürobedarf GmbH") == normalize_name("MUSTER BÜROBEDARF") == "muster bürobedarf"
    assert normalize_name("SYARIKAT PERNIAGAAN GIN KEE SDN. BHD.") == "syarikat perniagaan gin kee"


def test_identifiers_found_with_spacing_variants():
    ids = find_identifiers("USt-IdNr.: DE 123 456 789\nIBAN DE89 3704 0044 0532 0130 00")
    assert "DE123456789" in ids["vat_id"]
    assert ids["iban"] == {"DE89370400440532013000"}
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")


def test_decide_prefers_identifier_then_name_with_margin():
    a = Supplier("S1", "Muster Bürobedarf GmbH", vat_id="DE123456789", city="Berlin")
    b = Supplier("S2", "Muster Bürotechnik GmbH", city="Berlin")
    d = decide("Muster Bürobedarf GmbH", "", [(a, "vat_id")], [a, b])
    assert d.supplier is a and d.method == "vat_id"
    # an identifier whose supplier the page's name contradicts is never a silent match: the conflict is named
    d = decide("Irgendwas", "", [(a, "vat_id")], [a, b])
    assert d.supplier is None and any("belongs to S1" in e for e in d.evidence)
    d = decide("MUSTER BUEROBEDARF GMBH", "Berlin", [], [a, b])
    assert d.method in ("name", "new")
    d = decide("Muster Bürobedarf", "Sitz Berlin", [], [a, b])
    assert d.supplier is a and d.method == "name" and any("Berlin" in e for e in d.evidence)
    d = decide("Völlig Andere Firma KG", "", [], [a, b])
    assert d.supplier is None and d.method == "new"
