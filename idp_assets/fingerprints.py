"""Stable fingerprints: hashes of JSON-able values, installed package versions, files and model folders.

The building blocks of the assets' code versions (`idp_assets.versions`), also used by the OCR
engines for their own `version` (`resources.ocr`).  Standard library only: anything may import it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version as _dist_version
from pathlib import Path
from typing import Any

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
