"""Engine that 'reads' the born-digital PDF text layer extracted by load_document."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from idp_assets.logic.pages import text_validity
from idp_assets.models import RawPage
from resources.ocr.base import EngineError, EngineOptions, EngineOutput, OcrEngine
from resources.ocr.registry import register_engine

# UTF-8 text decoded as Latin-1/cp1252 ("FÃ¼r", "â‚¬"): each hit is a broken character
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac[\u0080-\u00bf\u2018-\u201e\u2122\u0153\u0161]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def text_layer_confidence(text: str) -> float | None:
    """Share of non-whitespace characters that are properly mapped Unicode.

    Measures the integrity of the extraction: unmapped glyphs (control and
    private-use characters, U+FFFD) and mojibake pairs count as wrong.  It
    cannot see a font whose ToUnicode map is consistently wrong, so 1.0 means
    "every character decoded", not "proof-read".  None for no text.
    """
    if not any(not ch.isspace() for ch in text):
        return None
    ratio = text_validity(text)
    chars = sum(1 for ch in text if not ch.isspace())
    bad_pairs = len(_MOJIBAKE.findall(text))
    return max(0.0, ratio - 2 * bad_pairs / chars)


def tidy_text(text: str) -> str:
    """Drop unmapped characters, make all spaces plain, keep line structure."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if ch == "\ufffd" or cat in ("Cc", "Cs", "Co", "Cn"):
            continue
        out.append(" " if cat.startswith("Z") or ch == "\t" else ch)
    lines = [_SPACES.sub(" ", line).strip() for line in "".join(out).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class TextLayerOptions(EngineOptions):
    kind: Literal["text_layer"] = "text_layer"


@register_engine
class TextLayerEngine(OcrEngine):
    """Born-digital text: no recognition, only cleaning; confidence = mapped-character share."""

    name = "text_layer"
    compute = "cpu"
    inputs = frozenset({"pdf_text"})
    options_class = TextLayerOptions

    def read(self, page_image, raw_page: RawPage) -> EngineOutput:
        raw_text = raw_page.text_layer or ""
        confidence = text_layer_confidence(raw_text)
        text = tidy_text(raw_text)
        if not text:
            confidence = None
        return EngineOutput(
            text=text,
            words=[],  # the text layer carries no word boxes in RawPage
            confidence=confidence,
            rotation=0,
            width=raw_page.width,
            height=raw_page.height,
            dpi=raw_page.dpi,
            details={"chars": raw_page.text_layer_chars},
        )


__all__ = ["TextLayerEngine", "TextLayerOptions", "text_layer_confidence", "tidy_text", "EngineError"]
