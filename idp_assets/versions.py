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

import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version as _dist_version
from pathlib import Path
from typing import Any

OCR_REVISION = "1"  # bump when idp_assets/ocr.py or the router's own code changes the pages it returns
FIELDS_REVISION = "2"  # bump when the field rules (idp_assets/fields.py, logic/fields.py) change

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".traineddata", ".model")
CONFIG_NAMES = ("config.json", "generation_config.json", "preprocessor_config.json", "tokenizer_config.json")
_SAMPLE = 64 * 1024


def short_hash(value: Any, n: int = 12) -> str:
    """Stable hex digest of a JSON-able value (keys sorted; non-JSON values by `str`)."""
    blob = value if isinstance(value, bytes) else json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def code_version(revision: str, config: Mapping[str, Any] | None = None) -> str:
    """`<revision>` alone without configuration, else `<revision>+<hash of the configuration>`."""
    return f"{revision}+{short_hash(dict(config))}" if config else str(revision)


def package_versions(names: Iterable[str]) -> list[str]:
    """`name=version` of installed distributions (`name=missing` when not installed)."""
    out = []
    for name in names:
        try:
            out.append(f"{name}={_dist_version(name)}")
        except PackageNotFoundError:
            out.append(f"{name}=missing")
    return out


def _file_digest(path: Path) -> str:
    """Name, size and a hash of the first and last 64 KiB (safetensors/GGUF headers sit at the start)."""
    st = path.stat()
    h = hashlib.sha256()
    with path.open("rb") as f:
        h.update(f.read(_SAMPLE))
        if st.st_size > 2 * _SAMPLE:
            f.seek(-_SAMPLE, 2)
            h.update(f.read(_SAMPLE))
    return f"{path.name}:{st.st_size}:{h.hexdigest()[:16]}"


def files_fingerprint(paths: Iterable[str | Path]) -> str:
    """Fingerprint of the given files (missing ones count as `name:missing`)."""
    parts = []
    for p in sorted(Path(p) for p in paths):
        parts.append(_file_digest(p) if p.is_file() else f"{p.name}:missing")
    return short_hash(parts)


def weights_fingerprint(model_dir: str | Path | None) -> str:
    """Fingerprint of a local model folder: the full text of its config files plus name, size and
    head/tail hash of every weight file (recursively).  `none` without a folder, `missing` when
    the folder does not exist.  Copying the folder elsewhere keeps the fingerprint (no mtimes)."""
    if not model_dir:
        return "none"
    root = Path(model_dir)
    if not root.is_dir():
        return "missing"
    parts = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or any(part.startswith(".") for part in p.relative_to(root).parts):
            continue
        rel = p.relative_to(root).as_posix()
        if p.name in CONFIG_NAMES:
            parts.append(f"{rel}={hashlib.sha256(p.read_bytes()).hexdigest()[:16]}")
        elif p.suffix in WEIGHT_SUFFIXES:
            parts.append(f"{rel}={_file_digest(p)}")
    return short_hash(parts) if parts else "empty"


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
