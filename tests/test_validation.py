"""Business-rule checks (idp_assets.logic.validation) and their use in field extraction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from idp_assets.fields import validation_check_results
from idp_assets.logic.fields import extract_fields, validate_fields
from idp_assets.logic.validation import (
    ISO_4217,
    check_bic,
    check_credit_note,
    check_currency,
    check_iban,
    check_einvoice_vs_print,
    check_line_items_sum,
    check_tax_rate,
    check_vat_id,
    country_of,
    vat_id_is_valid,
)
from idp_assets.models import FieldValue

TODAY = date(2024, 6, 1)


@pytest.mark.parametrize(
    ("vat", "ok"),
    [
        # python-stdnum: format and check digits
        ("DE136695976", True), ("DE123456789", False), ("DE 232 446 240", True), ("DE12345678", False),
        ("ATU13585627", True), ("ATU12345678", False), ("AT12345678", False), ("NL004495445B01", True),
        ("NL810433941", False), ("FR40303265045", True), ("FRIO303265045", False), ("GB980780684", True),
        ("GB123456789", False), ("BE0403170701", True), ("BE0123456789", False), ("CHE-116.281.710 MWST", True),
        ("CHE-123.456.789 MWST", False), ("NO995525828MVA", True), ("NO995525829MVA", False),
        ("EL094259216", True), ("GR094259216", True), ("IT00743110157", True), ("IT1234567890", False),
        ("XX123", False),  # an unknown prefix no longer passes
    ],
)
def test_vat_id_check_digits(vat, ok):
    assert vat_id_is_valid(vat) is ok
    finding = check_vat_id(vat)
    assert finding["rule"] == "vat_id_format" and finding["ok"] is ok


@pytest.mark.parametrize(
    ("net", "tax", "country", "ok"),
    [
        ("100.00", "19.00", "DE", True), ("100.00", "7.00", "DE", True), ("100.00", "0.00", "DE", True),
        ("496.00", "94.24", None, True),  # 19 % on the GnuAccounting sample
        ("100.00", "12.00", "DE", False),  # between 7 and 19 %: no longer passes without a breakdown
        ("100.00", "25.00", "DE", False), ("100.00", "21.00", "NL", True), ("100.00", "21.00", "DE", False),
        ("2.97", "0.56", "DE", True),  # 18.86 %: the cent of rounding on a small net
        ("100.00", "18.00", "DE", False), ("100.00", "8.10", "CH", True), ("100.00", "8.00", "CH", False),
        ("-100.00", "-19.00", "DE", True),  # credit note
        ("100.00", "25.50", "FI", True), ("100.00", "25.00", "NO", True), ("100.00", "17.00", "LU", True),
    ],
)
def test_tax_rate_exact(net, tax, country, ok):
    f = check_tax_rate(Decimal(net), Decimal(tax), country)
    assert f["rule"] == "tax_rate_plausible" and f["ok"] is ok, f
    assert check_tax_rate(None, Decimal("1"), "DE") is None and check_tax_rate(Decimal("0"), Decimal("1")) is None


def test_tax_rate_breakdown():
    mixed = [(Decimal("129.37"), Decimal("7")), (Decimal("64.40"), Decimal("19"))]
    assert check_tax_rate(Decimal("193.77"), Decimal("21.30"), "DE", breakdown=mixed)["ok"]
    assert not check_tax_rate(Decimal("193.77"), Decimal("25.00"), "DE", breakdown=mixed)["ok"]
    assert not check_tax_rate(Decimal("100"), Decimal("12"), "DE", breakdown=[(Decimal("100"), Decimal("12"))])["ok"]


def test_iban_bic_credit_note_currency_must_fail():
    assert check_iban("DE02120300000000202051")["ok"] and not check_iban("DE02120300000000202052")["ok"]
    assert not check_iban("DE0212030000000020205")["ok"]  # DE length 22
    assert check_iban("NO9386011117947")["ok"] and check_iban(None) is None
    assert check_bic("COBADEFFXXX")["ok"] and not check_bic("COBA1EFF")["ok"]
    assert check_credit_note("381", Decimal("-10"))["ok"] and not check_credit_note("380", Decimal("-10"))["ok"]
    assert check_credit_note("380", Decimal("10")) is None
    assert check_currency("CHF")["ok"] and not check_currency("XYZ")["ok"] and not check_currency("DEM")["ok"]
    assert len(ISO_4217) > 150 and "EUR" in ISO_4217


def test_currency_line_sum_and_cross_check():
    assert check_currency("EUR")["ok"] and check_currency("myr")["ok"] and not check_currency("EUX")["ok"]
    assert check_currency(None) is None
    ok = check_line_items_sum([Decimal("84.95"), Decimal("719.40")], Decimal("804.35"))
    bad = check_line_items_sum([Decimal("84.95"), Decimal("719.40")], Decimal("809.34"))
    assert ok["ok"] and not bad["ok"] and "809.34" in bad["message"]
    assert check_line_items_sum([Decimal("1"), None], Decimal("1")) is None
    f = check_einvoice_vs_print("total", "963.11", "963.12", False)
    assert f["rule"] == "einvoice_matches_print:total" and f["ok"] is False and "963.12" in f["message"]
    g = check_einvoice_vs_print("supplier_name", "ACME GmbH", "ACME", True)  # printed, rules read less
    assert g["ok"] is True and "ACME" in g["message"]
    assert check_einvoice_vs_print("total", None, "1", False) is None
    assert country_of("ATU12345678") == "AT" and country_of(None, "NL50INGB0683251309") == "NL"
    assert country_of("EL123456789") == "GR" and country_of(None, None) is None


def _fv(v):
    return FieldValue(value=v, confidence=0.9, source="test")


def test_validate_fields_full_list():
    fields = {"net_total": _fv("100.00"), "tax_total": _fv("25.00"), "total": _fv("125.00"),
              "vat_id": _fv("DE12345678"), "currency": _fv("EUX"), "date": _fv("2024-05-01")}
    res = {f["rule"]: f["ok"] for f in validate_fields(fields, today=TODAY)}
    assert res == {"totals_consistent": True, "tax_rate_plausible": False, "vat_id_format": False,
                   "currency_known": False, "date_not_in_future": True}
    checks = {c.check_name: c.passed for c in validation_check_results(validate_fields(fields, today=TODAY))}
    assert checks["tax_rate_plausible"] is False and checks["vat_id_format"] is False
    assert checks["net_plus_tax_is_gross"] is True and checks["iban_checksum"] is True  # nothing to check


def test_einvoice_mismatch_with_print_is_a_finding():
    text = "Rechnung Nr. RE-1\nRechnungsdatum: 01.03.2024\nGesamtbetrag 120,00 EUR\nNetto 100,00 EUR\nMwSt 19 % 20,00 EUR"
    einv = {"invoice_number": "RE-1", "issue_date": "2024-03-01", "supplier_name": "A GmbH", "currency": "EUR",
            "gross_total": "119.00", "net_total": "100.00", "tax_total": "19.00", "line_items": []}
    fx = extract_fields([text], einvoice=einv, today=TODAY)
    res = {f["rule"]: f for f in fx.validation}
    assert fx.fields["total"].value == "119.00" and fx.fields["total"].source == "einvoice_xml"
    assert res["einvoice_matches_print:total"]["ok"] is False
    assert res["einvoice_matches_print:invoice_number"]["ok"] is True
    assert res["einvoice_matches_print:date"]["ok"] is True  # 01.03.2024 printed
    assert res["einvoice_matches_print:net_total"]["ok"] is True
    assert "einvoice_matches_print:currency" in res
    assert res["totals_consistent"]["ok"] is True and res["tax_rate_plausible"]["ok"] is True


def test_line_items_against_xml_line_total(corpus):
    from idp_assets.fields import line_items_validation
    from idp_assets.logic.einvoice import extract_einvoice
    from idp_assets.logic.tables import document_tables, normalize_table
    from idp_assets.models import Tables

    # weclapp: 84.95 + 719.40 = 804.35 = LineTotalAmount; the net (809.34) adds a charge
    e = extract_einvoice((corpus / "einvoices" / "einvoice-mustangbeispiel20221026.pdf").read_bytes())
    fx = extract_fields([""], einvoice=e, today=TODAY)
    tables = Tables(document_id="x", tables=[normalize_table(t) for t in document_tables(None, None, e)])
    (f,) = line_items_validation(fx.fields, tables, e)
    assert f["ok"] and "804.35" in f["message"] and "LineTotalAmount" in f["message"]
    (g,) = line_items_validation(fx.fields, tables, None)  # without the XML sum: against the net total
    assert not g["ok"] and "809.34" in g["message"]
