"""Tax / company identifiers of a supplier, checked per scheme (python-stdnum where it has one).

A master row's ``vat_id`` / ``tax_number`` column holds identifiers of many countries (EU VAT,
Swiss UID, UK VAT, Indian GSTIN, Malaysian SST/GST, US EIN, German Steuernummer, SIREN ...).
`classify` names the scheme from the value's prefix or the row's country and checks it:

* ``verified``   - the scheme's validator (check digits) accepts it;
* ``unverified`` - the scheme is unknown, or its validator rejects it (sample IDs such as
  ``DE123456789`` fail the German check digit), or only a format is known.

An identifier is never a reason to drop a supplier: the caller keeps unverified values (for exact
lookups) and reports a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stdnum.exceptions import ValidationError

EU_PREFIXES = {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "EL", "ES", "FI", "FR", "HR", "HU", "IE", "IT",
               "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "XI"}


@dataclass(frozen=True)
class IdCheck:
    value: str  # normalised (separators removed, upper case)
    scheme: str | None  # 'eu.vat', 'ch.uid', 'gb.vat', 'in.gstin', 'us.ein', 'my.sst', 'my.gst', 'de.stnr', ...
    verified: bool
    note: str = ""


def normalize(value: str | None) -> str:
    return re.sub(r"[^A-Z0-9]", "", (value or "").upper())


def _stdnum(module, value: str) -> tuple[bool, str]:
    try:
        module.validate(value)
        return True, ""
    except ValidationError as e:
        return False, str(e) or type(e).__name__


def classify(value: str | None, country: str | None = None) -> IdCheck | None:
    """Scheme and validity of one identifier; None for an empty value."""
    v = normalize(value)
    if not v:
        return None
    cc = (country or "").upper()[:2]
    if v.startswith("CHE") and v[3:].isdigit():
        from stdnum.ch import uid

        ok, why = _stdnum(uid, v)
        return IdCheck(v, "ch.uid", ok, why)
    if v[:2] in ("GB", "XI") and v[2:].isdigit() or (cc == "GB" and v.isdigit() and len(v) in (9, 12)):
        from stdnum.gb import vat as gbvat

        ok, why = _stdnum(gbvat, v if v[:2] in ("GB", "XI") else "GB" + v)
        return IdCheck(v, "gb.vat", ok, why)
    if v[:2] in EU_PREFIXES or v[:2] == "GR":
        from stdnum.eu import vat

        ok, why = _stdnum(vat, v)
        return IdCheck(v, "eu.vat", ok, why)
    if re.fullmatch(r"\d{2}[A-Z]{5}\d{4}[A-Z][0-9A-Z]Z[0-9A-Z]", v):
        from stdnum.in_ import gstin

        ok, why = _stdnum(gstin, v)
        return IdCheck(v, "in.gstin", ok, why)
    if cc == "MY" or re.fullmatch(r"[A-Z]\d{2}\d{4}\d{8}", v):
        # Royal Malaysian Customs: SST registration 'W10-1808-31000060' (format only; no check digit published),
        # GST registration 12 digits (format only)
        if re.fullmatch(r"[A-Z]\d{2}\d{4}\d{8}", v):
            return IdCheck(v, "my.sst", False, "format only (no check digit)")
        if re.fullmatch(r"\d{12}", v):
            return IdCheck(v, "my.gst", False, "format only (no check digit)")
    if cc == "US" and re.fullmatch(r"\d{9}", v):
        from stdnum.us import ein

        ok, why = _stdnum(ein, v)
        return IdCheck(v, "us.ein", ok, why)
    if cc == "FR" and re.fullmatch(r"\d{9}|\d{14}", v):
        from stdnum.fr import siren, siret

        ok, why = _stdnum(siren if len(v) == 9 else siret, v)
        return IdCheck(v, "fr.siren" if len(v) == 9 else "fr.siret", ok, why)
    if cc in ("DE", "") and re.fullmatch(r"\d{10,13}", v):
        from stdnum.de import stnr

        ok, why = _stdnum(stnr, v)
        if ok:
            return IdCheck(v, "de.stnr", True)
    if cc == "CH" and v.isdigit() and len(v) == 9:
        from stdnum.ch import uid

        ok, why = _stdnum(uid, "CHE" + v)
        return IdCheck(v, "ch.uid", ok, why)
    return IdCheck(v, None, False, "scheme unknown")


def warning_for(column: str, raw: str, chk: IdCheck) -> str | None:
    """The per-row import warning for an identifier that is kept but not verified."""
    if chk.verified:
        return None
    if chk.scheme is None:
        return f"{column} {raw!r}: scheme unknown, kept as unverified identifier"
    return f"{column} {raw!r}: not verified as {chk.scheme} ({chk.note}), kept as unverified identifier"
