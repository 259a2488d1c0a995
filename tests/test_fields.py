"""Header-field rules (idp_assets.logic.fields): synthetic texts and the corpus."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from idp_assets.logic.einvoice import extract_einvoice
from idp_assets.logic.fields import FieldExtraction, extract_fields, iban_is_valid, validate_fields
from idp_assets.models import FieldValue, OcrWord

TODAY = date(2026, 1, 1)


def _score_module(corpus: Path):
    path = corpus.parent / "tools" / "score.py"
    spec = importlib.util.spec_from_file_location("idp_corpus_score", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _docs(corpus: Path, category: str) -> list[dict]:
    with open(corpus / "manifest.jsonl", encoding="utf-8") as fh:
        return [d for d in map(json.loads, fh) if d["category"] == category]


def _pdf_pages(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path))
    try:
        return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()


def _v(fx: FieldExtraction, name: str):
    fv = fx.fields.get(name)
    return fv.value if fv else None


# --------------------------------------------------------------------------- synthetic texts

GERMAN = """Muster Handwerk GmbH · Hauptstraße 5 · 10115 Berlin
Kunde AG
Kundenweg 1
20095 Hamburg
Rechnung
Rechnungs-Nr.: RE-2023/0815
Rechnungsdatum: 14.03.2023
Leistungsdatum: 01.03.2023
Pos. Bezeichnung Menge Preis Betrag
1 Fliesen legen 10 45,00 450,00
Nettobetrag 450,00 €
zzgl. 19 % MwSt. 85,50 €
Gesamtbetrag 535,50 €
Zahlbar bis zum 28.03.2023
IBAN DE89 3704 0044 0532 0130 00 · USt-IdNr. DE 123 456 789
"""

ENGLISH = """ACME Widgets Ltd.
12 High Street, London
Bill to: Foo Bar Inc.
Invoice No. INV-4711
Invoice Date: March 5, 2023
Due Date: April 4, 2023
Subtotal $1,000.00
Tax $80.00
Grand Total $1,080.00
"""

FRENCH = """Boulangerie Dupont SARL
3 rue de la Paix - 75002 Paris
Facture n° F2023-118
Date : 07/02/2023
Désignation Quantité Montant
Pain 10 25,00 €
Total HT : 50,00 €
TVA 20% : 10,00 €
Total TTC : 60,00 €
"""

RECEIPT = """KEDAI MAJU SDN BHD
(12345-X)
NO 1, JALAN MAJU, 50000 KL
TAX INVOICE
DATE: 12/01/2019 10:22
ITEM QTY AMOUNT
NASI LEMAK 2 10.00
TOTAL RM 33.92
ROUNDING ADJ -0.02
TOTAL ROUNDED RM 33, 90
CASH RM 50.00
CHANGE RM 16.10
"""


def test_german_invoice_rules():
    fx = extract_fields([GERMAN], today=TODAY)
    assert _v(fx, "supplier_name") == "Muster Handwerk GmbH"
    assert _v(fx, "invoice_number") == "RE-2023/0815"
    assert _v(fx, "date") == "2023-03-14"  # not the Leistungsdatum
    assert _v(fx, "total") == "535.50"
    assert _v(fx, "currency") == "EUR"
    assert _v(fx, "net_total") == "450.00"
    assert _v(fx, "tax_total") == "85.50"
    assert _v(fx, "due_date") == "2023-03-28"
    assert _v(fx, "iban") == "DE89370400440532013000"
    assert _v(fx, "vat_id") == "DE123456789"
    assert fx.fields["invoice_number"].source.startswith("rules:")
    rules = {f["rule"]: f["ok"] for f in fx.validation}
    assert rules["totals_consistent"] is True
    assert rules["iban_checksum"] is True
    assert rules["date_not_in_future"] is True
    assert rules["due_date_after_issue"] is True


def test_english_invoice_rules():
    fx = extract_fields([ENGLISH], today=TODAY)
    assert _v(fx, "supplier_name") == "ACME Widgets Ltd."
    assert _v(fx, "invoice_number") == "INV-4711"
    assert _v(fx, "date") == "2023-03-05"
    assert _v(fx, "due_date") == "2023-04-04"
    assert _v(fx, "total") == "1080.00"
    assert _v(fx, "currency") == "USD"


def test_french_invoice_rules():
    fx = extract_fields([FRENCH], today=TODAY)
    assert _v(fx, "supplier_name") == "Boulangerie Dupont SARL"
    assert _v(fx, "invoice_number") == "F2023-118"
    assert _v(fx, "date") == "2023-02-07"
    assert _v(fx, "total") == "60.00"
    assert _v(fx, "net_total") == "50.00"
    assert _v(fx, "currency") == "EUR"


def test_receipt_rounded_total_and_ocr_spacing():
    fx = extract_fields([RECEIPT], today=TODAY)
    assert _v(fx, "total") == "33.90"
    assert _v(fx, "date") == "2019-01-12"
    assert _v(fx, "currency") == "MYR"
    assert _v(fx, "supplier_name") == "KEDAI MAJU SDN BHD"
    assert "invoice_number" not in fx.fields or fx.fields["invoice_number"].confidence < 0.6


def test_value_on_next_line_and_column_header():
    text = "Invoice Number:\nA-778899\nInvoice Date:\n03/20/2023\nTotal\n$ 12.00\n"
    fx = extract_fields([text], today=TODAY)
    assert _v(fx, "invoice_number") == "A-778899"
    assert _v(fx, "date") == "2023-03-20"
    assert _v(fx, "total") == "12.00"
    cols = "Klant Order Factuur datum Factuur\nC-1 O-2 VF1005193039\n"
    assert _v(extract_fields([cols], today=TODAY), "invoice_number") == "VF1005193039"


def test_confidence_is_not_constant_and_tracks_ocr_quality():
    def words(conf: float) -> list[OcrWord]:
        toks = GERMAN.split()
        return [OcrWord(text=t, confidence=conf, bbox=(0, 0, 1, 1)) for t in toks]

    hi = extract_fields([GERMAN], [words(0.98)], page_confidences=[0.98], today=TODAY)
    lo = extract_fields([GERMAN], [words(0.40)], page_confidences=[0.40], today=TODAY)
    # fitted confidences (data/field_confidence.json): worse OCR never raises a confidence (the fit keeps
    # the signs), and lowers it where the development data shows an effect (amounts, names)
    for name in ("invoice_number", "date", "total", "supplier_name"):
        assert 0.0 <= lo.fields[name].confidence <= hi.fields[name].confidence <= 1.0, name
    for name in ("total", "supplier_name"):
        assert lo.fields[name].confidence < hi.fields[name].confidence, name
    confs = {fv.confidence for fv in hi.fields.values()}
    assert len(confs) > 3  # differs between fields
    # agreement raises confidence: the same total printed twice
    once = extract_fields(["Total 12,00 €"], today=TODAY).fields["total"].confidence
    twice = extract_fields(["Total 12,00 €\nGesamtbetrag 12,00 €"], today=TODAY).fields["total"].confidence
    assert twice > once
    # a date in the future fails its check: never more confident than a plausible one, and always reviewed
    past = extract_fields(["Rechnungsdatum 01.02.2020"], today=TODAY).fields["date"]
    future = extract_fields(["Rechnungsdatum 01.02.2030"], today=TODAY).fields["date"]
    assert future.confidence <= past.confidence and future.needs_review


def test_validation_findings():
    fields = {
        "net_total": FieldValue(value="100.00", confidence=0.9, source="t"),
        "tax_total": FieldValue(value="19.00", confidence=0.9, source="t"),
        "total": FieldValue(value="120.00", confidence=0.9, source="t"),
        "iban": FieldValue(value="DE89370400440532013001", confidence=0.9, source="t"),
        "date": FieldValue(value="2031-01-01", confidence=0.9, source="t"),
    }
    res = {f["rule"]: f for f in validate_fields(fields, today=TODAY)}
    assert res["totals_consistent"]["ok"] is False
    assert res["iban_checksum"]["ok"] is False
    assert res["date_not_in_future"]["ok"] is False
    assert all(isinstance(f["message"], str) and f["message"] for f in res.values())
    assert iban_is_valid("DE89 3704 0044 0532 0130 00")
    assert iban_is_valid("NL50INGB0683251309") and not iban_is_valid("NL50INGB0683251308")


def test_empty_input_is_harmless():
    fx = extract_fields([], today=TODAY)
    assert fx.fields == {} and isinstance(fx.validation, list)
    fx = extract_fields(["", None], today=TODAY)
    assert "total" not in fx.fields


def test_einvoice_error_becomes_finding():
    fx = extract_fields([GERMAN], einvoice={"error": "malformed XML: boom", "filename": "factur-x.xml"}, today=TODAY)
    assert _v(fx, "invoice_number") == "RE-2023/0815"  # falls back to the rules
    finding = next(f for f in fx.validation if f["rule"] == "einvoice_parse")
    assert finding["ok"] is False and "boom" in finding["message"]


# --------------------------------------------------------------------------- corpus

CORE = ("supplier_name", "invoice_number", "date", "total", "currency")


def _accuracy(score, docs, predict) -> dict[str, float]:
    hits: dict[str, list[bool]] = {k: [] for k in CORE}
    for d in docs:
        fx = predict(d)
        for k in CORE:
            gt = d["fields"].get(k)
            if gt is None:
                continue
            fv = fx.fields.get(k)
            hits[k].append(score.field_correct(k, fv.value if fv else None, gt))
    return {k: sum(v) / len(v) for k, v in hits.items() if v}


def test_einvoices_xml_fields_and_cross_check(corpus):
    score = _score_module(corpus)
    docs = _docs(corpus, "einvoices")
    results = {}

    def predict(d):
        pdf = corpus / d["file"]
        fx = extract_fields(_pdf_pages(pdf), einvoice=extract_einvoice(pdf.read_bytes()), today=TODAY)
        results[d["id"]] = fx
        return fx

    acc = _accuracy(score, docs, predict)
    assert all(a == 1.0 for a in acc.values()), acc
    for fx in results.values():
        for k in CORE:
            assert fx.fields[k].source == "einvoice_xml"
    # weclapp prints 963,12 while its XML says 963.11: the cross-check must flag it
    weclapp = {f["rule"]: f["ok"] for f in results["einvoice-mustangbeispiel20221026"].validation}
    assert weclapp["einvoice_total_in_text"] is False
    assert weclapp["einvoice_matches_print:total"] is False
    assert weclapp["einvoice_matches_print:supplier_name"] is True
    # per-field cross-check: only the two samples whose print really differs from the XML
    # (see the manifest notes) have a failing field; rule misreadings elsewhere are not findings
    flagged = {doc for doc, fx in results.items()
               if any(f["rule"].startswith("einvoice_matches_print:") and not f["ok"] for f in fx.validation)}
    assert flagged == {"einvoice-mustangbeispiel20221026",
                       "einvoice-zugferd-1p0-comfort-haftpflichtversicherung-versicherungssteuer"}, flagged
    assert weclapp["einvoice_invoice_number_in_text"] is True
    # the insurance sample prints only the policy number, not the XML document ID
    ins = results["einvoice-zugferd-1p0-comfort-haftpflichtversicherung-versicherungssteuer"]
    assert {f["rule"]: f["ok"] for f in ins.validation}["einvoice_invoice_number_in_text"] is False
    # every XML value of the development corpus is right (the XML is the truth), so the fitted XML
    # confidence cannot separate printed from unprinted values: it is capped below 1 (Jeffreys) and
    # the mismatch stays a finding
    assert ins.fields["invoice_number"].confidence <= results["einvoice-zugferd-invoice"].fields["invoice_number"].confidence < 1.0


def test_einvoices_rules_only_on_text_layer(corpus):
    """Without the XML, the printed page alone (rules) gets most fields right."""
    score = _score_module(corpus)
    acc = _accuracy(score, _docs(corpus, "einvoices"),
                    lambda d: extract_fields(_pdf_pages(corpus / d["file"]), today=TODAY))
    print("einvoices rules-only accuracy", acc)
    assert sum(acc.values()) / len(acc) >= 0.85, acc


def test_invoices_pdf_text_layer_accuracy(corpus):
    from idp_assets.logic.tables import pdf_layout_text

    score = _score_module(corpus)
    acc = _accuracy(score, _docs(corpus, "invoices_pdf"),
                    lambda d: extract_fields(_pdf_pages(corpus / d["file"]), today=TODAY,
                                             layout_text_by_page=pdf_layout_text((corpus / d["file"]).read_bytes())))
    print("invoices_pdf accuracy", acc)
    # measured when written: supplier 4/7, invoice_number 7/7, date 7/7, total 7/7, currency 7/7
    # (misses: template issuer names and a supplier printed only as an image; the scrambled
    # text layer of qualityhosting is read through the layout lines)
    assert acc["date"] >= 0.85 and acc["total"] >= 0.85 and acc["currency"] >= 0.85, acc
    # the labels quoting single corpus documents ('Booking ID', 'Titulaire du compte') are gone
    # (tests/test_fields.py::test_no_corpus_strings_in_product_code): oyo's number and netpresse's
    # supplier are no longer read
    assert acc["invoice_number"] >= 6 / 7, acc
    assert acc["supplier_name"] >= 3 / 7, acc
    assert sum(acc.values()) / len(acc) >= 0.85, acc


def test_layout_lines_only_fill_missing_fields():
    stream = "Rechnungsdatum\n30064443 Kundennr.\n7. Mai 2014\n47774\nRechnungsnr.\nSumme EUR 34,73"
    layout = "Rechnungsnr. 30064443 Kundennr. 47774\nRechnungsdatum 7. Mai 2014\nRechnungsnr. 99999999"
    plain = extract_fields([stream], today=TODAY)
    assert "invoice_number" not in plain.fields
    fx = extract_fields([stream], today=TODAY, layout_text_by_page=[layout])
    inv = fx.fields["invoice_number"]
    assert inv.value == "30064443" and inv.source.startswith("rules:layout_")
    assert fx.fields["date"].value == plain.fields["date"].value == "2014-05-07"
    assert fx.fields["date"].source == plain.fields["date"].source  # found in the stream: not replaced
    direct = extract_fields(["Rechnungsnr. 30064443 Kundennr. 47774"], today=TODAY)
    assert inv.confidence < direct.fields["invoice_number"].confidence


def test_receipts_rules_on_ground_truth_transcripts(corpus):
    """Rules on the receipts' annotated transcripts (perfect OCR, one box per line)."""
    score = _score_module(corpus)
    acc = _accuracy(score, _docs(corpus, "receipts"), lambda d: extract_fields([d["text"]], today=TODAY))
    print("receipts (gt transcripts) accuracy", acc)
    assert acc["date"] >= 0.9 and acc["total"] >= 0.8 and acc["currency"] >= 0.9, acc
    assert acc["supplier_name"] >= 0.85, acc


# --------------------------------------------------------------------------- optional LLM (LiteLLM, mocked)


def _router(tmp_path, answer: str | None, monkeypatch):
    from resources.llm import LlmRouter

    monkeypatch.setenv("IDP_TEST_LLM_KEY", "sk-test-not-used")
    params = {"model": "openai/gpt-4o-mini", "api_key": "os.environ/IDP_TEST_LLM_KEY"}
    if answer is not None:
        params["mock_response"] = answer
    cfg = tmp_path / "llm.json"
    cfg.write_text(json.dumps({"model_list": [{"model_name": "idp-fields", "litellm_params": params}],
                               "router_settings": {"num_retries": 0}}))
    return LlmRouter(enabled=True, config_path=str(cfg))


def test_llm_answer_parsing_and_merge():
    from idp_assets.logic.llm_fields import merge_llm_fields, parse_llm_fields

    got = parse_llm_fields('Sure: {"total": "1.234,50 EUR", "date": "26.10.2022", "currency": "eur", '
                           '"iban": "DE89 3704 0044 0532 0130 00", "invoice_number": null, "buyer_name": "  A  B "}')
    assert got == {"total": "1234.50", "date": "2022-10-26", "currency": "EUR", "iban": "DE89370400440532013000",
                   "buyer_name": "A B"}
    assert parse_llm_fields("no json") == {} and parse_llm_fields("[1, 2]") == {}
    text = "Rechnung RE-9 vom 26.10.2022\nIBAN DE89 3704 0044 0532 0130 00\nSumme 1.234,50 EUR"
    rules = {"total": FieldValue(value="1234.50", confidence=0.8, source="rules:label"),
             "date": FieldValue(value="2022-10-25", confidence=0.7, source="rules:label")}
    merged, findings = merge_llm_fields(rules, got, text)
    assert merged["total"].confidence == 0.8 and merged["total"].source == "rules:label"  # agreement: unchanged
    assert not merged["total"].needs_review
    assert merged["date"].value == "2022-10-25" and merged["date"].needs_review  # rules stay first, flagged
    assert [f["rule"] for f in findings][0] == "llm_agrees:date" and not findings[0]["ok"]
    assert merged["iban"].source == "llm:idp-fields"
    # no data to fit an LLM confidence on: LLM-only values are unmeasured and need review
    assert merged["iban"].confidence == 0.0 and merged["iban"].needs_review and merged["buyer_name"].needs_review
    assert any(f["rule"] == "llm_agrees:buyer_name" and "not printed" in f["message"] for f in findings)


def test_llm_router_task_alias_with_mock_response(tmp_path, monkeypatch):
    import logging
    from types import SimpleNamespace

    from idp_assets.fields import _with_llm
    from idp_assets.logic.llm_fields import FIELDS_SCHEMA, extract_with_llm
    from resources.llm import LlmRouter

    answer = json.dumps({"supplier_name": "ACME GmbH", "invoice_number": "RE-9", "total": "119,00",
                         "currency": "EUR", "vat_id": "DE136695976"})
    router = _router(tmp_path, answer, monkeypatch)
    assert router.tasks() == ["idp-fields"]
    assert extract_with_llm(router.complete_json, "ACME GmbH Rechnung RE-9 Summe 119,00 EUR")["total"] == "119.00"
    assert FIELDS_SCHEMA["required"]
    with pytest.raises(KeyError):
        router.complete_json("idp-unknown", [{"role": "user", "content": "x"}], FIELDS_SCHEMA)
    with pytest.raises(RuntimeError):
        LlmRouter().complete_json("idp-fields", [], FIELDS_SCHEMA)  # disabled by default

    ctx = SimpleNamespace(log=logging.getLogger("test"))
    text = "ACME GmbH\nRechnung RE-9\nUSt-IdNr. DE136695976\nSumme 119,00 EUR"
    fx = extract_fields([text], today=TODAY)
    fields, validation = _with_llm(ctx, router, text, dict(fx.fields), list(fx.validation), None)
    assert fields["vat_id"].value == "DE136695976"
    assert fields["invoice_number"].source.startswith("rules:")
    assert any(v["rule"] == "vat_id_format" and v["ok"] for v in validation)
    # a provider that answers garbage or fails: the rules' result stays, plus a finding
    broken = _router(tmp_path, None, monkeypatch).model_copy(update={"timeout_s": 0.01, "config_path": "/nonexistent"})
    fields2, validation2 = _with_llm(ctx, broken, text, dict(fx.fields), list(fx.validation), None)
    assert fields2 == dict(fx.fields) and validation2[-1]["rule"] == "llm_call" and not validation2[-1]["ok"]


def test_labelled_date_with_one_ocr_digit_confusion_is_repaired():
    fx = extract_fields(["KEDAI ABC SDN BHD\nDate: 45/07/2017 12:07\nTOTAL 12.30"], today=TODAY)
    assert fx.fields["date"].value == "2017-07-15" and fx.fields["date"].source == "rules:label_ocr_repair"
    clean = extract_fields(["KEDAI ABC SDN BHD\nDate: 15/07/2017 12:07\nTOTAL 12.30"], today=TODAY)
    assert fx.fields["date"].confidence <= clean.fields["date"].confidence  # fitted: no discount the data lacks
    assert extract_fields(["Doc No.: 12 Date: 30/64/2018"], today=TODAY).fields["date"].value == "2018-04-30"
    assert extract_fields(["Date: 48/07/2017"], today=TODAY).fields["date"].value == "2017-07-18"  # 8->0: no date
    # no single repair makes a valid date (day and month both broken; two readings): nothing invented
    assert "date" not in extract_fields(["Date: 99/99/2018"], today=TODAY).fields
    assert "date" not in extract_fields(["Date: 56/07/2017"], today=TODAY).fields  # 5->6 and 6->0 both fail


# phrases that each occur on one corpus document only, once hard-coded as rules, and the ground
# truth's own column names: product code must not quote them (labels live in the vocabulary,
# idp_assets/logic/data/invoice_labels.json, from EN 16931 term names and common label lists)
CORPUS_STRINGS = ("Rechnungsbeitrag", "Booking ID", "Guest Name", "Titulaire du compte", "BIZDATE",
                  "Total for this invoice", "Not to be used for payment remittance", "price_subtotal",
                  "unece_code", "Gesamtbeitrag", "Flugzeugallee", "Papierfeld")


def _product_strings() -> list[tuple[str, str]]:
    """(file, text) of every string literal in idp_assets/ and resources/ and every data file there
    (comments do not count: they may cite where a behaviour was seen)."""
    import io
    import tokenize

    root = Path(__file__).resolve().parents[1]
    out = []
    for pkg in ("idp_assets", "resources"):
        for p in sorted((root / pkg).rglob("*")):
            if p.suffix == ".py":
                toks = tokenize.generate_tokens(io.StringIO(p.read_text(encoding="utf-8")).readline)
                out += [(str(p.relative_to(root)), t.string) for t in toks if t.type == tokenize.STRING]
            elif p.suffix in (".json", ".yaml", ".yml", ".csv", ".txt") and p.stat().st_size < 2_000_000:
                out.append((str(p.relative_to(root)), p.read_text(encoding="utf-8", errors="replace")))
    return out


def test_no_corpus_strings_in_product_code():
    found = [(f, s) for f, text in _product_strings() for s in CORPUS_STRINGS
             if re.search(re.escape(s).replace(r"\ ", r"[\s_]*"), text, re.IGNORECASE)]
    assert not found, found


def test_label_vocabulary_terms_have_language_and_source():
    from idp_assets.logic.field_rules.labels import label_patterns, line_column, payment_terms_days, vocabulary

    voc = vocabulary()
    langs = set()
    for name, spec in voc["fields"].items():
        assert spec["bt"].startswith(("BT-", "BG-")), name
        for t in spec["terms"]:
            assert t["term"] and t["source"] and t["lang"] in ("de", "en", "fr", "nl", "it", "es", "xx"), t
            langs.add(t["lang"])
    assert {"de", "en", "fr", "nl", "it", "es"} <= langs
    rx = dict((w, r) for r, w in label_patterns("invoice_number"))
    assert any(r.search("USt.-Id.-Nr.") is None and r.search("Rechnungs-Nr.: 1") for r in rx.values())
    assert payment_terms_days("Zahlbar innerhalb von 14 Tagen ohne Abzug") == (14, "Zahlbar innerhalb von 14 Tagen")
    assert payment_terms_days("Payable within 30 days.")[0] == 30 and payment_terms_days("binnen 8 dagen")[0] == 8
    assert payment_terms_days("entro 60 giorni")[0] == 60 and payment_terms_days("Total 30") is None
    assert line_column("Prix unitaire") == ("net_unit_price", "BT-146") and line_column("Menge")[1] == "BT-129"
    assert line_column("Cantidad")[0] == "quantity" and line_column("xyz") is None


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("Fattura n. 2024/117\nData fattura: 03/04/2024\nTotale documento 122,00 EUR", "invoice_number", "2024/117"),
        ("Factura nº F-2201\nFecha de factura: 03/04/2024\nTotal factura 121,00 €", "date", "2024-04-03"),
        ("Factuurnummer 88123\nFactuurdatum 03-04-2024\nTe betalen 121,00", "total", "121.00"),
        ("Rechnung Nr. 5\nRechnungsdatum 01.03.2024\nZahlbar innerhalb von 14 Tagen", "due_date", "2024-03-15"),
        ("Invoice No. 7\nInvoice Date: 2024-03-01\nPayment terms: net 30 days", "due_date", "2024-03-31"),
        ("Lieferant GmbH\nMusterweg 1\nRechnung Nr. 9", "supplier_name", "Lieferant GmbH"),
        ("Beschreibung Fälligkeit Teilzahlung\n04.04.2024\nRechnungsdatum 05.03.2024", "due_date", "2024-04-04"),
    ],
)
def test_vocabulary_languages_and_payment_terms(text, field, value):
    fx = extract_fields([text], today=TODAY)
    assert fx.fields[field].value == value, fx.fields


def test_confidence_model_fit_and_reliability():
    from idp_assets.logic.field_rules.confidence import FEATURES, fit_logistic, predict, reliability

    # one informative feature (score_logit), one that must stay <= 0 (check_fail) although the data says +
    xs, ys = [], []
    for i in range(200):
        s = (i % 20) / 4 - 2.5
        x = [0.0] * len(FEATURES)
        x[0] = s
        x[FEATURES.index("check_fail")] = float(i % 7 == 0)
        xs.append(x)
        ys.append(int(s + (0.8 if i % 3 else -0.8) > 0 or i % 7 == 0))
    p = fit_logistic(xs, ys, l2=1.0)
    assert p["coef"][0] > 0 and p["coef"][FEATURES.index("check_fail")] <= 0
    probs = [predict(p, x) for x in xs]
    r = reliability(probs, ys)
    assert r["n"] == 200 and 0 <= r["ece"] < 0.2 and r["table"] and sum(b["n"] for b in r["table"]) == 200
    assert reliability([0.95, 0.95, 0.5], [1, 0, 1])["precision_at_0.9"] == 0.5
    allright = fit_logistic([[0.0] * len(FEATURES)] * 9, [1] * 9)
    assert allright["ceiling"] == 0.95 and predict(allright, [0.0] * len(FEATURES)) <= 0.95


def test_fitted_model_file_drives_confidence_and_review():
    from idp_assets import versions
    from idp_assets.logic.field_rules.confidence import FEATURES, calibrated, load_model

    model = load_model()
    assert model is not None and model["features"] == list(FEATURES), "run: idp bench fields-calibrate"
    rep = model["report"]
    # the figures the committed parameters were fitted with (out-of-fold = leave one source family out)
    assert rep["out_of_fold"]["ece"] <= 0.05 and rep["in_sample"]["precision_at_0.9"] >= 0.97
    assert len(model["training"]["families"]) >= 5
    c, review = calibrated("total", {"rule": "label", "score": 0.9, "support": 0.9, "ocr": 1.0, "check_pass": True})
    c2, review2 = calibrated("total", {"rule": "fallback_label", "score": 0.1, "support": 0.1, "ocr": 0.4,
                                       "ocr_source": True, "check_fail": True})
    assert c > c2 and not review and review2
    assert calibrated("total", {}, model={"groups": {}}) == (None, True)  # no fitted model: review, no number
    fx = extract_fields(["Rechnung Nr. 4711\nRechnungsdatum 01.03.2024\nNetto 100,00\nMwSt 19 % 19,00\n"
                         "Gesamtbetrag 119,00 EUR"], today=TODAY)
    assert fx.fields["total"].confidence > 0.9 and not fx.fields["total"].needs_review
    assert fx.evidence["total"]["check_pass"]  # net + tax = gross and 19 % is a DE rate
    # the data files are part of the fields asset's code version
    assert versions.FIELDS_REVISION.endswith(versions._fields_data_hash())


def test_labelled_iban_failing_its_check_is_kept_for_review():
    fx = extract_fields(["Rechnung Nr. 5\nIBAN : DE12 1234 4321 9876 00"], today=TODAY)
    assert fx.fields["iban"].value == "DE1212344321987600" and fx.fields["iban"].needs_review
    assert {v["rule"]: v["ok"] for v in fx.validation}["iban_checksum"] is False
    ok = extract_fields(["Rechnung Nr. 5\nIBAN : DE02 1203 0000 0000 2020 51"], today=TODAY).fields["iban"]
    assert ok.value == "DE02120300000000202051" and ok.confidence > fx.fields["iban"].confidence


# ---------------------------------------------------------------- totals that add up, party blocks
def test_arithmetic_picks_the_totals_that_add_up():
    from idp_assets.logic.field_rules.arithmetic import consistent_sets

    # 'Net total' is a gross label on receipts; here net + VAT = payable decides the roles
    text = ("Rechnung Nr. 77\nDatum 02.05.2024\nPos Menge Preis Betrag\n1 2 400,00 € 800,00 €\n2 1 200,00 € 200,00 €\n"
            "Net total: 1.000,00 €\nVAT total: 190,00 €\nAmount to transfer: 1.190,00 €")
    fx = extract_fields([text], today=TODAY)
    assert (_v(fx, "net_total"), _v(fx, "tax_total"), _v(fx, "total")) == ("1000.00", "190.00", "1190.00")
    assert any(v["rule"] == "totals_consistent" and v["ok"] for v in fx.validation)
    # a credit note: every amount negative
    assert consistent_sets({Decimal("-100.00"), Decimal("-19.00"), Decimal("-119.00")}) == [
        (Decimal("-100.00"), Decimal("-19.00"), Decimal("-119.00"))]
    # a 'tax' above any VAT rate is no tax
    assert consistent_sets({Decimal("100.00"), Decimal("50.00"), Decimal("150.00")}) == []


def test_arithmetic_leaves_cash_and_change_alone():
    # subtotal + change = cash adds up too, but only one of the three carries a total label
    text = "SHOP SDN BHD\nSUB TOTAL 7.70\nGRAND TOTAL 7.70\nCASH 8.00\nCHANGE DUE 0.30\n29/06/2018"
    assert _v(extract_fields([text], today=TODAY), "total") == "7.70"
    text = "CAFE SDN BHD\nSUB TOTAL 295.00\nSERVICE CHARGE 10% 29.50\nGST 6% 19.47\nNETT TOTAL 343.97\n324.50"
    assert _v(extract_fields([text], today=TODAY), "total") == "343.97"


def test_seller_block_skips_identifier_lines_and_reads_name_lines():
    text = ("Verkäufer:\nNummer : 1234\nGLN 4000001000005\nNordlicht Handel GmbH\nHafenweg 3\nDE 24103 Kiel\n"
            "Käufer:\nSüdwind AG\nBergstr. 9\nDE 80331 München\nRechnung Nr. 55 vom 01.02.2024")
    assert _v(extract_fields([text], today=TODAY), "supplier_name") == "Nordlicht Handel GmbH"
    text = "Seller\nCustomer no.: 4711\nName: Harbour Tools Ltd\nDock Road 1\nInvoice No. 9\nBuyer\nName: Hill Farm Ltd"
    assert _v(extract_fields([text], today=TODAY), "supplier_name") == "Harbour Tools Ltd"


LEGAL_PARTICULARS = [
    # an address window first (buyer name, person, street, town), the seller only in the footer
    # that company law requires (registered office, register, share capital)
    ("KRONWERK\nJana Beispiel\n12 rue des Lilas\n69003 Lyon\nFacture n° 2024-117\nDate : 03/04/2024\n"
     "Total TTC : 120,00 €\nMERIDIAN MEDIA\nSiège social : 4 place Carnot - 75001 Paris – Tél : 01 23 45 67 89\n"
     "SARL au capital de 5 000€ - RCS Paris B 123 456 789", "MERIDIAN MEDIA"),
    ("Herrn\nMax Muster\nLindenweg 2\n50667 Köln\nRechnung Nr. 4471 vom 02.05.2024\nGesamtbetrag 119,00 EUR\n"
     "Elbtal Werkzeuge\nSitz der Gesellschaft: Dresden · Amtsgericht Dresden HRB 9876", "Elbtal Werkzeuge"),
    # name, street, town, country, then the managing director and the register: the block's name
    ("Rechnung Nr. 77 vom 01.02.2024\nGesamtbetrag 50,00 EUR\nFjordholz GmbH\nKaistraße 20\n"
     "24103 Kiel\nDeutschland\nGeschäftsführer: Ole Beispiel\nHandelsregisternummer: HRB 4711", "Fjordholz GmbH"),
]


@pytest.mark.parametrize("text, seller", LEGAL_PARTICULARS)
def test_the_legal_particulars_name_the_seller_not_the_address_window(text, seller):
    fx = extract_fields([text], today=TODAY)
    assert _v(fx, "supplier_name") == seller, fx.fields.get("supplier_name")
    assert fx.fields["supplier_name"].source == "rules:legal_footer"


def test_label_words_are_not_names():
    # 'Verkäufer-BIC:' is a BIC label, not a seller label; a bare label is never the name
    text = "Rechnung Nr. 78\nGesamtbetrag 50,00 EUR\nVerkäufer-BIC:\nIBAN:\nBIC"
    assert _v(extract_fields([text], today=TODAY), "supplier_name") is None


def test_the_addressee_above_an_attention_line_is_not_the_seller():
    # the buyer's address block without a 'Bill to' header: 'T.a.v.' (attention of) names its contact
    text = ("Kopie factuur\nVeldhuis Handel B.V.\nT.a.v. J. de Vries\nKerkstraat 4\n3500 AB Utrecht\n"
            "Factuur totaal EUR 49,99\nThe issuer printed their company data below\nZonnebloem Koffie B.V.\n"
            "Molenweg 3, 8401 BL Gorredijk")
    fx = extract_fields([text], today=TODAY)
    assert _v(fx, "supplier_name") == "Zonnebloem Koffie B.V.", fx.fields.get("supplier_name")


def test_payee_label_and_long_merged_lines():
    text = "Rechnung Nr. 12\nGesamtbetrag 10,00 EUR\nKontoinhaber: Auwald Papier, IBAN DE89 3704 0044 0532 0130 00"
    assert _v(extract_fields([text], today=TODAY), "supplier_name") == "Auwald Papier"
    # OCR merged a remark column and the seller's name into one line under the seller label
    text = ("Invoice Number: 881\nTotal 4.11 USD\nService Provider:\n"
            "*** See the statement attached at the end of this Invoice Harbour Cloud Services, Inc.\n410 Pier Ave")
    assert _v(extract_fields([text], today=TODAY), "supplier_name") == "Harbour Cloud Services"
    assert _v(extract_fields(["Seller:\n" + " ".join(["word"] * 14)], today=TODAY),
              "supplier_name") is None  # a sentence is not a name


def test_delivery_date_is_not_the_issue_date():
    text = "Invoice # 2024-118 issued on 2024-03-21\nDate of delivery 2024-03-10\nPlease remit until 2024-04-20."
    fx = extract_fields([text], today=TODAY)
    assert _v(fx, "date") == "2024-03-21"
    assert _v(fx, "due_date") == "2024-04-20"
    # 'vom' with the invoice reference on the line above
    fx = extract_fields(["Lieferant GmbH\nRechnung Nr. 881\nvom 03.05.2024\nLieferdatum 28.04.2024"], today=TODAY)
    assert _v(fx, "date") == "2024-05-03"


def test_ocr_read_column_by_column_is_regrouped_into_visual_lines():
    from idp_assets.logic.tables import ocr_layout_text

    # an engine that read the label column first, then the value column
    rows = [("Verkäufer", None), ("Name:", "Nordlicht Handel GmbH"), ("USt.-Id.-Nr.:", "DE136695976"),
            ("Nettobetrag:", "1.000,00 EUR"), ("Umsatzsteuer 19 %:", "190,00 EUR"), ("Gesamtbetrag:", "1.190,00 EUR")]
    words = []
    for i, (label, value) in enumerate(rows):
        y = 100 + 40 * i
        words.append(OcrWord(text=label, confidence=0.95, bbox=(50, y, 300, y + 25)))
        if value:
            words.append(OcrWord(text=value, confidence=0.95, bbox=(400, y + 2, 700, y + 27)))
    column_text = "\n".join([r[0] for r in rows] + [r[1] for r in rows if r[1]])
    layout = ocr_layout_text(words)
    assert "Name: Nordlicht Handel GmbH" in layout.splitlines()
    fx = extract_fields([column_text], [words], page_confidences=[0.95], today=TODAY,
                        layout_text_by_page=lambda: [layout])
    assert _v(fx, "supplier_name") == "Nordlicht Handel GmbH"
    assert (_v(fx, "net_total"), _v(fx, "tax_total"), _v(fx, "total")) == ("1000.00", "190.00", "1190.00")
    assert _v(fx, "vat_id") == "DE136695976"
    # the page text alone cannot pair labels and amounts; a label line ending in ':' is never the name
    alone = extract_fields([column_text], [words], page_confidences=[0.95], today=TODAY)
    assert "total" not in alone.fields and "vat_id" not in alone.fields
    assert _v(alone, "supplier_name") == "Nordlicht Handel GmbH"


def test_a_labelled_total_in_the_visual_lines_beats_a_paid_amount_guess():
    from idp_assets.logic.tables import ocr_layout_text

    # labels in one column, amounts in another, read column by column; the page text pairs no
    # total label with an amount, only 'Paid by card' (a fallback: the amount paid)
    rows = [("Room charges", "Rs 2400"), ("Grand Total", "Rs 2400"), ("Balance", "Rs 0")]
    words = []
    for i, (label, value) in enumerate(rows):
        y = 100 + 40 * i
        words.append(OcrWord(text=label, confidence=0.95, bbox=(50, y, 300, y + 25)))
        words.append(OcrWord(text=value, confidence=0.95, bbox=(500, y + 2, 700, y + 27)))
    words.append(OcrWord(text="Paid by card (Rs 2000)", confidence=0.95, bbox=(50, 300, 400, 325)))
    column_text = "\n".join([r[0] for r in rows] + [r[1] for r in rows] + ["Paid by card (Rs 2000)"])
    alone = extract_fields([column_text], [words], page_confidences=[0.95], today=TODAY)
    assert alone.fields["total"].source.startswith("rules:fallback")
    fx = extract_fields([column_text], [words], page_confidences=[0.95], today=TODAY,
                        layout_text_by_page=lambda: [ocr_layout_text(words)])
    assert _v(fx, "total") == "2400.00" and fx.fields["total"].source.startswith("rules:layout_")


def test_receipt_rounding_glued_currency_and_ocr_slips():
    from idp_assets.logic.numbers import find_amounts, find_dates

    # total, a rounding adjustment, then the rounded total paid: the rounded one, even though
    # subtotal + tax add up to the unrounded one
    text = ("KEDAI SDN BHD\nSUB TOTAL 32.00\nGST 6% 1.92\nTOTAL RM 33.92\nROUNDING ADJUSTMENT -RM 0.02\n"
            "TOTAL ROUNDED 33.90\nCASH RM 50.00\nCHANGE RM 16.10")
    fx = extract_fields([text], today=TODAY)
    assert _v(fx, "total") == "33.90"
    assert (_v(fx, "net_total"), _v(fx, "tax_total")) == ("32.00", "1.92")
    assert [a.value for a in find_amounts("Total RM7.00")] == [Decimal("7.00")]
    assert find_amounts("ROOM7.00") == []
    assert _v(extract_fields(["PARKING SDN BHD\nTotal RM7.00\nPaid RM7.00"], today=TODAY), "total") == "7.00"
    # a year glued to the time; a decimal point read as ':' right after the total label
    assert [d.value.isoformat() for d in find_dates("Date: 15/07/201712:07")] == ["2017-07-15"]
    assert find_dates("1/2/20231") == []
    assert _v(extract_fields(["SHOP SDN BHD\nTOTAL CASH 28:90\nCHANGE 0.00"], today=TODAY), "total") == "28.90"
    assert "total" not in extract_fields(["SHOP\nOpening hours 10:30 - 22:00"], today=TODAY).fields


def test_model_of_other_features_is_not_applied():
    from idp_assets.logic.field_rules.confidence import FEATURES, calibrated, load_model

    model = load_model()
    assert model["features"] == list(FEATURES)
    ev = {"rule": "label", "score": 0.8, "support": 0.8}
    c, review = calibrated("total", ev, model)
    assert c is not None and 0.0 < c < 1.0
    stale = dict(model, features=list(FEATURES)[:-1])
    assert calibrated("total", ev, stale) == (None, True)


def test_document_type_references_bic_and_buyer_fields():
    text = ("Nordlicht Handel GmbH · Hafenweg 3 · 24103 Kiel\nGUTSCHRIFT Nr. GS-2024-7\nRechnungsempfänger:\n"
            "Südwind AG\nUSt-IdNr. DE136695976\nBergstr. 9\n80331 München\nDatum 02.05.2024\n"
            "Ihre Bestellnummer: PO-4711\nLeitweg-ID: 04011000-12345-34\nNettobetrag 100,00 €\nUSt 19 % 19,00 €\n"
            "Gesamtbetrag 119,00 €\nZahlbetrag 119,00 €\nIBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX")
    fx = extract_fields([text], today=TODAY)
    assert _v(fx, "document_type") == "381"
    assert _v(fx, "order_reference") == "PO-4711" and _v(fx, "buyer_reference") == "04011000-12345-34"
    assert _v(fx, "bic") == "COBADEFFXXX" and _v(fx, "amount_due") == "119.00"
    assert _v(fx, "buyer_name") == "Südwind AG" and _v(fx, "buyer_vat_id") == "DE136695976"
    # the buyer's VAT ID is never the seller's
    assert "vat_id" not in fx.fields
    # no fitted confidence model for these yet: always reviewed
    assert all(fx.fields[n].needs_review for n in ("document_type", "bic", "order_reference", "buyer_name"))
    assert _v(extract_fields(["Rechnung Nr. 5\nDatum 01.02.2024"], today=TODAY), "document_type") == "380"
    # a BIC that fails python-stdnum is kept unvalidated, never trusted
    bad = extract_fields(["Invoice No. 5\nBIC: COBA1EFFXXX\nBIC: ZZZZDEFFXXX"], today=TODAY)
    assert "bic" not in bad.fields or bad.fields["bic"].needs_review


def test_print_invoices_text_layer_fields(corpus):
    """The 32 real print invoices (embedded XML removed, XML = truth, 10 fields) through the rules, as the
    pipeline reads a born-digital page (text layer, then layout lines)."""
    from idp_assets.logic.tables import pdf_layout_text

    score = _score_module(corpus)
    names = ("supplier_name", "invoice_number", "date", "total", "currency", "due_date", "net_total", "tax_total",
             "vat_id", "iban")
    hits: dict[str, list[bool]] = {k: [] for k in names}
    with open(corpus / "invoices_print" / "manifest-print.jsonl", encoding="utf-8") as fh:
        docs = [json.loads(ln) for ln in fh if ln.strip()]
    for d in docs:
        path = corpus / "invoices_print" / d["file"]
        fx = extract_fields(_pdf_pages(path), today=TODAY,
                            layout_text_by_page=lambda path=path: pdf_layout_text(path.read_bytes()))
        for k in names:
            if d["fields"].get(k) is not None:
                fv = fx.fields.get(k)
                hits[k].append(score.field_correct(k, fv.value if fv else None, d["fields"][k]))
    acc = {k: sum(v) / len(v) for k, v in hits.items() if v}
    mean = sum(acc.values()) / len(acc)
    print("invoices_print", round(mean, 4), acc)
    # measured when written (2026-12-07): mean 0.982 (0.939 before the arithmetic and party-block rules)
    assert mean >= 0.97, acc


def test_confidence_calibration_out_of_fold(corpus):
    """`idp bench fields-calibrate` refitted here: calibrated out of fold (families as folds)."""
    from idp_assets.bench.fields import DEFAULT_OCR_RESULTS, calibration_rows, fit_calibration

    rows = calibration_rows(corpus, DEFAULT_OCR_RESULTS, today=date(2026, 12, 7))
    report = fit_calibration(rows)["report"]
    print({k: {x: report[k][x] for x in ("n", "ece", "precision_at_0.9", "n_at_0.9")} for k in ("in_sample", "out_of_fold")})
    assert report["out_of_fold"]["n"] > 700
    assert report["out_of_fold"]["ece"] <= 0.05 and report["in_sample"]["ece"] <= 0.05
    # measured 0.9704 out of fold on 744 fields >= 0.9 (target 0.97, met by 22 misses: one more would miss
    # it, so the bound here is looser; README), 0.978 in-sample
    assert report["out_of_fold"]["precision_at_0.9"] >= 0.96 and report["out_of_fold"]["n_at_0.9"] >= 550
    # what is accepted without review (confidence >= 0.9 and no failed check): 0.981 out of fold (584)
    accepted = report["accepted_without_review"]["out_of_fold"]
    assert accepted["n"] > 350 and accepted["precision"] >= 0.97, accepted
