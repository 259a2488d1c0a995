"""ZUGFeRD / Factur-X extraction (idp_assets.logic.einvoice) against the corpus e-invoices."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from idp_assets.logic.einvoice import (
    LINE_ITEM_HEADER,
    EInvoiceError,
    extract_einvoice,
    find_embedded_xml,
    line_items_rows,
    parse_cii,
)
from idp_assets.logic.tables import document_tables, einvoice_table


def _einvoice_docs(corpus: Path) -> list[dict]:
    docs = []
    with open(corpus / "manifest.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            if d["category"] == "einvoices":
                docs.append(d)
    return docs


def _norm_rows(rows):
    return [[" ".join(str(c).split()) for c in r] for r in rows]


@pytest.fixture(scope="module")
def einvoices(corpus) -> list[tuple[dict, dict]]:
    out = []
    for d in _einvoice_docs(corpus):
        out.append((d, extract_einvoice((corpus / d["file"]).read_bytes())))
    return out


def test_all_corpus_einvoices_found(einvoices):
    assert len(einvoices) == 12
    for d, e in einvoices:
        assert e is not None, d["id"]
        assert "error" not in e, (d["id"], e.get("error"))
        assert e["filename"].lower() in ("factur-x.xml", "zugferd-invoice.xml"), d["id"]
        assert e["format"] in ("zugferd1", "cii")


def test_fields_equal_ground_truth(einvoices):
    for d, e in einvoices:
        gt = d["fields"]
        assert e["supplier_name"] == gt["supplier_name"], d["id"]
        assert e["invoice_number"] == gt["invoice_number"], d["id"]
        assert e["issue_date"] == gt["date"], d["id"]
        assert e["gross_total"] == gt["total"], d["id"]
        assert e["currency"] == gt["currency"], d["id"]


def test_line_items_equal_ground_truth_tables(einvoices, corpus):
    for d, e in einvoices:
        rows = line_items_rows(e)
        if d["tables"] is None:
            assert rows == [], d["id"]
            continue
        assert rows[0] == LINE_ITEM_HEADER
        assert rows == _norm_rows(d["tables"][0]), d["id"]
        t = einvoice_table(e)
        assert t is not None and t.source == "einvoice_xml" and t.rows == rows


def test_einvoice_table_comes_first(einvoices, corpus):
    d, e = einvoices[0]
    tables = document_tables((corpus / d["file"]).read_bytes(), None, e, pdf_tables_for_einvoice=True)
    assert tables[0].source == "einvoice_xml"
    assert len(tables) >= 1


def test_both_generations_and_extra_fields(einvoices):
    by_id = {d["id"]: e for d, e in einvoices}
    zf1 = by_id["einvoice-mustanggnuaccountingbeispielre-20170509-505"]
    assert zf1["format"] == "zugferd1"
    assert zf1["seller_vat_id"] == "DE136695976"
    assert zf1["iban"] == "DE88200800000970375700"
    assert zf1["due_date"] == "2017-05-30"
    assert zf1["net_total"] == "496.00" and zf1["tax_total"] == "75.04"
    assert zf1["buyer_name"] == "Theodor Est"
    cii = by_id["einvoice-zugferd-2p1-en16931-physiotherapeut"]
    assert cii["format"] == "cii"
    assert cii["iban"] == "DE02120300000000202051"
    assert cii["due_date"] == "2018-11-21"
    # identifier lines in the ZUGFeRD 1.0 seller Name are dropped
    korr = by_id["einvoice-zugferd-1p0-basic-rechnungskorrektur"]
    assert korr["supplier_name"] == "MUSTERLIEFERANT GMBH"
    assert "GLN" in korr["supplier_name_raw"]


# --------------------------------------------------------------------------- robustness

_MINIMAL_CII = b"""<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
 <rsm:ExchangedDocument><ram:ID>X-1</ram:ID><ram:TypeCode>380</ram:TypeCode>
  <ram:IssueDateTime><udt:DateTimeString format="102">20240131</udt:DateTimeString></ram:IssueDateTime>
 </rsm:ExchangedDocument>
 <rsm:SupplyChainTradeTransaction>
  <ram:ApplicableHeaderTradeAgreement><ram:SellerTradeParty><ram:Name>  ACME
   GmbH </ram:Name></ram:SellerTradeParty></ram:ApplicableHeaderTradeAgreement>
  <ram:ApplicableHeaderTradeSettlement><ram:InvoiceCurrencyCode>GBP</ram:InvoiceCurrencyCode>
   <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    <ram:TaxBasisTotalAmount>10.00</ram:TaxBasisTotalAmount>
    <ram:TaxTotalAmount currencyID="EUR">2.30</ram:TaxTotalAmount>
    <ram:TaxTotalAmount currencyID="GBP">2.00</ram:TaxTotalAmount>
    <ram:GrandTotalAmount>12.00</ram:GrandTotalAmount>
   </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
  </ram:ApplicableHeaderTradeSettlement>
 </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>"""


def test_minimal_cii_and_tax_currency_choice():
    e = parse_cii(_MINIMAL_CII)
    assert e["supplier_name"] == "ACME GmbH"
    assert e["issue_date"] == "2024-01-31"
    assert e["currency"] == "GBP" and e["tax_total"] == "2.00" and e["gross_total"] == "12.00"
    assert e["line_items"] == [] and line_items_rows(e) == []


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not xml at all",
        b"<rsm:CrossIndustryInvoice xmlns:rsm='x'><unclosed>",
        b"<?xml version='1.0'?><Invoice xmlns='urn:oasis:names:specification:ubl:schema:xsd:Invoice-2'/>",
        b"\xff\xfe\x00garbage",
    ],
)
def test_malformed_or_foreign_xml_raises_clear_error(payload):
    with pytest.raises(EInvoiceError):
        parse_cii(payload)


_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100">
<rsm:ExchangedDocument><ID>&xxe;</ID></rsm:ExchangedDocument></rsm:CrossIndustryInvoice>"""

_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100">
<rsm:ExchangedDocument><ID>&lol9;</ID></rsm:ExchangedDocument></rsm:CrossIndustryInvoice>"""


@pytest.mark.parametrize("payload", [_XXE, _LAUGHS, b"<!-- " + b"x" * 70000 + b" -->\n" + _LAUGHS.split(b"\n", 1)[1]])
def test_xxe_and_billion_laughs_rejected_quickly(payload):
    t0 = time.perf_counter()
    with pytest.raises(EInvoiceError) as ei:
        parse_cii(payload)
    assert time.perf_counter() - t0 < 2.0
    assert "root:" not in str(ei.value)  # nothing from /etc/passwd leaks into the message


def _pdf_with_attachment(name: str, data: bytes) -> bytes:
    from pypdf import PdfWriter

    w = PdfWriter()
    w.add_blank_page(width=200, height=200)
    w.add_attachment(name, data)
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def test_extract_einvoice_reports_error_object_for_bad_embedded_xml():
    pdf = _pdf_with_attachment("factur-x.xml", _LAUGHS)
    res = extract_einvoice(pdf)
    assert res is not None and "error" in res and res["filename"] == "factur-x.xml"
    assert line_items_rows(res) == [] and einvoice_table(res) is None


def test_xrechnung_attachment_name_and_unknown_names():
    assert find_embedded_xml(_pdf_with_attachment("xrechnung.xml", _MINIMAL_CII))[0] == "xrechnung.xml"
    # an oddly named attachment is still found when it is CII
    name, _xml = find_embedded_xml(_pdf_with_attachment("rechnung_4711.xml", _MINIMAL_CII))
    assert name == "rechnung_4711.xml"
    res = extract_einvoice(_pdf_with_attachment("ZUGFeRD-invoice.xml", _MINIMAL_CII))
    assert res["invoice_number"] == "X-1" and res["filename"] == "ZUGFeRD-invoice.xml"


def test_no_einvoice_cases():
    assert extract_einvoice(b"%PDF-1.4 broken") is None
    assert extract_einvoice(b"not a pdf") is None
    assert extract_einvoice(_pdf_with_attachment("notes.txt", b"hello")) is None
