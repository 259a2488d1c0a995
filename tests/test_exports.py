"""CSV and UN/CEFACT CII exports (idp_assets.logic.csv_export / cii_export / export)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from lxml import etree

from idp_assets.logic.cii_export import build_cii, cii_bytes, line_items_of_record, validate_cii, xsd_path
from idp_assets.logic.csv_export import FIELD_COLUMNS, LINE_COLUMNS, fields_csv, line_items_csv
from idp_assets.logic.einvoice import extract_einvoice, parse_cii
from idp_assets.logic.export import export_files
from idp_assets.logic.fields import extract_fields
from idp_assets.logic.tables import document_tables, normalize_table
from idp_assets.models import Table

HEADER_KEYS = ("invoice_number", "issue_date", "supplier_name", "seller_vat_id", "buyer_name", "currency",
               "gross_total", "net_total", "tax_total", "iban", "due_date")


def _record(einv: dict | None, text: str = "", tables: list[Table] | None = None) -> dict:
    fx = extract_fields([text], einvoice=einv)
    tabs = tables if tables is not None else [normalize_table(t) for t in document_tables(None, None, einv)]
    return {"document_id": "abc", "status": "ok", "fields": {k: v.model_dump() for k, v in fx.fields.items()},
            "tables": [t.model_dump() for t in tabs],
            "invoice": (einv or {}).get("en16931")}  # as build_export carries it for e-invoices


def _same(key, a, b):
    if a is None or b is None:
        return a == b
    return Decimal(a) == Decimal(b) if key.endswith("total") else a == b


def test_cii_round_trip_of_every_corpus_einvoice(corpus):
    """read -> export -> read again: header fields and line items are equal; the XML is
    well-formed CII and, where the source gives every line a net price, XSD-valid (EN 16931)."""
    docs = sorted((corpus / "einvoices").glob("*.pdf"))
    assert len(docs) >= 10
    valid = 0
    for pdf in docs:
        einv = extract_einvoice(pdf.read_bytes())
        xml = cii_bytes(_record(einv))
        back = parse_cii(xml)
        for k in HEADER_KEYS:
            assert _same(k, einv.get(k), back.get(k)), (pdf.name, k, einv.get(k), back.get(k))
        # ZUGFeRD 1.0 text-only lines (no item, quantity or amount) become notes: EN 16931 has no such lines
        items = [li for li in einv["line_items"] if li["name"] or li["quantity"] or li["line_total"]]
        assert len(back["line_items"]) == len(items), pdf.name
        for a, b in zip(items, back["line_items"]):
            assert " ".join((a["name"] or "").split()) == (b["name"] or ""), pdf.name
            for k in ("quantity", "net_unit_price", "line_total"):
                if k == "net_unit_price" and a[k] is None and b[k] is not None:  # derived: amount / quantity
                    assert Decimal(b[k]) * Decimal(a["quantity"]) == Decimal(a["line_total"]), pdf.name
                    continue
                assert _same("x_total", a[k], b[k]), (pdf.name, k, a[k], b[k])
            assert a["unit"] == b["unit"] or (a["unit"] is None and a["quantity"] is None)
        ok, errors = validate_cii(xml)
        prices = all(li["net_unit_price"] for li in items)
        if prices:
            assert ok, (pdf.name, errors[:3])
        valid += ok
    assert valid >= 5


def test_cii_from_rules_only_invoice_is_schema_valid():
    text = ("ACME GmbH\nRechnung Nr. RE-2024-7\nRechnungsdatum: 05.03.2024\nUSt-IdNr.: DE123456789\n"
            "IBAN DE89 3704 0044 0532 0130 00\nNettobetrag 100,00 EUR\nMwSt 19 % 19,00 EUR\nGesamtbetrag 119,00 EUR")
    table = normalize_table(Table(page=1, source="pdf_ruling", rows=[
        ["Pos", "Menge", "Bezeichnung", "Einzelpreis", "Gesamt"],
        ["1", "2 Stk", "Widget", "30,00", "60,00"], ["2", "4 Std.", "Montage", "10,00", "40,00"]]))
    rec = _record(None, text, [table])
    assert [li["name"] for li in line_items_of_record(rec)] == ["Widget", "Montage"]
    xml = cii_bytes(rec)
    ok, errors = validate_cii(xml)
    assert ok, errors
    back = parse_cii(xml)
    assert (back["invoice_number"], back["issue_date"], back["gross_total"], back["seller_vat_id"], back["iban"]) == (
        "RE-2024-7", "2024-03-05", "119.00", "DE123456789", "DE89370400440532013000")
    assert [(li["quantity"], li["unit"], li["line_total"]) for li in back["line_items"]] == [
        ("2", "H87", "60.00"), ("4", "HUR", "40.00")]
    root = build_cii(rec)
    assert etree.QName(root).localname == "CrossIndustryInvoice"


def test_xsd_is_shipped_and_rejects_broken_documents():
    assert xsd_path("en16931") is not None and xsd_path("basicwl") is not None
    broken = cii_bytes({"fields": {}, "tables": []}).replace(b"<ram:TypeCode>380</ram:TypeCode>", b"")
    ok, errors = validate_cii(broken)
    assert not ok and errors


def test_csv_exports_excel_german_and_plain():
    rec = {"document_id": "d1", "fields": {
        "total": {"value": "1234.50", "confidence": 0.9, "source": "rules:label", "page": 1, "raw": "1.234,50"},
        "supplier_name": {"value": "Müller; Söhne GmbH", "confidence": 0.8, "source": "rules:x", "page": 1,
                          "raw": None}},
        "tables": [normalize_table(Table(page=1, source="office", rows=[
            ["Beschreibung", "Menge", "Preis", "Betrag"], ["Äpfel", "3", "1,50", "4,50"]])).model_dump()]}
    plain = fields_csv(rec).decode("utf-8")
    rows = list(csv.reader(io.StringIO(plain)))
    assert rows[0] == FIELD_COLUMNS and ["d1", "total", "1234.50"] == rows[2][:3]
    de = fields_csv(rec, delimiter=";", decimal_comma=True, bom=True)
    assert de.startswith("\ufeff".encode("utf-8"))
    rows = list(csv.reader(io.StringIO(de.decode("utf-8-sig")), delimiter=";"))
    assert rows[1][2] == "Müller; Söhne GmbH" and rows[2][2] == "1234,50" and rows[2][3] == "0,9"
    lines = list(csv.reader(io.StringIO(line_items_csv(rec, delimiter=";", decimal_comma=True).decode()), delimiter=";"))
    assert lines[0] == LINE_COLUMNS
    assert lines[1][3:8] == ["Äpfel", "3", "", "1,50", "4,50"]


def test_export_files_by_record_kind(corpus):
    pdf = corpus / "einvoices" / "einvoice-mustangbeispiel20221026.pdf"
    files = export_files(_record(extract_einvoice(pdf.read_bytes())))
    assert set(files) == {"fields.csv", "lines.csv", "cii.xml", "ubl.xml"}
    assert parse_cii(files["cii.xml"])["invoice_number"] == "RE1001"
    assert export_files({"status": "failed", "fields": {}, "tables": []}) == {}
    assert set(export_files({"status": "ok", "fields": {}, "tables": []})) == {"fields.csv", "lines.csv"}
    json.dumps({k: v.decode("utf-8") for k, v in files.items()})  # UTF-8 text throughout


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_lines_csv_of_einvoice_matches_xml(corpus, delimiter):
    pdf = corpus / "einvoices" / "einvoice-mustanggnuaccountingbeispielre-20170509-505.pdf"
    einv = extract_einvoice(pdf.read_bytes())
    rows = list(csv.DictReader(io.StringIO(line_items_csv(_record(einv), delimiter=delimiter).decode()),
                               delimiter=delimiter))
    assert [(r["description"], r["quantity"], r["unit"], r["line_total"]) for r in rows] == [
        (li["name"], li["quantity"], li["unit"], li["line_total"]) for li in einv["line_items"]]
