"""Versioned schema migrations (plain numbered SQL per back end: `<backend>/NNNN_name.sql`)."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent


def migrations(backend: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) in order for a back end ('sqlite' or 'postgres')."""
    out = []
    for f in sorted((HERE / backend).glob("*.sql")):
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", f.name)
        if not m:
            raise ValueError(f"migration file {f.name} is not named NNNN_name.sql")
        out.append((int(m.group(1)), m.group(2), f.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in out]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"{backend} migrations are not numbered 1..n without gaps: {versions}")
    return out
