"""Optional LLM entity extraction (task alias idp-entities) through the LiteLLM router, mocked with
litellm's `mock_response` (no network: LITELLM_LOCAL_MODEL_COST_MAP=True)."""

from __future__ import annotations

import json
import os

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported anywhere

import pytest  # noqa: E402

from idp_assets.hybrid_search import from_export, prepare_document  # noqa: E402
from idp_assets.logic.llm_entities import (  # noqa: E402
    ENTITIES_TASK,
    LLM_SOURCE,
    extract_entities_llm,
    grounded,
    parse_llm_entities,
    request_llm_entities,
)
from resources.llm import ENTITIES_TASK as ROUTER_ENTITIES_TASK  # noqa: E402
from resources.llm import LlmRouter  # noqa: E402

TEXT = (
    "Alpha Paper AG\nMusterstraße 23\n38593 Musterstadt\n"
    "Bill to: Beta Logistics GmbH, Hafenweg 4, 20457 Hamburg\n"
    "Your contact: Jana Schmidt\n"
    "Invoice number: INV-2023-000001\nDate: 12.03.2023\n"
    "Total: 22.862,44 EUR\n"
    "Please pay to IBAN DE56 1396 2982 5426 0962 07 within 30 days."
)


def _doc(text: str = TEXT):
    d = {
        "document_id": "a" * 64, "corpus_id": "llm-1",
        "source": {"uri": "file:///x/1.pdf", "filename": "1.pdf", "media_type": "application/pdf", "bytes": 10,
                   "store_uri": "file:///store/" + "a" * 64},
        "pages": [{"number": 1, "width": 0, "height": 0, "dpi": 300.0, "rotation": 0, "engine": "text_layer",
                   "compute": "cpu", "route_reason": "test", "confidence": 1.0, "text": text}],
        "tables": [],
        "fields": {
            "supplier_name": {"value": "Alpha Paper AG", "confidence": 0.9, "source": "rules:label", "page": 1},
            "invoice_number": {"value": "INV-2023-000001", "confidence": 0.9, "source": "rules:label", "page": 1},
            "total": {"value": "22862.44", "confidence": 0.9, "source": "rules:label", "page": 1},
        },
        "supplier_match": {"supplier_id": None, "name": None, "score": 0.0, "method": "none"},
    }
    return from_export(d)


def _rules():
    src, ocr, tables, fields, sup = _doc()
    chunks, entities, _ = prepare_document(src, ocr, tables, fields, sup)
    return ocr.text, chunks, entities


def _router(tmp_path, answer: str | None, aliases=(ENTITIES_TASK,), enabled: bool = True) -> LlmRouter:
    params = {"model": "openai/gpt-4o-mini", "api_key": "sk-test-not-used"}
    if answer is not None:
        params["mock_response"] = answer
    cfg = tmp_path / "llm.json"
    cfg.write_text(json.dumps({"model_list": [{"model_name": a, "litellm_params": params} for a in aliases],
                               "router_settings": {"num_retries": 0}}))
    return LlmRouter(enabled=enabled, config_path=str(cfg))


def _answer(*items) -> str:
    return json.dumps({"entities": [{"kind": k, "value": v, "evidence": e} for k, v, e in items]})


@pytest.fixture
def calls(monkeypatch):
    """Counts completions that reach litellm (the mock answers them)."""
    from litellm import Router

    seen: list[str] = []
    original = Router.completion

    def counting(self, model, messages, **kwargs):
        seen.append(model)
        return original(self, model, messages, **kwargs)

    monkeypatch.setattr(Router, "completion", counting)
    return seen


def _by_key(entities):
    return {e.key: e for e in entities}


def test_valid_json_is_validated_and_merged_rules_first(tmp_path, calls):
    text, chunks, rules = _rules()
    assert ROUTER_ENTITIES_TASK == ENTITIES_TASK
    rule_keys = {e.key for e in rules}
    assert "Person:jana schmidt" not in rule_keys  # "Your contact:" is no rule label: the LLM adds it
    answer = _answer(
        ("Person", "Jana Schmidt", "Your contact: Jana Schmidt"),
        ("Organization", "Beta Logistics GmbH", "Bill to: Beta Logistics GmbH"),
        ("Address", "Hafenweg 4, 20457 Hamburg", "Bill to: Beta Logistics GmbH, Hafenweg 4, 20457 Hamburg"),
        ("IBAN", "DE56 1396 2982 5426 0962 07", "IBAN DE56 1396 ..."),  # the rules have it: no second entity
        ("Amount", "22.862,44", "Total: 22.862,44 EUR"),  # printed German style = the rules' 22862.44
        ("Date", "12.03.2023", "Date: 12.03.2023"),  # rules lack it (no date field): added, ISO
        ("organization", "ALPHA PAPER AG", "Alpha Paper AG"),  # kind case-folded; the rules' entity wins
    )
    router = _router(tmp_path, answer)
    merged, outcome = extract_entities_llm(text, router, rules, chunks)
    assert calls == [ENTITIES_TASK]
    assert outcome.called and outcome.error is None and not outcome.dropped
    got = _by_key(merged)
    # every rule entity is still there, unchanged (rules win)
    for e in rules:
        assert got[e.key] is e and LLM_SOURCE not in e.sources
    assert got["Organization:alpha paper"].value == "Alpha Paper AG"
    assert got["Organization:alpha paper"].sources == ["field:supplier_name"]
    # the LLM-only entities, canonical and with source "llm"
    new = {k: e for k, e in got.items() if k not in rule_keys}
    assert set(new) == {"Person:jana schmidt", "Organization:beta logistics", "Address:hafenweg 4 20457 hamburg",
                        "Date:2023-03-12"}, set(new)
    assert all(e.sources == [LLM_SOURCE] and e.chunk_ids for e in new.values())
    assert new["Date:2023-03-12"].value == "2023-03-12"
    assert len([k for k in got if k.startswith("IBAN:")]) == 1 and len([k for k in got if k.startswith("Amount:")]) == 1
    # MENTIONS links go to the chunk that shows the value
    person = new["Person:jana schmidt"]
    assert all("Jana Schmidt" in c.text for c in chunks if c.chunk_id in person.chunk_ids)
    # deterministic order, as the rules order it
    assert [e.key for e in merged] == [e.key for e in extract_entities_llm(text, router, rules, chunks)[0]]
    # metadata for the asset
    md = outcome.metadata()
    assert md["kept"] == 7 and md["kept_by_kind"]["Person"] == 1 and md["error"] is None


def test_hallucinated_values_are_dropped(tmp_path, calls):
    text, chunks, rules = _rules()
    answer = _answer(
        ("Person", "Jana Schmidt", "Your contact: Jana Schmidt"),
        ("Organization", "Gamma Trading Ltd", "Gamma Trading Ltd"),  # not in the document
        ("IBAN", "GB82 WEST 1234 5698 7654 32", "IBAN GB82 ..."),  # valid checksum, not in the document
        ("Amount", "99.90", "Total: 99.90"),  # not printed
        ("InvoiceNumber", "INV-2023-00000", "Invoice number"),  # a prefix of the printed number
        ("Date", "2023-03-13", "Date"),  # one day off
        ("Person", "Jana Schmid", "Jana Schmid"),  # a truncated name is not a token of the text
    )
    merged, outcome = extract_entities_llm(text, _router(tmp_path, answer), rules, chunks)
    new = [e for e in merged if LLM_SOURCE in e.sources]
    assert [e.key for e in new] == ["Person:jana schmidt"]
    assert [d["reason"] for d in outcome.dropped] == ["not in the document text"] * 6
    assert {d["kind"] for d in outcome.dropped} == {"Organization", "IBAN", "Amount", "InvoiceNumber", "Date",
                                                   "Person"}
    # normalised comparison: case, spacing and punctuation do not matter, token boundaries do
    assert grounded("InvoiceNumber", "inv 2023 000001", text)
    assert grounded("Address", "HAFENWEG 4 20457 HAMBURG", text)
    assert grounded("Amount", "22862.44", text) and not grounded("Amount", "2862.44", text)
    assert not grounded("Organization", "Beta Logistic", text)


def test_wrong_kinds_and_malformed_items_are_dropped(tmp_path, calls):
    text, chunks, rules = _rules()
    answer = json.dumps({"entities": [
        {"kind": "Email", "value": "Jana Schmidt", "evidence": ""},  # kind outside the list
        {"kind": "PhoneNumber", "value": "20457", "evidence": ""},
        {"kind": "vat_id", "value": "DE136695976", "evidence": ""},  # allowed kind (case-folded), valid, not printed
        {"kind": "VATId", "value": "DE123456789", "evidence": ""},  # check digit fails
        {"kind": "IBAN", "value": "DE56 1396 2982 5426 0962 08", "evidence": ""},  # checksum fails
        {"kind": "Amount", "value": "twenty", "evidence": ""},  # not an amount
        {"kind": "Person", "value": "Alpha Paper AG", "evidence": ""},  # the rules read it as an Organization
        {"kind": "Person"},  # no value: malformed item
        {"kind": "Person", "value": "Jana Schmidt", "evidence": "Your contact: Jana Schmidt"},
    ]})
    merged, outcome = extract_entities_llm(text, _router(tmp_path, answer), rules, chunks)
    assert outcome.error is None
    reasons = {(d["kind"], d["reason"]) for d in outcome.dropped}
    assert ("Email", "kind not allowed") in reasons and ("PhoneNumber", "kind not allowed") in reasons
    assert ("VATId", "not in the document text") in reasons
    assert ("VATId", "not a valid VAT id") in reasons
    assert ("IBAN", "IBAN checksum fails") in reasons and ("Amount", "not an amount") in reasons
    assert any(k is None and r.startswith("invalid item") for k, r in reasons)
    new = [e.key for e in merged if LLM_SOURCE in e.sources]
    assert new == ["Person:jana schmidt"]  # the Person "Alpha Paper AG" lost to the rules' Organization
    assert all(e.kind in ("InvoiceNumber", "IBAN", "VATId", "Amount", "Date", "Person", "Organization", "Address",
                          "Product") for e in merged)
    # a bare list is read too
    items, dropped = parse_llm_entities('```json\n[{"kind": "Person", "value": "A B", "evidence": "x"}]\n```')
    assert [(i.kind, i.value) for i in items] == [("Person", "A B")] and not dropped


@pytest.mark.parametrize("answer", [
    "Sure! The entities are Jana Schmidt and Beta Logistics.",  # not JSON
    '{"entities": [{"kind": "Person", "value": "Jana Schmidt"',  # truncated JSON
    '{"people": ["Jana Schmidt"]}',  # JSON, but not the schema
    '{"entities": "Jana Schmidt"}',
])
def test_invalid_json_is_tolerated_and_reported(tmp_path, calls, answer):
    text, chunks, rules = _rules()
    merged, outcome = extract_entities_llm(text, _router(tmp_path, answer), rules, chunks)
    assert calls == [ENTITIES_TASK] and outcome.called
    assert outcome.error and outcome.error.startswith("ValueError") and not outcome.candidates
    assert [e.key for e in merged] == [e.key for e in rules]
    assert outcome.metadata()["error"] == outcome.error


def test_failing_provider_is_tolerated(tmp_path):
    text, chunks, rules = _rules()
    broken = _router(tmp_path, None).model_copy(update={"config_path": str(tmp_path / "missing.yaml")})
    merged, outcome = extract_entities_llm(text, broken, rules, chunks)
    assert outcome.error and "not found" in outcome.error and not outcome.called
    assert merged == rules


def test_disabled_or_unconfigured_makes_no_call(tmp_path, calls):
    text, chunks, rules = _rules()
    answer = _answer(("Person", "Jana Schmidt", "Your contact: Jana Schmidt"))
    for llm, why in [
        (None, "LLM disabled"),
        (LlmRouter(), "LLM disabled"),  # the default resource: off
        (_router(tmp_path, answer, enabled=False), "LLM disabled"),
        (_router(tmp_path, answer, aliases=("idp-fields",)), "task alias 'idp-entities' not in the LLM router config"),
    ]:
        merged, outcome = extract_entities_llm(text, llm, rules, chunks)
        assert merged == rules and outcome.skipped == why and not outcome.called and outcome.error is None
    assert calls == []
    assert request_llm_entities("   ", _router(tmp_path, answer)).skipped == "no text"
    assert calls == []
    # the same config with the alias: exactly one call (the counter works)
    merged, outcome = extract_entities_llm(text, _router(tmp_path, answer), rules, chunks)
    assert calls == [ENTITIES_TASK] and len(merged) == len(rules) + 1


def test_candidates_reach_both_stores_through_prepare_document(tmp_path, calls):
    """graph_nodes gets the candidates as dicts from EmbeddingsResult.llm_entities: same entities as embeddings."""
    from idp_assets.models import EmbeddingsResult

    src, ocr, tables, fields, sup = _doc()
    answer = _answer(("Person", "Jana Schmidt", "Your contact: Jana Schmidt"),
                     ("Organization", "Gamma Trading Ltd", "made up"))
    outcome = request_llm_entities(ocr.text, _router(tmp_path, answer))
    chunks, from_models, _ = prepare_document(src, ocr, tables, fields, sup, llm_entities=outcome.candidates)
    res = EmbeddingsResult(document_id=src.document_id, collection="c", model="m", chunk_ids=[], chunks=chunks,
                           dimensions=0, llm_entities=[c.model_dump() for c in outcome.candidates])
    _, from_dicts, _ = prepare_document(src, ocr, tables, fields, sup, chunks=chunks, llm_entities=res.llm_entities)
    assert [e.key for e in from_models] == [e.key for e in from_dicts]
    assert [e.key for e in from_dicts if e.sources == [LLM_SOURCE]] == ["Person:jana schmidt"]
    _, plain, _ = prepare_document(src, ocr, tables, fields, sup, chunks=chunks)
    assert len(from_dicts) == len(plain) + 1


@pytest.mark.parametrize("answer", [_answer(("Person", "Jana Schmidt", "Your contact: Jana Schmidt")), "not json"])
def test_embeddings_asset_runs_with_the_llm_and_reports_it(tmp_path, calls, answer):
    """The `embeddings` asset with the router configured: LLM entities stored, or - for an answer that is not
    JSON - the document still processes and the error shows in the materialization metadata."""
    from dagster import Output, build_asset_context

    from idp_assets.models import Tables
    from idp_assets.search import embeddings
    from resources.embedder import Embedder
    from resources.vectors import ENTITIES_COLLECTION, VectorStore

    src, ocr, tables, fields, sup = _doc()
    vs = VectorStore(path=str(tmp_path / "chroma"))
    with build_asset_context(partition_key=src.document_id) as ctx:
        events = list(embeddings(ctx, ocr_pages=ocr, normalized_tables=Tables(document_id=src.document_id,
                                                                               tables=tables),
                                 extracted_fields=fields, supplier_matches=sup, source_documents=src,
                                 embedder=Embedder(torch_threads=1), vector_store=vs,
                                 llm_router=_router(tmp_path, answer)))
    out = next(e for e in events if isinstance(e, Output))
    md = out.metadata["llm_entities"]
    md = getattr(md, "data", getattr(md, "value", md))
    assert calls == [ENTITIES_TASK] and md["called"]
    stored = vs.collection(ENTITIES_COLLECTION).get(where={"document_id": src.document_id})["metadatas"]
    people = [m["value"] for m in stored if m["kind"] == "Person"]
    if answer == "not json":
        assert md["error"].startswith("ValueError") and out.value.llm_entities == [] and people == []
    else:
        assert md["error"] is None and md["kept"] == 1 and people == ["Jana Schmidt"]
        assert out.value.llm_entities == [{"kind": "Person", "value": "Jana Schmidt",
                                           "evidence": "Your contact: Jana Schmidt"}]
