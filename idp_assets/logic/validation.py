"""Business-rule checks on extracted invoice data (pure functions, no I/O).

Every check returns a finding ``{"rule": str, "ok": bool, "message": str}`` (or ``None``
when the data needed for it is missing) so that the export's ``validation`` list and the
Dagster asset checks read the same thing.

* :func:`vat_id_is_valid` - VAT ID format and check digits (python-stdnum), every EU country + CH, GB, NO
* :func:`check_iban` / :func:`check_bic` - IBAN (country length, mod 97) and BIC (python-stdnum)
* :func:`check_tax_rate` - tax = net x one of the country's exact rates (data/vat_rates.json, with source)
* :func:`check_credit_note` - a negative total only on a credit note (UNTDID 1001 381 ...)
* :func:`check_currency` - ISO 4217 code (the maintained `iso4217` package)
* :func:`check_line_items_sum` - line totals add up to the net total (rounding tolerance)
* :func:`check_einvoice_vs_print` - the embedded XML's value against the value read from
  the printed page (a mismatch is a finding, never silently ignored)
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from iso4217 import Currency
from stdnum import bic as stdnum_bic
from stdnum import iban as stdnum_iban

__all__ = [
    "ISO_4217",
    "TAX_RATES",
    "VAT_ID_FORMATS",
    "check_bic",
    "check_credit_note",
    "check_currency",
    "check_iban",
    "iban_is_valid",
    "check_einvoice_vs_print",
    "check_line_items_sum",
    "check_tax_rate",
    "check_vat_id",
    "vat_id_is_valid",
]

# ISO 4217 codes from the maintained `iso4217` package (the ISO 4217 maintenance agency's list one)
ISO_4217 = frozenset(c.code for c in Currency)

# per-country VAT ID check (format and check digits) from python-stdnum: every EU country plus CH, NO, GB
_VAT_MODULES = {
    **{cc: "stdnum.eu.vat" for cc in ("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR",
                                      "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI",
                                      "SK", "XI")},
    "CH": "stdnum.ch.vat", "NO": "stdnum.no.mva", "GB": "stdnum.gb.vat",
}
VAT_ID_FORMATS = _VAT_MODULES  # kept name: the countries whose VAT IDs are checked

# exact VAT rates per country: idp_assets/logic/data/vat_rates.json (source in the file)
_RATES_FILE = Path(__file__).resolve().parent / "data" / "vat_rates.json"
TAX_RATES: dict[str, tuple[Decimal, ...]] = {
    cc: tuple(Decimal(x) for x in rs) for cc, rs in json.loads(_RATES_FILE.read_text(encoding="utf-8"))["rates"].items()
}
CREDIT_NOTE_TYPES = frozenset({"381", "396", "81", "83", "261", "262", "532"})  # UNTDID 1001 credit notes
DEFAULT_COUNTRY = "DE"
ROUNDING = Decimal("0.01")  # tax may differ from net x rate by the rounding of one cent per line


def _finding(rule: str, ok: bool, message: str) -> dict:
    return {"rule": rule, "ok": bool(ok), "message": message}


def normalise_vat_id(vat_id: str) -> str:
    return re.sub(r"[\s.\-]", "", vat_id or "").upper()


def vat_id_is_valid(vat_id: str) -> bool | None:
    """Format and check digits (python-stdnum) of a VAT ID of an EU country, CH, NO or GB;
    ``False`` also for an unknown prefix (not a VAT ID this check knows); ``None`` only for empty input."""
    s = normalise_vat_id(vat_id)
    if not s:
        return None
    if s.startswith("GR"):
        s = "EL" + s[2:]
    mod = _VAT_MODULES.get(s[:2])
    if mod is None:
        return False
    try:
        return bool(importlib.import_module(mod).is_valid(s))
    except Exception:  # noqa: BLE001 - a malformed value is just invalid
        return False


def check_vat_id(vat_id: str | None) -> dict | None:
    if not vat_id:
        return None
    ok = vat_id_is_valid(vat_id)
    if _VAT_MODULES.get(normalise_vat_id(vat_id)[:2].replace("GR", "EL")) is None:
        return _finding("vat_id_format", False, f"VAT ID {vat_id!r}: unknown country prefix {vat_id[:2]!r}")
    return _finding("vat_id_format", bool(ok),
                    f"VAT ID {vat_id!r} {'passes' if ok else 'FAILS'} the {normalise_vat_id(vat_id)[:2]} "
                    "format and check-digit test")


def iban_is_valid(iban: str | None) -> bool:
    """ISO 13616: country length, format and mod-97 (python-stdnum)."""
    s = re.sub(r"\s", "", iban or "").upper()
    return bool(s) and stdnum_iban.is_valid(s)


def check_iban(iban: str | None) -> dict | None:
    if not iban:
        return None
    ok = iban_is_valid(iban)
    return _finding("iban_checksum", ok, f"IBAN {iban} {'passes' if ok else 'fails'} the country length / mod-97 check")


def check_bic(bic: str | None) -> dict | None:
    if not bic:
        return None
    ok = stdnum_bic.is_valid(bic)
    return _finding("bic_format", ok, f"BIC {bic!r} {'is' if ok else 'is NOT'} a valid ISO 9362 code")


def check_credit_note(type_code: str | None, total: Decimal | None) -> dict | None:
    """A negative total belongs to a credit note (UNTDID 1001 381 ...); on an invoice (380) it
    is a finding.  Credit notes may state positive amounts (the XML convention) or negative ones."""
    if total is None or total >= 0:
        return None
    ok = type_code is not None and str(type_code) in CREDIT_NOTE_TYPES
    return _finding("credit_note_sign", ok,
                    f"negative total {total} on a {'credit note' if ok else 'document of type ' + str(type_code or 'unknown')}")


def country_of(vat_id: str | None = None, iban: str | None = None) -> str | None:
    for v in (vat_id, iban):
        s = normalise_vat_id(v or "")
        if len(s) >= 2 and s[:2].isalpha():
            return "GR" if s[:2] == "EL" else s[:2]
    return None


def check_tax_rate(net: Decimal | None, tax: Decimal | None, country: str | None = None,
                   rates: Iterable[Decimal] | None = None,
                   breakdown: Iterable[tuple[Decimal, Decimal]] | None = None) -> dict | None:
    """Tax must be ``net x rate`` for one of the country's rates (to the cent, plus a cent of
    rounding per breakdown line); with a breakdown ``[(base, rate %)]`` every rate must be a
    country rate and the per-rate taxes must add up to ``tax``.  Credit notes (negative amounts)
    are checked on absolute values.  ``None`` without net and tax."""
    if net is None or tax is None or net == 0:
        return None
    c = (country or DEFAULT_COUNTRY).upper()
    c = "GR" if c == "EL" else c
    known = tuple(rates) if rates is not None else TAX_RATES.get(c, TAX_RATES[DEFAULT_COUNTRY])
    net, tax = abs(net), abs(tax)
    rate = (tax / net * 100).quantize(Decimal("0.01"))
    parts = [(abs(Decimal(b)), Decimal(r)) for b, r in (breakdown or [])]
    if parts:
        bad = [r for _, r in parts if r not in known]
        expected = sum((b * r / 100 for b, r in parts), Decimal(0))
        ok = not bad and abs(expected - tax) <= ROUNDING * (len(parts) + 1)
        return _finding("tax_rate_plausible", ok,
                        f"tax {tax} {'=' if ok else '!='} the breakdown's {expected.quantize(Decimal('0.01'))}"
                        + (f"; {', '.join(map(str, bad))} % not a {c} rate" if bad else ""))
    near = [r for r in known if abs(net * r / 100 - tax) <= ROUNDING + net * Decimal("0.0005")]
    if near:
        return _finding("tax_rate_plausible", True, f"tax rate {rate} % is a {c} rate ({near[0]} %)")
    return _finding("tax_rate_plausible", False,
                    f"effective tax rate {rate} % is not a {c} rate ({', '.join(str(r) for r in known)} %)"
                    " (mixed rates need a per-rate breakdown)")


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
