"""Page layer: media sniffing, PDF / image / office loading, errors."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from idp_assets.logic.pages import (  # noqa: E402
    DocumentError,
    estimate_dpi,
    image_coverage_of_rects,
    load_document,
    normalize_image_mode,
    render_page_png,
    render_pdf_page,
    sniff_media_type,
    text_layer_is_complete,
    text_validity,
)

CORPUS = (Path(__file__).resolve().parent.parent.parent / "shared" / "corpus").resolve()
DOC_ID = "0" * 64
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture(scope="module")
def corpus_dir() -> Path:
    if not (CORPUS / "manifest.jsonl").exists():
        pytest.fail(f"evaluation corpus not found at {CORPUS}")
    return CORPUS


def text_image(lines: list[str], size=(1240, 600), font_px=36, mode="L") -> Image.Image:
    if not FONT.exists():
        pytest.fail(f"font {FONT} missing (apt-get install fonts-dejavu-core)")
    img = Image.new(mode, size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), font_px)
    for i, line in enumerate(lines):
        draw.text((60, 60 + i * int(font_px * 1.6)), line, fill="black", font=font)
    return img


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def make_pdf(texts: list[str] | None = None) -> bytes:
    """A minimal born-digital PDF (Helvetica text, one page per string), xref computed."""
    texts = texts or ["Hello born digital world, invoice 4711"]
    n = len(texts)
    objs: list[bytes] = []
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    font_num = 3 + 2 * n
    for i, text in enumerate(texts):
        esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 14 Tf 72 720 Td ({esc}) Tj ET".encode("latin-1")
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_num} 0 R >> >> >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for num, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# --------------------------------------------------------------------------- sniffing


def test_sniff_by_magic_not_extension(corpus_dir):
    pdf = (corpus_dir / "invoices_pdf" / "invoice-i2d-oyo.pdf").read_bytes()
    assert sniff_media_type(pdf, "looks_like.png") == "application/pdf"
    png = encode(Image.new("L", (10, 10), 255), "PNG")
    assert sniff_media_type(png, "scan.pdf") == "image/png"
    jpg = encode(Image.new("RGB", (10, 10), "white"), "JPEG")
    assert sniff_media_type(jpg, "") == "image/jpeg"
    tif = encode(Image.new("L", (10, 10), 255), "TIFF")
    assert sniff_media_type(tif, "x") == "image/tiff"


def test_sniff_office_and_text():
    import docx
    import openpyxl

    buf = io.BytesIO()
    d = docx.Document()
    d.add_paragraph("hello")
    d.save(buf)
    assert sniff_media_type(buf.getvalue(), "whatever.bin").endswith("wordprocessingml.document")

    buf = io.BytesIO()
    wb = openpyxl.Workbook()
    wb.active["A1"] = "x"
    wb.save(buf)
    assert sniff_media_type(buf.getvalue(), "").endswith("spreadsheetml.sheet")

    assert sniff_media_type(b"a,b,c\n1,2,3\n4,5,6\n", "data.csv") == "text/csv"
    assert sniff_media_type(b"a;b;c\n1;2;3\n", "noext") == "text/csv"
    assert sniff_media_type(b"<!DOCTYPE html><html><body>x</body></html>", "page.txt") == "text/html"
    assert sniff_media_type(b"just some words\n", "notes.txt") == "text/plain"
    assert sniff_media_type(b"", "x.pdf") == "application/x-empty"
    assert sniff_media_type(bytes(range(256)) * 4, "x.pdf") == "application/octet-stream"


# --------------------------------------------------------------------------- errors


def test_empty_file():
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, b"", "application/pdf")
    assert exc.value.code == "empty_file"


def test_garbage_bytes():
    garbage = bytes(range(256)) * 8
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, garbage, None)
    assert exc.value.code in ("corrupt_pdf", "unsupported_type")
    # declared as PDF but not one
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, garbage, "application/pdf")
    assert exc.value.code == "corrupt_pdf"
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, b"%PDF-1.7\n" + garbage, None)
    assert exc.value.code == "corrupt_pdf"


def test_corrupt_image():
    png = encode(text_image(["broken"]), "PNG")
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, png[: len(png) // 2], None)
    assert exc.value.code == "corrupt_image"


def test_encrypted_pdf():
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(make_pdf()))
    writer = pypdf.PdfWriter()
    for p in reader.pages:
        writer.add_page(p)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, buf.getvalue(), "application/pdf")
    assert exc.value.code == "encrypted_pdf"

    # owner password only (restrictions, empty user password): opens and reads normally
    writer = pypdf.PdfWriter()
    for p in reader.pages:
        writer.add_page(p)
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    raw, _ = load_document(DOC_ID, buf.getvalue(), "application/pdf")
    assert "invoice 4711" in raw.pages[0].text_layer


def test_minimal_pdf_text_layer():
    raw, images = load_document(DOC_ID, make_pdf(["first page text here", "second page text here"]), None)
    assert [p.text_layer for p in raw.pages] == ["first page text here", "second page text here"]
    assert images == [None, None]


def test_too_many_pages(corpus_dir):
    data = (corpus_dir / "tables" / "table-icdar2013-us-004.pdf").read_bytes()  # 2 pages
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, data, "application/pdf", max_pages=1)
    assert exc.value.code == "too_many_pages"


def test_decompression_bomb():
    png = bytearray(encode(Image.new("L", (8, 8), 255), "PNG"))
    # patch the IHDR to claim 30000 x 30000 pixels (900 MP)
    ihdr = png.index(b"IHDR")
    png[ihdr + 4 : ihdr + 12] = struct.pack(">II", 30000, 30000)
    crc = zlib.crc32(bytes(png[ihdr : ihdr + 17])) & 0xFFFFFFFF
    png[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, bytes(png), None)
    assert exc.value.code == "image_too_large"


def test_error_is_picklable():
    import pickle

    err = pickle.loads(pickle.dumps(DocumentError("corrupt_pdf", "boom")))
    assert err.code == "corrupt_pdf" and "boom" in str(err)


# --------------------------------------------------------------------------- PDF


def test_born_digital_pdf_has_text_and_no_image(corpus_dir):
    data = (corpus_dir / "invoices_pdf" / "invoice-i2d-amazonwebservices.pdf").read_bytes()
    raw, images = load_document(DOC_ID, data, "application/pdf")
    assert raw.kind == "pdf" and len(raw.pages) == len(images) == 1
    page = raw.pages[0]
    assert images == [None]
    assert page.text_layer_chars > 500 and "Amazon Web Services" in page.text_layer
    assert "\r" not in page.text_layer
    assert page.width == page.height == 0
    assert (page.page_width_pt, page.page_height_pt) == (612.0, 792.0)
    assert 0 < page.image_coverage < 0.1  # a logo


def test_scanned_pdf_is_rendered_with_rotation(corpus_dir):
    data = (corpus_dir / "scans_rotated" / "scan-docling-ocr-test-rotated-90.pdf").read_bytes()
    raw, images = load_document(DOC_ID, data, "application/pdf", dpi=150)
    page = raw.pages[0]
    assert page.text_layer_chars == 0 and page.image_coverage > 0.95
    assert page.rotation == 270
    img = images[0]
    assert img is not None and (img.width, img.height) == (page.width, page.height)
    assert abs(page.dpi - 150) < 0.01
    assert img.width > img.height  # /Rotate applied when rendering: landscape
    again = render_pdf_page(data, 1, dpi=150)
    assert again.size == img.size


def test_render_respects_pixel_cap(corpus_dir):
    data = (corpus_dir / "scans_rotated" / "scan-docling-ocr-test-rotated-180.pdf").read_bytes()
    raw, images = load_document(DOC_ID, data, "application/pdf", dpi=600, max_pixels=2_000_000)
    assert images[0].width * images[0].height <= 2_000_000
    assert raw.pages[0].dpi < 600


def test_text_layer_is_complete_rules():
    assert text_layer_is_complete(1500, 0.02)
    assert not text_layer_is_complete(0, 0.0)  # nothing, or vector-outlined text
    assert not text_layer_is_complete(0, 1.0)  # plain scan
    assert not text_layer_is_complete(8, 0.0)  # only a page number
    assert not text_layer_is_complete(60, 1.0)  # scan with a stamp / header in the text layer
    assert text_layer_is_complete(2500, 1.0)  # searchable scan (OCR layer present)
    assert not text_layer_is_complete(1500, 0.0, valid_ratio=0.4)  # fonts without ToUnicode


def test_text_validity():
    assert text_validity("Rechnung Nr. 4711 über 12,00 €") == 1.0
    assert text_validity("") == 0.0
    assert text_validity("ab\x01\x02") == 0.5
    assert text_validity("\ue000\ue001xy") == 0.5  # private use = unmapped glyphs


def test_image_coverage_union():
    page = (0.0, 0.0, 100.0, 100.0)
    assert image_coverage_of_rects([], page) == 0.0
    assert image_coverage_of_rects([(0, 0, 100, 100)], page) == pytest.approx(1.0)
    # two overlapping halves are counted once
    assert image_coverage_of_rects([(0, 0, 50, 100), (0, 0, 50, 100)], page) == pytest.approx(0.5, abs=0.01)
    # clipped to the page
    assert image_coverage_of_rects([(-50, -50, 50, 50)], page) == pytest.approx(0.25, abs=0.01)


# --------------------------------------------------------------------------- images


def test_image_page(corpus_dir):
    data = (corpus_dir / "receipts" / "receipt-sroie-002.jpg").read_bytes()
    raw, images = load_document(DOC_ID, data, "image/jpeg")
    assert raw.kind == "image" and len(raw.pages) == 1
    page = raw.pages[0]
    assert (page.width, page.height) == images[0].size == (459, 949)
    assert page.dpi == 150.0  # declared in the JPEG
    assert images[0].mode in ("RGB", "L")


def test_image_dpi_estimated_when_missing(corpus_dir):
    data = (corpus_dir / "forms" / "form-funsd-0001477983.png").read_bytes()  # ~100 dpi, no dpi stored
    raw, _ = load_document(DOC_ID, data, None)
    assert 70 <= raw.pages[0].dpi <= 150


def test_estimate_dpi_on_rendered_text():
    # 10 pt text at 200 dpi is ~28 px font size
    img = text_image(["The quick brown fox jumps over the lazy dog"] * 6, size=(1400, 600), font_px=28)
    assert 120 <= estimate_dpi(img) <= 320


@pytest.mark.parametrize(
    "mode",
    ["1", "P", "PA", "LA", "RGBA", "CMYK", "I;16", "I", "F", "YCbCr"],
)
def test_normalize_modes(mode):
    base = text_image(["Mode test"], size=(200, 80))
    if mode in ("I;16", "I", "F"):
        import numpy as np

        arr = np.asarray(base, dtype=np.uint16) * 257  # 16-bit full range
        img = Image.fromarray(arr.astype(np.uint16 if mode == "I;16" else np.int32))
        img = img if mode != "F" else img.convert("F")
        if mode == "I":
            img = img.convert("I")
    elif mode == "PA":
        img = base.convert("RGBA").convert("PA")
    else:
        img = base.convert(mode)
    out = normalize_image_mode(img)
    assert out.mode in ("RGB", "L")
    gray = out.convert("L")
    # white background stays white, black text stays dark
    assert gray.getpixel((2, 2)) > 200
    assert min(gray.getdata()) < 60


def test_cmyk_jpeg_and_palette_png_load():
    img = text_image(["CMYK page"]).convert("CMYK")
    raw, images = load_document(DOC_ID, encode(img, "JPEG"), None)
    assert images[0].mode == "RGB"
    pal = text_image(["Palette page"]).convert("P")
    raw, images = load_document(DOC_ID, encode(pal, "PNG"), None)
    assert images[0].mode in ("RGB", "L")


def test_sixteen_bit_png_loads():
    import numpy as np

    arr = (np.asarray(text_image(["Sixteen bit"]), dtype=np.uint16) * 257).astype(np.uint16)
    img = Image.fromarray(arr)
    raw, images = load_document(DOC_ID, encode(img, "PNG"), None)
    assert images[0].mode == "L"
    assert images[0].getpixel((2, 2)) == 255


def test_multipage_tiff():
    frames = [text_image([f"Page {i}"]) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:], dpi=(200, 200))
    raw, images = load_document(DOC_ID, buf.getvalue(), None)
    assert [p.number for p in raw.pages] == [1, 2, 3]
    assert all(img is not None for img in images)
    assert raw.pages[1].dpi == 200.0
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, buf.getvalue(), None, max_pages=2)
    assert exc.value.code == "too_many_pages"


def test_exif_orientation_applied():
    img = text_image(["Upright text"], size=(400, 200))
    turned = img.rotate(90, expand=True)  # stored sideways: 200 x 400
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(turned.convert("RGB"), "JPEG", exif=exif.tobytes())
    raw, images = load_document(DOC_ID, data, None)
    assert images[0].size == (400, 200)
    assert raw.pages[0].rotation == 90


def test_large_image_downscaled():
    img = Image.new("L", (2000, 1500), 255)
    data = encode(img, "PNG", dpi=(400, 400))
    raw, images = load_document(DOC_ID, data, None, max_pixels=750_000)
    w, h = images[0].size
    assert w * h <= 750_000 and abs(w / h - 2000 / 1500) < 0.01
    assert raw.pages[0].dpi == pytest.approx(400 * w / 2000, rel=0.01)


def test_render_page_png_roundtrip():
    img = text_image(["store me"])
    png = render_page_png(img)
    assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(png)).size == img.size


# --------------------------------------------------------------------------- office


def test_docx_via_docling():
    import docx

    d = docx.Document()
    d.add_heading("Rechnung 2024-17", level=1)
    d.add_paragraph("Lieferant: Beispiel GmbH, Musterstraße 1")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "Artikel", "Betrag"
    t.cell(1, 0).text, t.cell(1, 1).text = "Schrauben", "12,50"
    buf = io.BytesIO()
    d.save(buf)
    raw, images = load_document(DOC_ID, buf.getvalue(), None, filename="r.docx")
    assert raw.kind == "office" and images == [None] and len(raw.pages) == 1
    assert "Rechnung 2024-17" in raw.office_text and "Beispiel GmbH" in raw.office_text
    assert ["Schrauben", "12,50"] in raw.office_tables[0]
    assert raw.pages[0].text_layer_chars > 20


def test_xlsx_csv_html_via_docling():
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Datum", "Summe"])
    ws.append(["2024-01-02", 99.5])
    buf = io.BytesIO()
    wb.save(buf)
    raw, _ = load_document(DOC_ID, buf.getvalue(), None)
    assert "Summe" in raw.office_text and any("99.5" in c for t in raw.office_tables for r in t for c in r)

    raw, _ = load_document(DOC_ID, b"name,total\nACME,10.00\nFoo,2.50\n", None, filename="t.csv")
    assert raw.kind == "office" and ["ACME", "10.00"] in raw.office_tables[0]

    html = b"<html><body><h1>Invoice 99</h1><table><tr><td>a</td><td>b</td></tr></table></body></html>"
    raw, _ = load_document(DOC_ID, html, None)
    assert "Invoice 99" in raw.office_text and raw.office_tables == [[["a", "b"]]]


def test_broken_docx():
    import docx

    buf = io.BytesIO()
    docx.Document().save(buf)
    data = buf.getvalue()
    # keep the zip directory that says "word/document.xml" but break the member data
    broken = data[:200] + b"\x00" * 200 + data[400:]
    with pytest.raises(DocumentError) as exc:
        load_document(DOC_ID, broken, None, filename="x.docx")
    assert exc.value.code in ("office_conversion_failed", "unsupported_type")
