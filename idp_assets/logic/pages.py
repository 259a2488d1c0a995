"""Original bytes -> pages: media sniffing, PDF/image/office loading, page images.

Pure functions (no Dagster, no storage): the `raw_pages` asset calls
`load_document` and stores the returned page images with `render_page_png`.

* PDF (pypdfium2): per page the text layer, its character count, the share of
  the page covered by image objects, the page size in points and /Rotate.  A
  page image is rendered only where the text layer is not complete (see
  `text_layer_is_complete`), so born-digital pages cost no rendering.
* Images (Pillow): EXIF orientation applied, exotic modes (CMYK, 16-bit,
  palette, alpha) converted to RGB or L, multi-page TIFF = several pages,
  huge images downscaled, resolution from the file or estimated from the
  height of the printed characters.
* Office formats (docx, xlsx, pptx, html, csv, markdown) via docling's
  DocumentConverter (offline, these backends need no models) -> one page
  with markdown `office_text` and the tables as cell grids; plain text is
  decoded directly.

Every failure a user can cause (empty file, wrong type, broken or encrypted
PDF, decompression bomb, broken image) raises `DocumentError` with a
machine-readable `code`.
"""

from __future__ import annotations

import csv
import functools
import io
import threading
import unicodedata
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from idp_assets.models import RawPage, RawPages

from . import pdf_guard
from .textguard import csv_fast, html_text, office_text_max_bytes, wrap_long_lines

__all__ = [
    "DocumentError",
    "ERROR_CODES",
    "OFFICE_MEDIA_TYPES",
    "IMAGE_MEDIA_TYPES",
    "PDF_MEDIA_TYPE",
    "sniff_media_type",
    "load_document",
    "text_layer_is_complete",
    "text_validity",
    "clean_text_layer",
    "image_coverage_of_rects",
    "estimate_text_height",
    "estimate_dpi",
    "normalize_image_mode",
    "render_pdf_page",
    "render_page_png",
    "page_image_loader",
    "deskew",
]

PDF_MEDIA_TYPE = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"

# media type -> file extension docling uses to pick its backend
OFFICE_MEDIA_TYPES: dict[str, str] = {
    DOCX: "docx",
    XLSX: "xlsx",
    PPTX: "pptx",
    "text/html": "html",
    "text/csv": "csv",
    "text/markdown": "md",
    "text/plain": "txt",  # decoded directly, docling not needed
}
IMAGE_MEDIA_TYPES = {
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/bmp",
    "image/gif",
    "image/webp",
    "image/jp2",
    "image/jpx",
    "image/x-portable-anymap",
    "image/heic",  # phone photos; decoded by pillow-heif (libheif)
    "image/heif",
}
HEIF_MEDIA_TYPES = {"image/heic", "image/heif"}


@functools.cache
def _register_heif() -> bool:
    """Teach Pillow HEIC/HEIF (pillow-heif); False where it is not installed (the file is then unsupported)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True

ERROR_CODES = (
    "empty_file",
    "unsupported_type",
    "corrupt_pdf",
    "encrypted_pdf",
    "too_many_pages",
    "image_too_large",
    "corrupt_image",
    "office_conversion_failed",
    # input limits checked before parsing (idp_assets/logic/safety.py)
    "file_too_large",
    "archive_bomb",
    "corrupt_office",
    # a PDF page whose drawing work or memory is beyond limits (idp_assets/logic/pdf_guard.py)
    "page_too_complex",
    # standalone e-invoice XML (idp_assets/logic/en16931/intake.py)
    "corrupt_xml",
    "unsafe_xml",
)

DEFAULT_MAX_PIXELS = 40_000_000  # ~ A4 at 600 dpi; larger images are downscaled
DEFAULT_IMAGE_DPI = 300.0


class DocumentError(Exception):
    """A document that cannot be turned into pages; `code` is machine-readable."""

    def __init__(self, code: str, message: str):
        if code not in ERROR_CODES:
            raise ValueError(f"unknown DocumentError code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self):  # picklable across processes
        return (DocumentError, (self.code, self.message))


# --------------------------------------------------------------------------- sniffing

_ZIP_OFFICE_MARKERS = (
    ("word/document.xml", DOCX),
    ("xl/workbook.xml", XLSX),
    ("ppt/presentation.xml", PPTX),
)
_EXT_MEDIA = {
    "docx": DOCX,
    "xlsx": XLSX,
    "pptx": PPTX,
    "csv": "text/csv",
    "tsv": "text/csv",
    "html": "text/html",
    "htm": "text/html",
    "xhtml": "text/html",
    "md": "text/markdown",
    "markdown": "text/markdown",
    "txt": "text/plain",
}
_MIME_ALIASES = {
    "image/x-ms-bmp": "image/bmp",
    "image/x-bmp": "image/bmp",
}


def _extension(filename: str) -> str:
    name = (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _decode_text(data: bytes) -> str | None:
    """Decode bytes that look like text (BOM / UTF-8 / cp1252); None for binary data."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:8192]:
        return None
    for enc in ("utf-8-sig", "cp1252"):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        return None
    sample = text[:8192]
    if not sample:
        return None
    bad = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f")
    return text if bad / len(sample) < 0.01 else None


def _looks_like_csv(text: str) -> bool:
    lines = [ln for ln in text[:16384].splitlines() if ln.strip()][:20]
    if len(lines) < 2:
        return False
    for delim in (",", ";", "\t"):
        try:
            counts = {len(row) for row in csv.reader(lines, delimiter=delim)}
        except csv.Error:
            continue
        if len(counts) == 1 and counts.pop() >= 2:
            return True
    return False


def sniff_media_type(data: bytes, filename: str = "") -> str:
    """Media type from the bytes (magic numbers); the extension only breaks ties.

    The extension is consulted for zip containers whose content does not say
    which office format they are, and for text files (csv / html / markdown /
    plain).  Never raises: "application/x-empty" for no bytes,
    "application/octet-stream" for anything unrecognised.
    """
    import filetype

    if not data:
        return "application/x-empty"
    ext = _extension(filename)
    # PDF: the header may follow some junk bytes (PDF 1.7 spec: within the first 1024)
    if b"%PDF-" in data[:1024]:
        return PDF_MEDIA_TYPE
    kind = filetype.guess(data)
    if kind is not None:
        mime = _MIME_ALIASES.get(kind.mime, kind.mime)
        if mime == "application/zip" or mime in (DOCX, XLSX, PPTX):
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    names = set(zf.namelist())
                for marker, office in _ZIP_OFFICE_MARKERS:
                    if marker in names:
                        return office
            except zipfile.BadZipFile:
                pass
            if mime in (DOCX, XLSX, PPTX):
                return mime
            return _EXT_MEDIA.get(ext, mime) if ext in ("docx", "xlsx", "pptx") else mime
        return mime
    text = _decode_text(data)
    if text is None:
        return "application/octet-stream"
    head = text[:2048].lstrip().lower()
    if head.startswith("<!doctype html") or "<html" in head[:1024]:
        return "text/html"
    if head.startswith("<?xml") or (ext == "xml" and head.startswith("<")):
        return "text/html" if ext in ("html", "htm", "xhtml") else "application/xml"
    if ext in _EXT_MEDIA and _EXT_MEDIA[ext].startswith("text/"):
        return _EXT_MEDIA[ext]
    if _looks_like_csv(text):
        return "text/csv"
    return "text/plain"


# --------------------------------------------------------------------------- text layer


def clean_text_layer(text: str) -> str:
    """Normalise a pdfium text layer: line breaks, pdfium's hyphen markers, NUL bytes."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # pdfium marks generated hyphens (word broken at line end) with U+0002 / U+FFFE
    text = text.replace("\x02", "-").replace("\ufffe", "-").replace("\x00", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return unicodedata.normalize("NFC", text).strip("\n")


def _char_is_valid(ch: str) -> bool:
    if ch == "\ufffd":
        return False
    cat = unicodedata.category(ch)
    # control, surrogate, private use (unmapped glyphs), unassigned
    return cat not in ("Cc", "Cs", "Co", "Cn")


@functools.lru_cache(maxsize=64)
def text_validity(text: str) -> float:
    """Share of non-whitespace characters that map to real, printable Unicode.

    Cached: the router's text-layer verdict and the text-layer engine measure the
    same page text one after the other.

    A text layer written with fonts lacking a ToUnicode map comes out as
    control characters, private-use code points or U+FFFD; this ratio is the
    measured signal the text-layer engine reports as its confidence.
    0.0 for text without any non-whitespace character.
    """
    total = valid = 0
    # classify each distinct character once (pages repeat a few dozen characters)
    for ch, n in Counter(text).items():
        if ch.isspace():
            continue
        total += n
        if _char_is_valid(ch):
            valid += n
    return valid / total if total else 0.0


def text_layer_is_complete(
    chars: int,
    image_coverage: float,
    valid_ratio: float = 1.0,
    *,
    min_chars: int = 16,
    min_valid_ratio: float = 0.9,
    scan_coverage: float = 0.25,
    min_chars_on_scan: int = 200,
) -> bool:
    """Is the PDF text layer of a page all the text the page shows?

    Complete means OCR of the page image would not add text, so the page is
    neither rendered nor OCR'd.  The rule:

    1. at least `min_chars` non-whitespace characters (a blank page, a pure
       scan, or text drawn as vector outlines has none or only a page number);
    2. at least `min_valid_ratio` of them map to real Unicode (`text_validity`);
       fonts without a ToUnicode map give control / private-use characters,
       which OCR reads better;
    3. if images cover at least `scan_coverage` of the page, the text layer
       must hold at least `min_chars_on_scan` characters: a scanned page with
       an OCR'd (searchable) text layer passes, a scan that only carries a
       stamp, Bates number or header line does not.

    A born-digital page with a lot of text *and* a large embedded picture
    (>= `min_chars_on_scan` chars) counts as complete; the picture is then
    listed in `RawPage.image_regions` (see `text_free_image_regions`) and the
    router reads it by OCR on top of the text layer.
    """
    if chars < min_chars:
        return False
    if valid_ratio < min_valid_ratio:
        return False
    if image_coverage >= scan_coverage and chars < min_chars_on_scan:
        return False
    return True


# a picture on a born-digital page is read by OCR when it covers at least this share of the page
# (docling's bitmap_area_threshold default) and holds almost no text-layer text: a letterhead, an
# address block or a stamp pasted in as an image; small logos and icons are left alone
IMAGE_REGION_MIN_AREA = 0.05
IMAGE_REGION_MAX_TEXT = 10  # text-layer characters inside a picture that is still "text-free"
MAX_IMAGE_REGIONS = 4  # per page, largest first


def text_free_image_regions(page, rects, page_box) -> list[tuple[float, float, float, float]]:
    """Pictures of a text-layer page worth reading by OCR, as (x0, y0, x1, y1) shares of the
    page (origin top left), largest first: at least IMAGE_REGION_MIN_AREA of the page, with at
    most IMAGE_REGION_MAX_TEXT characters of the text layer inside."""
    pl, pb, pr, pt = page_box
    pw, ph = pr - pl, pt - pb
    if pw <= 0 or ph <= 0:
        return []
    found = []
    textpage = page.get_textpage()
    try:
        for left, bottom, right, top in rects:
            l, r = max(min(left, right), pl), min(max(left, right), pr)
            b, t = max(min(bottom, top), pb), min(max(bottom, top), pt)
            area = (r - l) * (t - b) / (pw * ph)
            if r <= l or t <= b or area < IMAGE_REGION_MIN_AREA:
                continue
            inside = textpage.get_text_bounded(l, b, r, t) or ""
            if sum(1 for ch in inside if not ch.isspace()) > IMAGE_REGION_MAX_TEXT:
                continue
            found.append((area, (round((l - pl) / pw, 4), round((pt - t) / ph, 4),
                                 round((r - pl) / pw, 4), round((pt - b) / ph, 4))))
    finally:
        textpage.close()
    found.sort(key=lambda x: -x[0])
    return [box for _, box in found[:MAX_IMAGE_REGIONS]]


def image_coverage_of_rects(
    rects: list[tuple[float, float, float, float]],
    page_box: tuple[float, float, float, float],
    grid: int = 256,
) -> float:
    """Share of `page_box` (l, b, r, t) covered by the union of `rects` (l, b, r, t).

    Rasterised on a `grid` x `grid` mask, so overlapping images are counted once.
    """
    pl, pb, pr, pt = page_box
    pw, ph = pr - pl, pt - pb
    if pw <= 0 or ph <= 0 or not rects:
        return 0.0
    mask = np.zeros((grid, grid), dtype=bool)
    for left, bottom, right, top in rects:
        x0 = int(np.floor((max(min(left, right), pl) - pl) / pw * grid))
        x1 = int(np.ceil((min(max(left, right), pr) - pl) / pw * grid))
        y0 = int(np.floor((max(min(bottom, top), pb) - pb) / ph * grid))
        y1 = int(np.ceil((min(max(bottom, top), pt) - pb) / ph * grid))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = True
    return float(mask.mean())


# --------------------------------------------------------------------------- PDF


# pdfium is not thread-safe, not even across different documents: every use of it in this process
# (`idp process --workers N` runs documents in threads) holds this lock; pdf_child reads risky
# pages in a process of its own.
PDFIUM_LOCK = threading.RLock()


def _pdfium_serialised(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        with PDFIUM_LOCK:
            return fn(*args, **kwargs)

    return call


def _open_pdf(data: bytes):
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise DocumentError("encrypted_pdf", "the PDF is encrypted and needs a password to open") from exc
        raise DocumentError("corrupt_pdf", f"pdfium cannot open the PDF ({exc})") from exc


def _image_rects(page) -> list[tuple[float, float, float, float]]:
    """Bounds (page space) of all image objects, descending into form XObjects.

    pdfium reports the bounds of an object inside a form XObject in the form's
    space, so they are mapped through the form matrices above them.
    """
    import pypdfium2.raw as pdfium_c

    rects = []

    def walk(form, matrices, depth):
        for obj in page.get_objects(form=form, max_depth=1, level=depth):
            if obj.type == pdfium_c.FPDF_PAGEOBJ_IMAGE:
                try:
                    rect = obj.get_bounds()
                except Exception:  # noqa: BLE001 - an unlocatable object does not cover anything
                    continue
                for m in reversed(matrices):
                    rect = m.on_rect(*rect)
                rects.append(rect)
            elif obj.type == pdfium_c.FPDF_PAGEOBJ_FORM and depth < 8:
                walk(obj, [*matrices, obj.get_matrix()], depth + 1)

    walk(None, [], 0)
    return rects


def _render_scale(width_pt: float, height_pt: float, dpi: float, max_pixels: int) -> float:
    scale = dpi / 72.0
    pixels = width_pt * scale * height_pt * scale
    if pixels > max_pixels > 0:
        scale *= (max_pixels / pixels) ** 0.5
        # pdfium rounds the bitmap size up
        while scale > 0.01 and np.ceil(width_pt * scale) * np.ceil(height_pt * scale) > max_pixels:
            scale *= 0.995
    return scale


def _render(page, dpi: float, max_pixels: int) -> tuple[Image.Image, float]:
    width_pt, height_pt = page.get_size()
    scale = _render_scale(width_pt, height_pt, dpi, max_pixels)
    bitmap = page.render(scale=scale, may_draw_forms=True)
    try:
        image = bitmap.to_pil().convert("RGB")
    finally:
        bitmap.close()
    return image, scale * 72.0


@_pdfium_serialised
def render_pdf_page(
    data: bytes, page_number: int, *, dpi: float = 300, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Image.Image:
    """Render one page (1-based) of a PDF at `dpi` (capped at `max_pixels`), /Rotate applied.

    For pages `load_document` did not render (complete text layer) when a
    fallback OCR engine needs the image after all.
    """
    pdf = _open_pdf(data)
    try:
        if not 1 <= page_number <= len(pdf):
            raise ValueError(f"page {page_number} out of range 1..{len(pdf)}")
        page = pdf[page_number - 1]
        try:
            image, _ = _render(page, dpi, max_pixels)
        finally:
            page.close()
        return image
    finally:
        pdf.close()


def pdf_page_record(pdf, i: int, dpi: float, max_pixels: int, *, form_values=None,
                    force_image: bool = False) -> tuple[RawPage, Image.Image | None]:
    """Page `i` (0-based) of an open pdfium document: its record and, where OCR needs it, its image.

    Filled AcroForm fields (`form_values`, from `pdf_guard.preflight`) are page content for a
    user: they are added to the text layer as ``label: value`` lines."""
    try:
        page = pdf[i]
    except Exception as exc:  # noqa: BLE001 - pdfium cannot load a broken page object
        raise DocumentError("corrupt_pdf", f"page {i + 1} cannot be loaded ({exc})") from exc
    try:
        width_pt, height_pt = page.get_size()
        rotation = page.get_rotation() % 360
        textpage = page.get_textpage()
        try:
            text = clean_text_layer(textpage.get_text_range())
            if form_values:
                lines = pdf_guard.form_lines(form_values, textpage.get_text_bounded)
                text = "\n".join(t for t in (text, *lines) if t)
        finally:
            textpage.close()
        text = wrap_long_lines(text)
        chars = sum(1 for ch in text if not ch.isspace())
        try:
            box = page.get_cropbox()
        except Exception:  # noqa: BLE001
            box = (0.0, 0.0, width_pt, height_pt)
        rects = _image_rects(page)
        coverage = min(1.0, image_coverage_of_rects(rects, box))
        complete = text_layer_is_complete(chars, coverage, text_validity(text) if chars else 0.0)
        regions = text_free_image_regions(page, rects, box) if complete and rects else []
        image = None
        page_dpi = float(dpi)
        if not complete or force_image:
            image, page_dpi = _render(page, dpi, max_pixels)
        record = RawPage(
            number=i + 1,
            width=image.width if image is not None and not complete else 0,
            height=image.height if image is not None and not complete else 0,
            dpi=round(page_dpi, 3),
            rotation=rotation,
            text_layer=text,
            text_layer_chars=chars,
            image_coverage=round(coverage, 4),
            page_width_pt=round(width_pt, 3),
            page_height_pt=round(height_pt, 3),
            image_regions=regions,
        )
        return record, image
    finally:
        page.close()


def _guarded_pages(data: bytes, n: int, max_pages: int) -> tuple[pdf_guard.Preflight, dict[int, str]]:
    """Preflight of every page and the pages (0-based) to read in a child process, with why;
    raises DocumentError("page_too_complex") for a page not worth trying."""
    pre = pdf_guard.preflight(data, max_pages)
    risky: dict[int, str] = {}
    for i in range(n):
        cost = pre.pages[i] if i < len(pre.pages) and not pre.error else None
        verdict, why = pdf_guard.risk(cost)
        if verdict == "hopeless":
            raise DocumentError("page_too_complex", f"page {i + 1}: {why}")
        if verdict == "risky":
            risky[i] = why if cost is not None else f"{why} ({pre.error})"
    return pre, risky


def _isolated_pages(data: bytes, risky: dict[int, str], dpi, max_pixels, pre, *, render: bool = False) -> dict:
    values = {str(i): [{"rect": v.rect, "name": v.name, "value": v.value} for v in pre.pages[i].form_values]
              for i in risky if i < len(pre.pages) and pre.pages[i].form_values}
    job = {"dpi": dpi, "max_pixels": max_pixels, "render": render, "form_values": values}
    try:
        return pdf_guard.run_isolated(data, sorted(risky), job)
    except pdf_guard.IsolatedFailure as exc:
        i = exc.page - 1
        if exc.code in ERROR_CODES:
            raise DocumentError(exc.code, exc.message) from exc
        raise DocumentError("page_too_complex", f"page {exc.page} ({risky.get(i, 'risky')}): {exc.message}; "
                            f"limits {pdf_guard.page_timeout_s():g} s and {pdf_guard.child_memory_mb()} MB per page "
                            "(IDP_PDF_PAGE_TIMEOUT_S, IDP_PDF_CHILD_MEMORY_MB)") from exc


@_pdfium_serialised
def _load_pdf(document_id, data, dpi, max_pages, max_pixels):
    pdf = _open_pdf(data)
    try:
        n = len(pdf)
        if n == 0:
            raise DocumentError("corrupt_pdf", "the PDF has no pages")
        if n > max_pages:
            raise DocumentError("too_many_pages", f"{n} pages, the limit is {max_pages}")
        # pages whose drawing could hang or exhaust this process are read in a child process
        pre, risky = _guarded_pages(data, n, max_pages)
        isolated = _isolated_pages(data, risky, dpi, max_pixels, pre) if risky else {}
        pages: list[RawPage] = []
        images: list[Image.Image | None] = []
        for i in range(n):
            if i in isolated:
                record = RawPage(**isolated[i]["record"])
                png = pdf_guard.decode_png(isolated[i].get("png"))
                image = None
                if png:
                    with Image.open(io.BytesIO(png)) as im:
                        im.load()
                        image = im.copy()
            else:
                cost = pre.pages[i] if i < len(pre.pages) and not pre.error else None
                record, image = pdf_page_record(pdf, i, dpi, max_pixels,
                                                form_values=cost.form_values if cost else None)
            images.append(image)
            pages.append(record)
        return RawPages(document_id=document_id, kind="pdf", pages=pages), images
    finally:
        pdf.close()


# --------------------------------------------------------------------------- images


def normalize_image_mode(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> "RGB" or "L" (alpha flattened on white, 16-bit / float scaled)."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if mode == "F" and hi <= 1.0 and lo >= 0.0:
            arr = arr * 255.0
        elif hi > 255.0:
            arr = arr * (255.0 / hi)
        return Image.fromarray(np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8), "L")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(background, rgba).convert("RGB")
        return flat.convert("L") if mode in ("LA", "La") else flat
    if mode == "I;16" or mode.startswith("I;"):
        return image.convert("I").convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX ...


def estimate_text_height(gray: Image.Image) -> float | None:
    """Ink-weighted median height (px) of character-sized dark connected components; None without text."""
    import cv2

    arr = np.asarray(gray if gray.mode == "L" else gray.convert("L"))
    if arr.size == 0 or arr.min() == arr.max():
        return None
    # keep this cheap on big images: measure on at most ~4 MP, rescale the result
    factor = 1.0
    if arr.size > 4_000_000:
        factor = (arr.size / 4_000_000) ** 0.5
        arr = cv2.resize(arr, (int(arr.shape[1] / factor), int(arr.shape[0] / factor)), interpolation=cv2.INTER_AREA)
    _, bw = cv2.threshold(arr, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    h = stats[1:, cv2.CC_STAT_HEIGHT]
    w = stats[1:, cv2.CC_STAT_WIDTH]
    area = stats[1:, cv2.CC_STAT_AREA]
    # character-like: not specks, not rulings / borders / photos, some ink in the box
    keep = (h >= 4) & (h <= arr.shape[0] / 10) & (w <= 3 * h) & (area >= 8) & (area >= 0.1 * w * h)
    if keep.sum() < 10:
        return None
    # ink-weighted median: many tiny noise specks must not outvote the glyphs
    heights, weights = h[keep].astype(np.float64), area[keep].astype(np.float64)
    order = np.argsort(heights)
    cumulative = np.cumsum(weights[order])
    median = heights[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    return float(median) * factor


# median height of lower/upper-case glyphs of ~10 pt body text, in inches;
# calibrated on the corpus (FUNSD forms ~100 dpi -> 8-9 px)
_TYPICAL_GLYPH_HEIGHT_IN = 0.083


def estimate_dpi(gray: Image.Image, default: float = DEFAULT_IMAGE_DPI) -> float:
    """Guess the scan resolution from the height of the printed characters (50..1200)."""
    height = estimate_text_height(gray)
    if height is None:
        return float(default)
    return float(min(1200.0, max(50.0, round(height / _TYPICAL_GLYPH_HEIGHT_IN))))


# dpi values that software writes when it does not know the resolution
_PLACEHOLDER_DPI = {72.0, 96.0}

_EXIF_ROTATION = {3: 180, 6: 90, 8: 270, 5: 90, 7: 270, 4: 180, 2: 0}  # clockwise degrees


def _declared_dpi(image: Image.Image) -> float | None:
    dpi = image.info.get("dpi")
    if not dpi:
        return None
    try:
        value = float(dpi[0] if isinstance(dpi, tuple) else dpi)
    except (TypeError, ValueError):
        return None
    if not 50.0 <= value <= 2400.0 or round(value) in _PLACEHOLDER_DPI:
        return None
    return value


def _image_frames(image: Image.Image) -> int:
    # only formats whose frames are pages; GIF/WebP animations and MPO previews are not
    if image.format in ("TIFF",):
        return getattr(image, "n_frames", 1)
    return 1


def _load_image(document_id, data, max_pages, max_pixels):
    try:
        with warnings.catch_warnings():
            # between MAX_IMAGE_PIXELS and twice that Pillow only warns; we downscale those
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise DocumentError("image_too_large", str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DocumentError("corrupt_image", f"Pillow cannot open the image ({exc})") from exc

    n = _image_frames(image)
    if n > max_pages:
        raise DocumentError("too_many_pages", f"{n} frames, the limit is {max_pages}")
    pages: list[RawPage] = []
    images: list[Image.Image | None] = []
    for i in range(n):
        try:
            image.seek(i)
            w, h = image.size
            if Image.MAX_IMAGE_PIXELS and w * h > 2 * Image.MAX_IMAGE_PIXELS:  # later TIFF frames
                raise DocumentError("image_too_large", f"frame {i + 1} has {w}x{h} pixels")
            declared = _declared_dpi(image)
            scale = 1.0
            if w * h > max_pixels > 0:
                scale = (max_pixels / (w * h)) ** 0.5
                if image.format == "JPEG":  # decode at 1/2, 1/4, 1/8 directly: fast and small
                    image.draft(image.mode, (int(w * scale), int(h * scale)))
            frame = image.copy() if n > 1 else image
            frame.load()
            orientation = frame.getexif().get(0x0112, 1)
            frame = ImageOps.exif_transpose(frame) or frame
            frame = normalize_image_mode(frame)
            if frame.width * frame.height > max_pixels > 0:
                s = (max_pixels / (frame.width * frame.height)) ** 0.5
                frame = frame.resize((max(1, int(frame.width * s)), max(1, int(frame.height * s))), Image.LANCZOS)
            # the effective scale relative to the original pixel grid
            long_side = max(w, h)
            scale = max(frame.width, frame.height) / long_side if long_side else 1.0
        except DocumentError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise DocumentError("corrupt_image", f"frame {i + 1} cannot be decoded ({exc})") from exc
        dpi = declared * scale if declared else estimate_dpi(frame)
        images.append(frame)
        pages.append(
            RawPage(
                number=i + 1,
                width=frame.width,
                height=frame.height,
                dpi=round(float(dpi), 3),
                rotation=_EXIF_ROTATION.get(orientation, 0),
                page_width_pt=round(frame.width / dpi * 72.0, 3),
                page_height_pt=round(frame.height / dpi * 72.0, 3),
            )
        )
    return RawPages(document_id=document_id, kind="image", pages=pages), images


# --------------------------------------------------------------------------- office


@functools.lru_cache(maxsize=1)
def _office_converter():
    from docling.datamodel.base_models import InputFormat
    from docling.document_converter import DocumentConverter

    return DocumentConverter(
        allowed_formats=[
            InputFormat.DOCX,
            InputFormat.XLSX,
            InputFormat.PPTX,
            InputFormat.HTML,
            InputFormat.CSV,
            InputFormat.MD,
        ]
    )


def _table_grid(table, doc) -> list[list[str]]:
    try:
        return [[(cell.text or "").strip() for cell in row] for row in table.data.grid]
    except Exception:  # noqa: BLE001 - fall back to the dataframe export
        df = table.export_to_dataframe(doc=doc)
        return [[str(c) for c in df.columns]] + [[str(v) for v in row] for row in df.itertuples(index=False)]


def _load_office(document_id, data, media_type):
    big_text = media_type in ("text/csv", "text/html", "text/markdown") and len(data) > office_text_max_bytes()
    if media_type == "text/plain" or big_text:
        # plain text, and text formats too big for docling (minutes for a few MB): linear stdlib readers
        text = _decode_text(data)
        if text is None:
            if big_text:
                text = data.decode("utf-8", "replace")
            else:
                raise DocumentError("office_conversion_failed", "the text file cannot be decoded")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        tables: list = []
        if media_type == "text/csv":
            text, tables = csv_fast(text)
        elif media_type == "text/html":
            text = html_text(text)
        markdown = text.strip()
    else:
        from docling.datamodel.base_models import DocumentStream

        ext = OFFICE_MEDIA_TYPES[media_type]
        try:
            result = _office_converter().convert(
                DocumentStream(name=f"document.{ext}", stream=io.BytesIO(data)), raises_on_error=True
            )
            doc = result.document
            markdown = doc.export_to_markdown()
            tables = [_table_grid(t, doc) for t in doc.tables]
        except DocumentError:
            raise
        except Exception as exc:  # noqa: BLE001 - docling raises many kinds of errors
            raise DocumentError("office_conversion_failed", f"docling could not convert the {ext} file ({exc})") from exc
    markdown = wrap_long_lines(markdown)  # no line of a hostile one-line file reaches the per-line rules whole
    chars = sum(1 for ch in markdown if not ch.isspace())
    page = RawPage(number=1, width=0, height=0, dpi=0.0, text_layer=markdown, text_layer_chars=chars)
    return (
        RawPages(document_id=document_id, kind="office", pages=[page], office_text=markdown, office_tables=tables),
        [None],
    )


# --------------------------------------------------------------------------- entry point


def load_document(
    document_id: str,
    data: bytes,
    media_type: str | None = None,
    *,
    dpi: float = 300,
    max_pages: int = 1000,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    filename: str = "",
) -> tuple[RawPages, list[Image.Image | None]]:
    """Split a document into pages; returns the page records and page images.

    `images[i]` belongs to `raw.pages[i]`: a PIL image ("RGB" or "L") for
    pages that need OCR (scanned / incomplete PDF pages, images), None where
    the PDF text layer is complete and for office documents.  The media type
    is re-sniffed from the bytes; `media_type` is used only when the bytes
    alone say nothing ("application/octet-stream").

    Raises DocumentError (codes in ERROR_CODES).
    """
    if not data:
        raise DocumentError("empty_file", "the file has no bytes")
    sniffed = sniff_media_type(data, filename)
    kind = sniffed if sniffed != "application/octet-stream" or not media_type else media_type
    kind = _MIME_ALIASES.get(kind, kind)
    if kind == PDF_MEDIA_TYPE:
        return _load_pdf(document_id, data, dpi, max_pages, max_pixels)
    if kind in HEIF_MEDIA_TYPES and not _register_heif():
        raise DocumentError("unsupported_type", f"{kind} needs pillow-heif, which is not installed")
    if kind in IMAGE_MEDIA_TYPES:
        return _load_image(document_id, data, max_pages, max_pixels)
    if kind in OFFICE_MEDIA_TYPES:
        return _load_office(document_id, data, kind)
    raise DocumentError("unsupported_type", f"cannot process media type {kind!r}")


def render_page_png(image: Image.Image, *, compress_level: int = 3) -> bytes:
    """PNG bytes of a page image for the document store (fast compression level)."""
    buf = io.BytesIO()
    image = normalize_image_mode(image)
    image.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def page_image_loader(
    data: bytes, raw: RawPages, *, dpi: float = 300, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Callable[[int], Image.Image | None]:
    """A callable page_number -> image, rendering PDF pages on demand (None otherwise)."""

    guard: dict = {}

    def load(page_number: int) -> Image.Image | None:
        if raw.kind != "pdf":
            return None
        if "risky" not in guard:
            try:
                guard["pre"], guard["risky"] = _guarded_pages(data, len(raw.pages), max(1000, len(raw.pages)))
            except DocumentError:
                guard["pre"], guard["risky"] = None, {i: "too complex" for i in range(len(raw.pages))}
        i = page_number - 1
        if i in guard["risky"]:  # drawn in a child process with limits; None if it cannot be
            if guard["pre"] is None:
                return None
            try:
                got = _isolated_pages(data, {i: guard["risky"][i]}, dpi, max_pixels, guard["pre"], render=True)
            except DocumentError:
                return None
            png = pdf_guard.decode_png(got[i].get("png"))
            if not png:
                return None
            with Image.open(io.BytesIO(png)) as im:
                im.load()
                return im.copy()
        return render_pdf_page(data, page_number, dpi=dpi, max_pixels=max_pixels)

    return load



def deskew(image: Image.Image, angle: float) -> Image.Image:
    """The page turned by `angle` degrees (counter-clockwise positive, as PIL), background white.

    `angle` comes from `idp_assets.logic.routing.page_features(...).skew_angle`.
    """
    if not angle:
        return image
    fill = 255 if image.mode == "L" else (255, 255, 255) if image.mode == "RGB" else None
    return image.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=fill)
