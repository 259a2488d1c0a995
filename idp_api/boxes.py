"""Where a field's value is printed: a box on its page, in page-relative coordinates (0..1).

The export keeps a field's page and its printed text (`raw`) but no box; the words with boxes are in
the `ocr_pages` output (OCR engines) or in the PDF text layer (born-digital pages, read with
pdfplumber).  :func:`locate` finds the printed text as a run of consecutive words (compared without
case, spaces and punctuation) and returns the union of their boxes; None when it is not found (the
review page then shows the page without a highlight - never a guessed box).
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Box:
    """Relative to the page: left, top, width, height in [0, 1]."""

    left: float
    top: float
    width: float
    height: float


def _norm(s: str) -> str:
    s = unicodedata.normalize("NFKC", s).casefold()
    return re.sub(r"[\W_]+", "", s)


def locate(needles: list[str], words: list[Word], page_width: float, page_height: float,
           max_words: int = 12) -> Box | None:
    """Box of the first needle (in order of preference) printed as consecutive words on the page."""
    if page_width <= 0 or page_height <= 0 or not words:
        return None
    normed = [_norm(w.text) for w in words]
    for needle in needles:
        target = _norm(needle or "")
        if len(target) < 2:
            continue
        for i, first in enumerate(normed):
            if not first or not target.startswith(first) and first != target and target not in first:
                continue
            if target in first and len(target) >= max(2, len(first) // 2):  # a word holds the whole value
                return _union(words[i:i + 1], page_width, page_height)
            acc = ""
            for j in range(i, min(len(words), i + max_words)):
                acc += normed[j]
                if acc == target:
                    return _union(words[i:j + 1], page_width, page_height)
                if not target.startswith(acc):
                    break
    return None


def _union(ws: list[Word], pw: float, ph: float) -> Box:
    x0, y0 = min(w.x0 for w in ws), min(w.y0 for w in ws)
    x1, y1 = max(w.x1 for w in ws), max(w.y1 for w in ws)
    clamp = lambda v: max(0.0, min(1.0, v))  # noqa: E731
    return Box(clamp(x0 / pw), clamp(y0 / ph), clamp((x1 - x0) / pw), clamp((y1 - y0) / ph))


def pdf_words(pdf: bytes, page_number: int) -> tuple[list[Word], float, float]:
    """Words of one PDF page's text layer with boxes in points (top-left origin), and the page size."""
    import pdfplumber

    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        if not 1 <= page_number <= len(doc.pages):
            return [], 0.0, 0.0
        page = doc.pages[page_number - 1]
        words = [Word(w["text"], float(w["x0"]), float(w["top"]), float(w["x1"]), float(w["bottom"]))
                 for w in page.extract_words(keep_blank_chars=False, use_text_flow=True)]
        return words, float(page.width), float(page.height)


def ocr_words(page) -> tuple[list[Word], float, float]:
    """Words of an `OcrPage` (boxes in page pixels) and the page's pixel size."""
    return ([Word(w.text, *w.bbox) for w in page.words], float(page.width), float(page.height))
