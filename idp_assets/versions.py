"""Code versions of the document assets: they change when what produces an asset changes.

Dagster compares an asset partition's stored `dagster/code_version` tag with the asset's
current `code_version`; a difference makes the partition *stale* (see `idp_assets.backfill`).
So the version has to cover everything that changes the output:

* `ocr_pages`: the router configuration and, for every engine the router may use, the
  engine's `version` (engine revision, its options, the installed library versions and,
  for model engines, a fingerprint of the local weights folder: `weights_fingerprint`).
* `extracted_fields`: the module revision; with LLM extraction on, also the prompt and
  a hash of the LiteLLM router config file.
* the other stages: the module revision string in the decorator (bump it when the code
  changes); `embeddings` adds its embedding model version (`resources.embedder`).

Everything is computed at definition time from the same environment as
`settings.build_resources()` and is cheap: no model is loaded, weight files are only
stat'ed and their first and last 64 KiB read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from idp_assets.fingerprints import (  # noqa: F401 - re-exported: the helpers the code versions are made of
    CONFIG_NAMES,
    WEIGHT_SUFFIXES,
    code_version,
    files_fingerprint,
    package_versions,
    short_hash,
    weights_fingerprint,
)

OCR_REVISION = "1"  # bump when idp_assets/ocr.py or the router's own code changes the pages it returns
# the field rules' data files: label vocabulary, VAT rates, fitted confidence model (`idp bench fields-calibrate`)
FIELDS_DATA_FILES = ("invoice_labels.json", "vat_rates.json", "field_confidence.json")


def _fields_data_hash() -> str:
    import hashlib

    folder = Path(__file__).resolve().parent / "logic" / "data"
    h = hashlib.sha256()
    for name in FIELDS_DATA_FILES:
        p = folder / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"missing") + b"\0")
    return h.hexdigest()[:10]


# bump the number when the field rules (idp_assets/fields.py, logic/fields.py, logic/field_rules/) change;
# the hash follows the data files by itself
FIELDS_REVISION = "3." + _fields_data_hash()

# -- per asset -------------------------------------------------------------------------------
def router_engine_names(router) -> list[str]:
    """Every engine the OCR router may hand a page to (text layer, office, image engines, forced)."""
    prefs = router.prefs()
    names = {prefs.text_engine, prefs.office_engine, *prefs.image_engines}
    if prefs.force_engine:
        names.add(prefs.force_engine)
    return sorted(names)


def engine_versions(router) -> dict[str, str]:
    """name -> engine `version` for the router's engines (`unknown engine` for unregistered names)."""
    from resources.ocr.registry import UnknownEngineError, get_engine

    out = {}
    for name in router_engine_names(router):
        try:
            out[name] = get_engine(name, **router.engine_options(name)).version
        except UnknownEngineError:
            out[name] = "unknown engine"
    return out


def ocr_code_version(router, engines: Mapping[str, str] | None = None) -> str:
    """Code version of `ocr_pages` for an `OcrRouter`: revision + hash of (router config, engine versions)."""
    engines = engine_versions(router) if engines is None else engines
    return code_version(OCR_REVISION, {"router": router.model_dump(), "engines": dict(engines)})


def llm_config_text(llm_router) -> str | None:
    """The LLM config the fields asset uses, unresolved (secrets stay `os.environ/...` references)."""
    if not llm_router.enabled:
        return None
    if llm_router.model_list:
        return json.dumps(llm_router.model_list, sort_keys=True)
    if llm_router.config_path:
        p = Path(llm_router.config_path)
        return p.read_text(encoding="utf-8") if p.is_file() else f"missing:{p}"
    return "unconfigured"


def fields_code_version(llm_router) -> str:
    """Code version of `extracted_fields`: the rules revision; with the LLM on, + prompt and config hash."""
    cfg = llm_config_text(llm_router)
    if cfg is None:
        return code_version(FIELDS_REVISION)
    from idp_assets.logic.llm_fields import LLM_FIELDS, MAX_TEXT_CHARS, build_messages

    prompt = {"messages": build_messages(""), "fields": list(LLM_FIELDS), "max_chars": MAX_TEXT_CHARS}
    return code_version(FIELDS_REVISION, {"llm_config": short_hash(cfg.encode()), "prompt": short_hash(prompt)})


def configured_resources(env: Mapping[str, str] | None = None) -> dict:
    """The deployment's resources, from the same environment as `Definitions` (settings.py)."""
    from idp_assets.settings import build_resources

    return build_resources(env=env)


def configured_ocr_code_version(env: Mapping[str, str] | None = None) -> str:
    return ocr_code_version(configured_resources(env)["ocr_router"])


def configured_fields_code_version(env: Mapping[str, str] | None = None) -> str:
    return fields_code_version(configured_resources(env)["llm_router"])
