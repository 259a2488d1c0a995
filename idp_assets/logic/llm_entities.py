"""Optional LLM entity extraction (task alias ``idp-entities``) merged with the rule entities.

The rules in :mod:`idp_assets.logic.entities` stay the backbone; an LLM (through the LiteLLM
router resource :class:`resources.llm.LlmRouter`) can add the entities rules miss - mostly
names: persons, organisations, addresses, products.  Nothing the model says is taken on trust:

* the answer must be JSON ``{"entities": [{"kind", "value", "evidence"}, ...]}`` (a bare list is
  accepted too), validated with pydantic; an answer that is not such JSON is an *error* of the
  call (reported, the document keeps its rule entities), a malformed item is dropped;
* kinds outside :data:`~idp_assets.logic.entities.ENTITY_KINDS` are dropped;
* values are canonicalised per kind (amounts as plain decimals, dates ISO, identifiers without
  spaces) and must be readable as that kind (an IBAN must pass its checksum, a VAT id of a known
  country its national format);
* hallucination guard: the value must occur in the document text - compared normalised
  (case, spacing and punctuation ignored, on token boundaries; amounts and dates in any printed
  form) - or it is dropped;
* merge: a value the rules already found is the rules' entity (rules win); a value the rules
  read as another kind is dropped; every other value becomes an entity with source ``"llm"``,
  linked to the chunks that show it.

When the router is disabled, or its config has no ``idp-entities`` alias, nothing is called.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from idp_assets.logic.entities import (
    ENTITY_KINDS,
    IDENTIFIER_KINDS,
    Entity,
    entity_key,
    normalize_value,
)
from idp_assets.logic.numbers import find_dates, parse_amount, parse_date
from idp_assets.logic.suppliers import iban_valid
from idp_assets.logic.validation import vat_id_is_valid

__all__ = [
    "ENTITIES_SCHEMA", "ENTITIES_TASK", "LLM_SOURCE", "LlmEntity", "LlmEntitiesOutcome", "build_messages",
    "extract_entities_llm", "grounded", "merge_llm_entities", "parse_llm_entities", "request_llm_entities",
]

ENTITIES_TASK = "idp-entities"
LLM_SOURCE = "llm"
MAX_TEXT_CHARS = 12000  # document text sent to the model
MAX_ENTITIES = 200  # candidates read from one answer (the rest is reported as dropped)
MAX_VALUE_CHARS = 200

_KIND_HINTS = {
    "InvoiceNumber": "the invoice / receipt / document number",
    "IBAN": "a bank account IBAN",
    "VATId": "a VAT / tax / GST registration number",
    "Amount": "a monetary amount (totals, taxes, line amounts)",
    "Date": "a calendar date",
    "Person": "a named person (contact, cashier, managing director)",
    "Organization": "a company, shop or institution name",
    "Address": "a postal address (street, postcode, city)",
    "Product": "a product or service sold",
}

ENTITIES_SCHEMA: dict = {
    "type": "object",
    "properties": {
        "entities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string", "enum": list(ENTITY_KINDS)},
                    "value": {"type": "string", "description": "the value exactly as printed in the text"},
                    "evidence": {"type": "string", "description": "the text line the value was read from"},
                },
                "required": ["kind", "value", "evidence"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["entities"],
    "additionalProperties": False,
}


class LlmEntity(BaseModel):
    """One entity as the model states it (after canonicalisation: the value in the kind's form)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, coerce_numbers_to_str=True)

    kind: str
    value: str
    evidence: str = ""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    entities: list[Any]


@dataclass
class LlmEntitiesOutcome:
    """What one LLM request gave: the grounded candidates, what was dropped and why, any error."""

    task: str = ENTITIES_TASK
    called: bool = False
    skipped: str | None = None  # why nothing was called (disabled, alias not configured, no text)
    candidates: list[LlmEntity] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)  # {"kind", "value", "reason"}
    error: str | None = None  # call failed or the answer was not the JSON asked for

    def metadata(self, max_dropped: int = 20) -> dict:
        """A JSON-able summary for asset metadata."""
        return {
            "task": self.task,
            "called": self.called,
            "skipped": self.skipped,
            "error": self.error,
            "kept": len(self.candidates),
            "kept_by_kind": {k: sum(c.kind == k for c in self.candidates) for k in ENTITY_KINDS
                             if any(c.kind == k for c in self.candidates)},
            "dropped": len(self.dropped),
            "dropped_sample": self.dropped[:max_dropped],
        }


def build_messages(text: str) -> list[dict]:
    kinds = "\n".join(f"- {k}: {h}" for k, h in _KIND_HINTS.items())
    return [
        {"role": "system", "content": (
            "You extract named entities from the OCR text of a business document (invoice, receipt, letter; "
            "German, English, French or Malay). Answer only with JSON matching the schema: "
            '{"entities": [{"kind": ..., "value": ..., "evidence": ...}]}. Allowed kinds:\n' + kinds + "\n"
            "Copy each value exactly as printed in the text; evidence is the line it appears on. "
            "Never guess or complete values that are not printed; leave out anything unsure.")},
        {"role": "user", "content": (text or "")[:MAX_TEXT_CHARS]},
    ]


def _json_payload(content: str) -> Any:
    """The JSON value in the model's answer (code fences and chatter around it tolerated)."""
    s = (content or "").strip()
    s = re.sub(r"^```(?:json)?\s*|\s*```$", "", s)
    try:
        return json.loads(s)
    except ValueError:
        pass
    for pat in (r"\{.*\}", r"\[.*\]"):
        m = re.search(pat, s, re.S)
        if m:
            try:
                return json.loads(m.group(0))
            except ValueError:
                continue
    raise ValueError(f"the answer is not JSON: {s[:120]!r}")


def parse_llm_entities(content: str) -> tuple[list[LlmEntity], list[dict]]:
    """(items, dropped) of an answer; raises ``ValueError`` when it is not the JSON asked for.

    Items are validated one by one: a malformed item is dropped (with the reason), not the answer."""
    data = _json_payload(content)
    if isinstance(data, list):
        data = {"entities": data}
    try:
        answer = _Answer.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"the answer does not match the entities schema: {e.errors()[0]['msg']}") from e
    items: list[LlmEntity] = []
    dropped: list[dict] = []
    for raw in answer.entities:
        try:
            items.append(LlmEntity.model_validate(raw))
        except ValidationError as e:
            dropped.append({"kind": None, "value": str(raw)[:80], "reason": f"invalid item: {e.errors()[0]['msg']}"})
    return items, dropped


_KIND_BY_FOLD = {re.sub(r"[^a-z]", "", k.lower()): k for k in ENTITY_KINDS}


def _kind(kind: str) -> str | None:
    """The allowed kind a stated kind names (case / separators ignored: "vat_id" -> VATId), else None."""
    return _KIND_BY_FOLD.get(re.sub(r"[^a-z]", "", (kind or "").lower()))


def _canonical(kind: str, value: str) -> tuple[str | None, str]:
    """(value in the kind's canonical form or None, reason when None)."""
    v = " ".join(unicodedata.normalize("NFKC", value or "").split())
    if not v:
        return None, "empty value"
    if len(v) > MAX_VALUE_CHARS:
        return None, "value too long"
    if kind == "Amount":
        a = parse_amount(v)
        return (f"{a:.2f}", "") if a is not None else (None, "not an amount")
    if kind == "Date":
        d = parse_date(v)
        return (d.isoformat(), "") if d is not None else (None, "not a date")
    if kind == "IBAN":
        s = re.sub(r"\s", "", v).upper()
        return (s, "") if iban_valid(s) else (None, "IBAN checksum fails")
    if kind == "VATId":
        s = re.sub(r"[\s.\-]", "", v).upper()
        return (s, "") if vat_id_is_valid(s) is not False else (None, "not a valid VAT id")
    if kind in IDENTIFIER_KINDS and len(normalize_value(kind, v)) < 3:
        return None, "identifier too short"
    if not re.search(r"\w", v):
        return None, "no letters or digits"
    return v, ""


def _squash(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text or "").casefold() if ch.isalnum())


def _token_pattern(value: str) -> re.Pattern | None:
    """The value's letters and digits in order, any spacing / punctuation between them, on token boundaries."""
    chars = _squash(value)
    if len(chars) < 2:
        return None
    body = r"[\W_]*".join(re.escape(c) for c in chars)
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])")


def grounded(kind: str, value: str, text: str) -> bool:
    """Does the (canonical) value occur in the text?  Normalised comparison: case, spacing and punctuation
    ignored, token boundaries respected; amounts in any printed form (1.234,50 / 1,234.50), dates in any
    format the date reader knows."""
    if not text:
        return False
    if kind == "Amount":
        target = parse_amount(value)
        if target is None:
            return False
        t = unicodedata.normalize("NFKC", text)
        tokens = re.findall(r"\d[\d.,']*\d|\d", t) + re.findall(r"\d{1,3}(?: \d{3})+(?:[.,]\d{1,2})?", t)
        return any((a := parse_amount(tok)) is not None and abs(a) == abs(target) for tok in tokens)
    if kind == "Date":
        return any(m.value.isoformat() == value for m in find_dates(text))
    pat = _token_pattern(value)
    if pat is None:
        return False
    return bool(pat.search(unicodedata.normalize("NFKC", text).casefold()))


def _screen(items: list[LlmEntity], text: str) -> tuple[list[LlmEntity], list[dict]]:
    """Allowed kind, readable value, grounded in the text; duplicates removed. (kept, dropped)"""
    kept: list[LlmEntity] = []
    dropped: list[dict] = []
    seen: set[str] = set()
    for i, it in enumerate(items):
        if i >= MAX_ENTITIES:
            dropped.append({"kind": it.kind, "value": it.value[:80], "reason": f"over {MAX_ENTITIES} entities"})
            continue
        kind = _kind(it.kind)
        if kind is None:
            dropped.append({"kind": it.kind, "value": it.value[:80], "reason": "kind not allowed"})
            continue
        value, why = _canonical(kind, it.value)
        if value is None:
            dropped.append({"kind": kind, "value": it.value[:80], "reason": why})
            continue
        if not grounded(kind, value, text):
            dropped.append({"kind": kind, "value": it.value[:80], "reason": "not in the document text"})
            continue
        key = entity_key(kind, normalize_value(kind, value))
        if key in seen:
            continue
        seen.add(key)
        kept.append(LlmEntity(kind=kind, value=value, evidence=it.evidence[:MAX_VALUE_CHARS]))
    return kept, dropped


def _configured(llm, task: str) -> str | None:
    """None when ``llm`` can answer ``task``; else why not (raises when its config cannot be read)."""
    if llm is None or not getattr(llm, "enabled", False):
        return "LLM disabled"
    tasks = llm.tasks() if hasattr(llm, "tasks") else [task]
    if task not in tasks:
        return f"task alias {task!r} not in the LLM router config"
    return None


def request_llm_entities(text: str, llm, task: str = ENTITIES_TASK) -> LlmEntitiesOutcome:
    """Ask the model (``llm.complete_json(task, messages, schema)``) for the entities of ``text`` and screen
    the answer.  Never raises: a disabled / unconfigured router gives ``skipped``, a failing call or an answer
    that is not the JSON asked for gives ``error`` and no candidates."""
    out = LlmEntitiesOutcome(task=task)
    try:
        out.skipped = _configured(llm, task)
    except Exception as e:  # unreadable router config
        out.error = f"{type(e).__name__}: {e}"[:300]
        return out
    if out.skipped:
        return out
    if not (text or "").strip():
        out.skipped = "no text"
        return out
    out.called = True
    try:
        content = llm.complete_json(task, build_messages(text), ENTITIES_SCHEMA)
        items, out.dropped = parse_llm_entities(content)
    except Exception as e:  # provider down, timeout, invalid JSON: the rule entities stay
        out.error = f"{type(e).__name__}: {e}"[:300]
        return out
    out.candidates, more = _screen(items, text)
    out.dropped += more
    return out


def _evidence_chunk(evidence: str, chunks) -> str | None:
    ev = _squash(evidence)
    if len(ev) < 4:
        return None
    for c in chunks:
        if ev in _squash(c.text):
            return c.chunk_id
    return None


def merge_llm_entities(rule_entities: list[Entity], candidates: list[LlmEntity] | list[dict],
                       chunks) -> list[Entity]:
    """Rule entities plus the LLM-only candidates (source ``"llm"``), in the rules' deterministic order.

    Rules win: a candidate with a rule entity's key adds nothing; a candidate whose text the rules read as
    another kind (an "Amount" that is the rules' invoice number) is left out.  Each new entity is linked to
    the chunks that show it (else the chunk with its evidence, else the document's first chunk)."""
    if not chunks:
        return list(rule_entities)
    by_key = {e.key: e for e in rule_entities}
    rule_text = {_squash(e.value): e.kind for e in rule_entities}
    rule_text.update({_squash(e.norm): e.kind for e in rule_entities})
    added: dict[str, Entity] = {}
    for c in candidates:
        cand = c if isinstance(c, LlmEntity) else LlmEntity.model_validate(c)
        norm = normalize_value(cand.kind, cand.value)
        if not norm:
            continue
        key = entity_key(cand.kind, norm)
        if key in by_key or key in added:
            continue
        other = rule_text.get(_squash(cand.value))
        if other is not None and other != cand.kind:
            continue
        ent = Entity(kind=cand.kind, value=cand.value, norm=norm, sources=[LLM_SOURCE])
        ent.chunk_ids = [ch.chunk_id for ch in chunks if grounded(cand.kind, cand.value, ch.text)]
        if not ent.chunk_ids:
            ent.chunk_ids = [_evidence_chunk(cand.evidence, chunks) or chunks[0].chunk_id]
        added[key] = ent
    merged = list(rule_entities) + list(added.values())
    return sorted(merged, key=lambda e: (ENTITY_KINDS.index(e.kind), e.norm))


def extract_entities_llm(text: str, llm, rule_entities: list[Entity] | None = None, chunks=None,
                         task: str = ENTITIES_TASK) -> tuple[list[Entity], LlmEntitiesOutcome]:
    """The rule entities merged with the LLM's grounded entities of ``text``, and the request's outcome.

    ``llm``: the :class:`resources.llm.LlmRouter` (or anything with ``enabled``, ``tasks()`` and
    ``complete_json``); disabled or without the ``idp-entities`` alias nothing is called and the rule
    entities come back unchanged.  ``chunks``: the document's chunks (for MENTIONS links)."""
    outcome = request_llm_entities(text, llm, task)
    rules = list(rule_entities or [])
    if not outcome.candidates:
        return rules, outcome
    return merge_llm_entities(rules, outcome.candidates, chunks or []), outcome
