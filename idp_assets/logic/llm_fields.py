"""Optional LLM field extraction (task alias ``idp-fields``) merged with the rule results.

* :data:`FIELDS_SCHEMA` - the JSON schema the model must answer in
* :func:`build_messages` - the prompt (document text, truncated)
* :func:`parse_llm_fields` - the answer normalised (ISO dates, plain decimals, ISO 4217
  codes, IBAN without spaces); unreadable values dropped
* :func:`merge_llm_fields` - rules stay first: an LLM value that agrees with a rule value
  leaves its (fitted) confidence alone, one that disagrees marks the field ``needs_review``
  (and is reported), and a field the rules did not find is taken from the LLM (source
  ``llm:idp-fields``) marked ``needs_review`` with confidence 0.0 = *unmeasured*: there is no
  development data to fit an LLM confidence on, so none is invented (findings say whether the
  value is printed in the text and validates).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from idp_assets.models import FieldValue

from .numbers import parse_amount, parse_date
from .validation import ISO_4217, vat_id_is_valid

__all__ = ["FIELDS_SCHEMA", "LLM_FIELDS", "build_messages", "extract_with_llm", "merge_llm_fields", "parse_llm_fields"]

LLM_FIELDS = ("supplier_name", "vat_id", "iban", "invoice_number", "date", "due_date", "net_total", "tax_total",
              "total", "currency", "buyer_name")
_AMOUNTS = ("net_total", "tax_total", "total")
_DATES = ("date", "due_date")
FIELDS_SCHEMA: dict = {
    "type": "object",
    "properties": {
        **{k: {"type": ["string", "null"]} for k in LLM_FIELDS},
        "date": {"type": ["string", "null"], "description": "invoice date, YYYY-MM-DD"},
        "due_date": {"type": ["string", "null"], "description": "payment due date, YYYY-MM-DD"},
        "total": {"type": ["string", "null"], "description": "gross total as printed"},
        "currency": {"type": ["string", "null"], "description": "ISO 4217 code"},
    },
    "required": list(LLM_FIELDS),
    "additionalProperties": False,
}
MAX_TEXT_CHARS = 12000
UNMEASURED = 0.0  # confidence of an LLM-only value: no fitted model, so `needs_review` instead of a number


def build_messages(text: str) -> list[dict]:
    return [
        {"role": "system", "content": (
            "You extract invoice header fields from OCR text of an invoice or receipt (German, English or French). "
            "Answer only with JSON matching the schema. Use null for anything not printed in the text; never guess. "
            "supplier_name is the issuing company, buyer_name the customer. Dates as YYYY-MM-DD; amounts as printed.")},
        {"role": "user", "content": text[:MAX_TEXT_CHARS]},
    ]


def _norm(name: str, v) -> str | None:
    if v is None:
        return None
    s = " ".join(str(v).split())
    if not s or s.lower() in ("null", "none", "n/a"):
        return None
    if name in _AMOUNTS:
        a = parse_amount(s)
        return None if a is None else str(a)
    if name in _DATES:
        d = parse_date(s)
        return None if d is None else d.isoformat()
    if name == "currency":
        return s.upper() if s.upper() in ISO_4217 else None
    if name == "iban":
        return re.sub(r"\s", "", s).upper()
    if name == "vat_id":
        return re.sub(r"[\s.\-]", "", s).upper()
    return s


def parse_llm_fields(content: str) -> dict[str, str]:
    """The model's JSON answer normalised; ``{}`` for an answer that is not a JSON object."""
    m = re.search(r"\{.*\}", content or "", re.S)
    if not m:
        return {}
    try:
        data = json.loads(m.group(0))
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for k in LLM_FIELDS:
        v = _norm(k, data.get(k))
        if v is not None:
            out[k] = v
    return out


def _same(name: str, a: str, b: str) -> bool:
    if name in _AMOUNTS:
        return parse_amount(a) == parse_amount(b)
    f = (lambda x: re.sub(r"[^0-9a-z]", "", x.casefold()))
    return f(a) == f(b)


def _grounded(name: str, value: str, text: str) -> bool:
    """The value (or, for amounts and dates, a printed form of it) occurs in the text."""
    if name in _AMOUNTS:
        target = parse_amount(value)
        return any(parse_amount(t) == target for t in re.findall(r"-?\d[\d.,' ]*\d|\d", text))
    if name in _DATES:
        from .numbers import find_dates

        return any(d.value.isoformat() == value for d in find_dates(text))
    squash = (lambda x: re.sub(r"[^0-9a-z]", "", x.casefold()))
    return bool(squash(value)) and squash(value) in squash(text)


def _valid(name: str, value: str) -> bool:
    if name == "iban":
        from .fields import iban_is_valid

        return iban_is_valid(value)
    if name == "vat_id":
        return vat_id_is_valid(value) is not False
    return True


def merge_llm_fields(fields: dict[str, FieldValue], llm: dict[str, str], text: str,
                     task: str = "idp-fields") -> tuple[dict[str, FieldValue], list[dict]]:
    """Rule fields combined with the LLM's answer (see module doc); findings for
    disagreements (``llm_agrees:<field>``)."""
    out = dict(fields)
    findings: list[dict] = []
    for name, value in llm.items():
        rule = out.get(name)
        if rule is not None and rule.value is not None:
            if not _same(name, rule.value, value):
                out[name] = rule.model_copy(update={"needs_review": True})
                findings.append({"rule": f"llm_agrees:{name}", "ok": False,
                                 "message": f"{name}: rules read {rule.value!r}, the LLM ({task}) {value!r}"})
            continue
        grounded = _grounded(name, value, text)
        valid = _valid(name, value)
        if not grounded or not valid:
            findings.append({"rule": f"llm_agrees:{name}", "ok": False,
                             "message": f"{name}: the LLM's {value!r} is "
                             + ("not printed in the text" if not grounded else "not a valid value")})
        out[name] = FieldValue(value=value, confidence=UNMEASURED, source=f"llm:{task}", raw=None, needs_review=True)
    return out, findings


def extract_with_llm(complete_json: Callable[[str, list[dict], dict], str], text: str,
                     task: str = "idp-fields") -> dict[str, str]:
    """Ask ``complete_json(task, messages, schema)`` and parse the answer."""
    if not text.strip():
        return {}
    return parse_llm_fields(complete_json(task, build_messages(text), FIELDS_SCHEMA))
