"""A candidate value for a field and the text helpers every rule uses (lines, labels)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Candidate:
    value: str
    raw: str
    page: int
    line: int
    rule: str
    strength: float
    validated: bool = True


_SP = r"[ \t]*"
# label must not continue a longer word on the left ("Kunden-Nr", "Auftrags-Nr")
_LB = r"(?<![\w\-/])"


def _norm_line(s: str) -> str:
    s = unicodedata.normalize("NFKC", s)
    return s.replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", "-")


def _labels(spec: Sequence[tuple[str, float]]) -> list[tuple[re.Pattern, float]]:
    return [(re.compile(_LB + "(?:" + rx + r")(?![\w])", re.IGNORECASE), w) for rx, w in spec]


def _lines(pages: Sequence[str]) -> list[tuple[int, int, str]]:
    """(page 1-based, line index within page, normalised line text)"""
    out = []
    for pno, text in enumerate(pages, start=1):
        for i, ln in enumerate((text or "").splitlines()):
            ln = _norm_line(ln).strip()
            if ln:
                out.append((pno, i, ln))
    return out


def _after(line: str, m: re.Match) -> str:
    return line[m.end():]


_SEP_PREFIX = re.compile(r"^[\s:#.\-=]*")
