"""Layout-aware chunking and entity extraction (pure functions)."""

from idp_assets.logic.chunking import chunk_document, embedding_input, is_heading, sections
from idp_assets.logic.entities import (
    date_number,
    doc_type,
    document_properties,
    extract_entities,
    normalize_value,
    product_names,
)
from idp_assets.models import ExtractedFields, FieldValue, OcrPage, OcrPages, Table

DOC = "d" * 64


def _page(n, text):
    return OcrPage(number=n, width=10, height=10, dpi=72, rotation=0, engine="text_layer", compute="cpu",
                   route_reason="test", confidence=0.9, text=text)


def _fields(**kw):
    return ExtractedFields(document_id=DOC, fields={k: FieldValue(value=v, confidence=0.9, source="rules:label")
                                                    for k, v in kw.items()})


def test_headings_start_sections_and_text_is_kept_once():
    text = "ACME GmbH\nMain street 1\n\nINVOICE\n\nItem A 10.00\nItem B 5.00\n\nPayment terms:\n\nPay within 30 days."
    secs = sections(text, 800)
    assert [(h, o) for h, o, _ in secs] == [(None, False), ("INVOICE", True), ("Payment terms", True)]
    assert secs[1][2] == "INVOICE\nItem A 10.00\nItem B 5.00"
    chunks = chunk_document(OcrPages(document_id=DOC, pages=[_page(1, text)]), [])
    assert [c.kind for c in chunks] == ["paragraph", "heading", "heading"]
    assert [c.heading for c in chunks] == [None, "INVOICE", "Payment terms"]
    assert "\n".join(c.text for c in chunks).split() == text.split()


def test_ocr_lines_without_blank_lines_are_not_headings():
    # receipts: every line short and upper case; only markdown headings would count
    text = "SANYU STATIONERY\nTOTAL 9.00\nCASH 10.00\nTHANK YOU"
    chunks = chunk_document(OcrPages(document_id=DOC, pages=[_page(1, text)]), [])
    assert len(chunks) == 1 and chunks[0].kind == "paragraph" and chunks[0].heading is None
    assert is_heading("TERMS AND CONDITIONS") and is_heading("# Title") and not is_heading("12345 67890 12")
    assert not is_heading("A normal sentence that goes on and on with many words in it")


def test_heading_is_embedded_with_later_chunks():
    long = "\n\n".join(["# Section"] + [f"Paragraph {i} " + "word " * 30 for i in range(6)])
    chunks = chunk_document(OcrPages(document_id=DOC, pages=[_page(1, long)]), [], max_chars=300)
    assert len(chunks) > 2 and all(c.heading == "Section" for c in chunks)
    later = chunks[-1]
    assert later.kind == "paragraph" and not later.text.startswith("# Section")
    assert embedding_input(later, "invoice from ACME").split("\n")[:2] == ["invoice from ACME", "Section"]
    assert embedding_input(chunks[0]) == chunks[0].text  # the heading is already in its text


def test_long_tables_split_by_rows_with_header_repeated():
    rows = [["description", "amount"]] + [[f"item number {i} with a long description", f"{i}.00"] for i in range(60)]
    chunks = chunk_document(OcrPages(document_id=DOC, pages=[]), [Table(page=2, rows=rows, source="pdf")],
                            max_chars=400)
    assert len(chunks) > 3 and all(c.kind == "table" and c.page == 2 for c in chunks)
    assert all(c.text.startswith("description | amount\n") and len(c.text) <= 400 for c in chunks)
    body = [line for c in chunks for line in c.text.splitlines()[1:]]
    assert body == [" | ".join(r) for r in rows[1:]]
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_entities_from_fields_text_and_tables():
    text = ("Lieferant GmbH\nLieferantenstraße 20\n80333 München\n\nRechnung 471102\n\n"
            "Ansprechpartner: Hans Muster\n\nIBAN DE08 7009 0100 1234 5678 90\nUSt-IdNr DE123456789\n"
            "GST ID No: 000504664064\nTotal 235,62 EUR")
    ocr = OcrPages(document_id=DOC, pages=[_page(1, text)])
    table = Table(page=1, rows=[["Bezeichnung", "Menge", "Preis"], ["Trennblätter A4", "20", "9.90"],
                                ["Joghurt Banane", "50", "5.50"]], source="pdf")
    chunks = chunk_document(ocr, [table])
    fields = _fields(invoice_number="471102", total="235.62", date="2013-03-05", supplier_name="Lieferant GmbH",
                     vat_id="DE123456789", iban="DE08700901001234567890")
    ents = extract_entities(fields, chunks, [table], page_texts={1: text})
    keys = {e.key for e in ents}
    assert {"InvoiceNumber:471102", "IBAN:DE08700901001234567890", "VATId:DE123456789", "VATId:000504664064",
            "Amount:235.62", "Date:2013-03-05", "Organization:lieferant", "Person:hans muster",
            "Product:trennblätter a4", "Product:joghurt banane"} <= keys
    assert any(e.kind == "Address" and "80333 münchen" in e.norm for e in ents)
    by_key = {e.key: e for e in ents}
    # mentions point at the chunks that show the value (spacing / decimal comma ignored)
    iban_chunks = by_key["IBAN:DE08700901001234567890"].chunk_ids
    assert iban_chunks and all("DE08 7009" in c.text for c in chunks if c.chunk_id in iban_chunks)
    assert by_key["Amount:235.62"].chunk_ids and by_key["Product:joghurt banane"].chunk_ids == [chunks[-1].chunk_id]
    # a value only in structured data (not in any text) is attached to the first chunk
    fields2 = _fields(invoice_number="XML-ONLY-9")
    only = [e for e in extract_entities(fields2, chunks, []) if e.kind == "InvoiceNumber"]
    assert only[0].chunk_ids == [chunks[0].chunk_id]
    assert extract_entities(fields, [], [table]) == []  # no chunks: nothing to mention them
    assert [e.key for e in ents] == [e.key for e in extract_entities(fields, chunks, [table], page_texts={1: text})]


def test_invalid_iban_in_text_is_ignored():
    ocr = OcrPages(document_id=DOC, pages=[_page(1, "IBAN DE00 1234 5678 9012 3456 78")])
    ents = extract_entities(None, chunk_document(ocr, []), [])
    assert not [e for e in ents if e.kind == "IBAN"]


def test_normalisation_and_document_properties():
    assert normalize_value("IBAN", "de08 7009 0100 1234 5678 90") == "DE08700901001234567890"
    assert normalize_value("InvoiceNumber", "RE-2017/505") == "RE2017505"
    assert normalize_value("Amount", "1,005.50") == "1005.50"
    assert normalize_value("Organization", "Kraxi GmbH") == "kraxi"
    assert date_number("2022-10-26") == 20221026 and date_number(None) == 0 and date_number("26.10.2022") == 0
    f = _fields(invoice_number="RE-1", supplier_name="ACME GmbH", date="2024-01-02", total="5.00")
    p = document_properties(f, [], None)
    assert p["dup_key"] == "name:acme|RE1" and p["doc_type"] == "invoice"
    assert document_properties(f, [], "sup-9")["dup_key"] == "id:sup-9|RE1"
    assert document_properties(_fields(total="5.00"), [], None)["dup_key"] is None
    assert doc_type(_fields(total="5.00"), []) == "receipt" and doc_type(None, []) == "document"
    assert product_names(Table(page=1, rows=[["1", "Widget large", "3.00"]], source="x")) == ["Widget large"]


def test_products_from_mapped_line_items():
    import pytest

    models = pytest.importorskip("idp_assets.models")
    if not hasattr(models, "LineItemValue"):
        pytest.skip("tables stage without mapped line items")
    li = models.LineItem(row=1, description=models.LineItemValue(value="Joghurt Banane", text="Joghurt Banane",
                                                                 confidence=0.9))
    t = Table(page=1, rows=[["Pos", "Text", "EUR"], ["1", "Joghurt Banane", "5.50"]], source="pdf", line_items=[li])
    assert product_names(t) == ["Joghurt Banane"]
