"""A scanned page as a PDF text layer: OCR words as invisible text, ruling lines as vector lines.

The table readers of born-digital pages (`logic/tables.py`: pdfplumber lattice on ruling lines,
text alignment on word positions) then read scanned pages too, by the same code - what OCRmyPDF
does for search (its hOCR transform) done here for structure:

* every OCR word is placed as invisible text (rendering mode 3) in its box: standard Helvetica,
  font size = box height, horizontal scaling so the word and a space after it span the box width,
  so a word is one whole word for pdfplumber (never joined to a neighbour that nearly touches it)
  and a column edge never cuts it;
* ruling lines are found in the page image by morphological opening with long thin kernels
  (OpenCV: the classic table-line detection) and drawn as stroked lines, so ruled tables on
  scans are found by the lattice reader.

Coordinates: OCR boxes are in pixels of the page image the engine read; the PDF page is that
image's size at its resolution (72 / dpi points per pixel).
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field

from idp_assets.models import OcrPages, Table

from .tables import DEFAULT_DETECTORS, extract_pdf_tables

MIN_RULE_SHARE = 0.04  # a ruling line spans at least this share of the page width / height
MAX_RULE_PX = 6  # thicker dark runs are blocks or pictures, not rules (pixels at 200-300 dpi)


@dataclass
class ScanPage:
    width: int
    height: int
    dpi: float
    words: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)
    """(text, (x0, y0, x1, y1) in page pixels, origin top left)"""
    rules: list[tuple[float, float, float, float]] = field(default_factory=list)
    """ruling line segments (x0, y0, x1, y1) in page pixels"""


def ruling_lines(image, min_share: float = MIN_RULE_SHARE) -> list[tuple[float, float, float, float]]:
    """Horizontal and vertical ruling lines of a page image (PIL or numpy), in pixels."""
    import cv2
    import numpy as np

    arr = np.asarray(image.convert("L") if hasattr(image, "convert") else image)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY)
    h, w = arr.shape[:2]
    # dark ink on light paper; adaptive so that shaded rows and uneven scans do not swamp it
    ink = cv2.adaptiveThreshold(arr, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 15, 10)
    out: list[tuple[float, float, float, float]] = []
    for horizontal in (True, False):
        length = max(10, int((w if horizontal else h) * min_share))
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1) if horizontal else (1, length))
        lines = cv2.morphologyEx(ink, cv2.MORPH_OPEN, kernel)
        n, _labels, stats, _c = cv2.connectedComponentsWithStats(lines, connectivity=8)
        for i in range(1, n):
            x, y, bw, bh, _area = stats[i]
            thick = bh if horizontal else bw
            if thick > MAX_RULE_PX:
                continue
            if horizontal:
                yc = y + bh / 2
                out.append((float(x), float(yc), float(x + bw), float(yc)))
            else:
                xc = x + bw / 2
                out.append((float(xc), float(y), float(xc), float(y + bh)))
    return out


def _pdf_string(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")  # WinAnsiEncoding: German, French, Dutch letters, the euro sign
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


@functools.cache
def _helvetica():
    """pdfminer's font for the dictionary the pages declare: Helvetica, WinAnsiEncoding (standard AFM metrics)."""
    from pdfminer.pdffont import PDFType1Font
    from pdfminer.psparser import LIT

    return PDFType1Font(None, {"BaseFont": LIT("Helvetica"), "Encoding": LIT("WinAnsiEncoding")})


def _helvetica_width(text: str) -> float:
    """Width of `text` in Helvetica at size 1, as a reader of the page measures it."""
    font = _helvetica()
    return sum(font.char_width(b) for b in text.encode("cp1252", errors="replace")) or 0.5 * len(text)


def page_content(page: ScanPage) -> bytes:
    """The content stream of one page: rules (stroked, 0.5 pt) and invisible words."""
    s = 72.0 / page.dpi
    height_pt = page.height * s
    ops: list[bytes] = []
    if page.rules:
        ops.append(b"q 0.5 w 0 G")
        for x0, y0, x1, y1 in page.rules:
            ops.append(b"%.2f %.2f m %.2f %.2f l S" % (x0 * s, height_pt - y0 * s, x1 * s, height_pt - y1 * s))
        ops.append(b"Q")
    if page.words:
        ops.append(b"BT 3 Tr")
        for text, (x0, y0, x1, y1) in page.words:
            text = " ".join(text.split())
            if not text:
                continue
            size = max(1.0, (y1 - y0) * s)
            # the word and its trailing space fill the box: the space never reaches into a touching neighbour
            natural = _helvetica_width(text + " ") * size
            scale = 100.0 * max(0.5, (x1 - x0) * s) / natural if natural > 0 else 100.0
            # baseline a fifth of the box above its bottom (descenders); a trailing space keeps two OCR words
            # apart for a reader that joins glyphs closer than its tolerance ('Art' '(Kategorie)')
            ops.append(b"/F1 %.2f Tf %.2f Tz 1 0 0 1 %.2f %.2f Tm %s Tj"
                       % (size, scale, x0 * s, height_pt - y1 * s + 0.2 * size, _pdf_string(text + " ")))
        ops.append(b"ET")
    return b"\n".join(ops)


def searchable_pdf(pages: list[ScanPage]) -> bytes:
    """One PDF page per scanned page, holding only its words and ruling lines."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    for page in pages:
        s = 72.0 / page.dpi
        pdf_page = writer.add_blank_page(width=max(1.0, page.width * s), height=max(1.0, page.height * s))
        font = DictionaryObject({
            NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"), NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
        })
        pdf_page[NameObject("/Resources")] = DictionaryObject({
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        stream = DecodedStreamObject()
        stream.set_data(page_content(page))
        pdf_page.replace_contents(stream)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def scanned_page_tables(ocr: OcrPages, page_image=None) -> list[Table]:
    """Tables of the image-OCR pages: the same readers as born-digital pages, on a PDF text layer made
    of the OCR words; sources `ocr_ruling` / `ocr_text_alignment`. `page_image(number)` gives the page
    image the OCR read (grey PIL image) for its ruling lines, or None (then text alignment only)."""
    scanned = [p for p in ocr.pages if p.engine not in ("text_layer", "office") and p.words and p.dpi > 0]
    if not scanned:
        return []
    pages = []
    for p in scanned:
        rules = []
        image = page_image(p.number) if page_image is not None and p.rotation == 0 else None
        # the OCR read the image as stored unless it turned it; a deskewed page keeps its size
        if image is not None and image.size == (p.width, p.height):
            rules = ruling_lines(image)
        pages.append(ScanPage(width=p.width, height=p.height, dpi=p.dpi,
                              words=[(w.text, w.bbox) for w in p.words], rules=rules))
    # the ruling lines are drawn as vector lines: camelot's lattice (rules found in a rendering) would
    # only render the page to find the same grid as pdfplumber's
    found = extract_pdf_tables(searchable_pdf(pages), text_flow=True,
                               detectors=[d for d in DEFAULT_DETECTORS if d != "camelot_lattice"])
    return [t.model_copy(update={"page": scanned[t.page - 1].number, "source": t.source.replace("pdf_", "ocr_", 1)})
            for t in found]
