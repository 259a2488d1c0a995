"""Business-rule checks on extracted invoice data (pure functions, no I/O).

Every check returns a finding ``{"rule": str, "ok": bool, "message": str}`` (or ``None``
when the data needed for it is missing) so that the export's ``validation`` list and the
Dagster asset checks read the same thing.

* :func:`vat_id_is_valid` - VAT identification number format per EU country (+ CH, GB, NO)
* :func:`check_tax_rate` - effective tax rate ``tax / net`` against the country's rates
  (DE 0 / 7 / 19 %; the 2020 rates 5 / 16 % too)
* :func:`check_currency` - ISO 4217 code
* :func:`check_line_items_sum` - line totals add up to the net total (rounding tolerance)
* :func:`check_einvoice_vs_print` - the embedded XML's value against the value read from
  the printed page (a mismatch is a finding, never silently ignored)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal

__all__ = [
    "ISO_4217",
    "TAX_RATES",
    "VAT_ID_FORMATS",
    "check_currency",
    "check_einvoice_vs_print",
    "check_line_items_sum",
    "check_tax_rate",
    "check_vat_id",
    "vat_id_is_valid",
]

# Active ISO 4217 codes (list one, without funds / precious-metal codes)
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF
    GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
    LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB
    PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL""".split()
)

# VAT identification number formats (after removing spaces, dots and dashes)
VAT_ID_FORMATS: dict[str, str] = {
    "AT": r"ATU\d{8}",
    "BE": r"BE[01]\d{9}",
    "BG": r"BG\d{9,10}",
    "CH": r"CHE\d{9}(?:MWST|TVA|IVA)?",
    "CY": r"CY\d{8}[A-Z]",
    "CZ": r"CZ\d{8,10}",
    "DE": r"DE\d{9}",
    "DK": r"DK\d{8}",
    "EE": r"EE\d{9}",
    "EL": r"EL\d{9}",
    "ES": r"ES[A-Z0-9]\d{7}[A-Z0-9]",
    "FI": r"FI\d{8}",
    "FR": r"FR[A-HJ-NP-Z0-9]{2}\d{9}",
    "GB": r"GB(?:\d{9}|\d{12}|GD\d{3}|HA\d{3})",
    "HR": r"HR\d{11}",
    "HU": r"HU\d{8}",
    "IE": r"IE\d{7}[A-W][A-I]?|IE\d[A-Z+*]\d{5}[A-W]",
    "IT": r"IT\d{11}",
    "LT": r"LT(?:\d{9}|\d{12})",
    "LU": r"LU\d{8}",
    "LV": r"LV\d{11}",
    "MT": r"MT\d{8}",
    "NL": r"NL\d{9}B\d{2}",
    "NO": r"NO\d{9}(?:MVA)?",
    "PL": r"PL\d{10}",
    "PT": r"PT\d{9}",
    "RO": r"RO\d{2,10}",
    "SE": r"SE\d{10}01",
    "SI": r"SI\d{8}",
    "SK": r"SK\d{10}",
    "XI": r"XI(?:\d{9}|\d{12})",
}

# Standard and reduced VAT rates in percent (current and recent)
TAX_RATES: dict[str, tuple[Decimal, ...]] = {
    "DE": tuple(Decimal(x) for x in ("0", "7", "19", "5", "16")),
    "AT": tuple(Decimal(x) for x in ("0", "10", "13", "20")),
    "NL": tuple(Decimal(x) for x in ("0", "9", "21", "6")),
    "FR": tuple(Decimal(x) for x in ("0", "2.1", "5.5", "10", "20")),
    "BE": tuple(Decimal(x) for x in ("0", "6", "12", "21")),
    "CH": tuple(Decimal(x) for x in ("0", "2.5", "2.6", "3.7", "3.8", "7.7", "8.1")),
    "GB": tuple(Decimal(x) for x in ("0", "5", "20")),
    "IT": tuple(Decimal(x) for x in ("0", "4", "5", "10", "22")),
    "ES": tuple(Decimal(x) for x in ("0", "4", "10", "21")),
}
DEFAULT_COUNTRY = "DE"
RATE_TOLERANCE = Decimal("0.6")  # percentage points: rounding of tax on small nets


def _finding(rule: str, ok: bool, message: str) -> dict:
    return {"rule": rule, "ok": bool(ok), "message": message}


def normalise_vat_id(vat_id: str) -> str:
    return re.sub(r"[\s.\-]", "", vat_id or "").upper()


def vat_id_is_valid(vat_id: str) -> bool | None:
    """``True``/``False`` for a VAT ID of a known country, ``None`` for an unknown prefix."""
    s = normalise_vat_id(vat_id)
    if s.startswith("GR"):
        s = "EL" + s[2:]
    fmt = VAT_ID_FORMATS.get(s[:2])
    if fmt is None:
        return None
    return re.fullmatch(fmt, s) is not None


def check_vat_id(vat_id: str | None) -> dict | None:
    if not vat_id:
        return None
    ok = vat_id_is_valid(vat_id)
    if ok is None:
        return _finding("vat_id_format", True, f"VAT ID {vat_id!r}: no format known for prefix {vat_id[:2]!r}")
    return _finding("vat_id_format", ok,
                    f"VAT ID {vat_id!r} {'matches' if ok else 'does NOT match'} the {normalise_vat_id(vat_id)[:2]} format")


def country_of(vat_id: str | None = None, iban: str | None = None) -> str | None:
    for v in (vat_id, iban):
        s = normalise_vat_id(v or "")
        if len(s) >= 2 and s[:2].isalpha():
            return "GR" if s[:2] == "EL" else s[:2]
    return None


def check_tax_rate(net: Decimal | None, tax: Decimal | None, country: str | None = None,
                   rates: Iterable[Decimal] | None = None) -> dict | None:
    """The effective rate ``tax / net`` must be one of the country's rates, or lie between
    two of them (an invoice mixing rates).  ``None`` without net and tax."""
    if net is None or tax is None or net == 0:
        return None
    c = (country or DEFAULT_COUNTRY).upper()
    known = tuple(rates) if rates is not None else TAX_RATES.get(c, TAX_RATES[DEFAULT_COUNTRY])
    rate = (tax / net * 100).quantize(Decimal("0.01"))
    near = [r for r in known if abs(r - rate) <= RATE_TOLERANCE]
    if near:
        return _finding("tax_rate_plausible", True, f"tax rate {rate} % is a {c} rate ({near[0]} %)")
    lo, hi = min(known), max(known)
    if lo < rate < hi and len(known) > 1:
        return _finding("tax_rate_plausible", True,
                        f"effective tax rate {rate} % lies between {c} rates (mixed rates)")
    return _finding("tax_rate_plausible", False,
                    f"effective tax rate {rate} % is not a {c} rate ({', '.join(str(r) for r in known)} %)")


def check_currency(code: str | None) -> dict | None:
    if not code:
        return None
    ok = code.upper() in ISO_4217
    return _finding("currency_known", ok, f"currency {code!r} {'is' if ok else 'is NOT'} an ISO 4217 code")


def check_line_items_sum(line_totals: Iterable[Decimal | None], net: Decimal | None,
                         allowances: Decimal = Decimal("0"), label: str = "net total") -> dict | None:
    """Line totals (plus document-level allowances/charges) against the net total, within
    one cent per line."""
    amounts = list(line_totals)
    if net is None or not amounts or any(a is None for a in amounts):
        return None
    total = sum(amounts, Decimal("0")) + allowances
    tol = Decimal("0.01") * max(len(amounts), 1)
    ok = abs(total - net) <= tol
    return _finding("line_items_sum_to_net", ok,
                    f"{len(amounts)} line items sum to {total} {'=' if ok else '!='} {label} {net}")


def check_einvoice_vs_print(name: str, xml_value: str | None, printed_value: str | None,
                            printed: bool) -> dict | None:
    """The XML value of a field against the printed page: ``printed`` says whether the
    value appears on the page (in any usual form); ``printed_value`` is what the rules read
    there (``None``: nothing), quoted in the message when it differs."""
    if xml_value is None:
        return None
    if printed:
        msg = f"{name}: XML {xml_value!r} is printed on the page"
        if printed_value is not None and printed_value != xml_value:
            msg += f" (rules read {printed_value!r})"
    else:
        msg = f"{name}: XML {xml_value!r} is NOT printed on the page"
        if printed_value is not None:
            msg += f"; the rules read {printed_value!r}"
    return _finding(f"einvoice_matches_print:{name}", printed, msg)
