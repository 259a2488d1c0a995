"""Small sample documents the project generates itself (no downloads, no checked-in binaries).

- `sample-invoice.pdf`: born-digital PDF invoice with a text layer (hand-written PDF objects)
- `sample-scan.png`: the same kind of invoice as a raster "scan" (needs image OCR)
- `sample-letter.docx`: an office document (docling path)
- `sample-orders.csv`: a CSV table
"""

from __future__ import annotations

from pathlib import Path

INVOICE_LINES = [
    (50, 790, 16, "Muster Buerobedarf GmbH"),
    (50, 772, 10, "Hauptstrasse 12, 10115 Berlin - USt-IdNr. DE123456789"),
    (50, 720, 14, "Rechnung"),
    (50, 700, 10, "Rechnungsnummer: RE-2026-0042"),
    (50, 686, 10, "Rechnungsdatum: 12.11.2026"),
    (50, 672, 10, "Kunde: Beispiel AG, Lindenweg 3, 80331 Muenchen"),
    (50, 630, 10, "Pos  Beschreibung              Menge   Einzelpreis   Gesamt"),
    (50, 614, 10, "1    Druckerpapier A4             10        4,50       45,00"),
    (50, 600, 10, "2    Toner schwarz                 2       89,90      179,80"),
    (50, 560, 10, "Nettobetrag                                           224,80 EUR"),
    (50, 546, 10, "MwSt 19%                                               42,71 EUR"),
    (50, 532, 11, "Gesamtbetrag                                          267,51 EUR"),
    (50, 480, 9, "IBAN: DE89 3704 0044 0532 0130 00 - Zahlbar innerhalb von 14 Tagen."),
]


def _pdf_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def born_digital_pdf(lines=INVOICE_LINES) -> bytes:
    """A valid one-page PDF with Helvetica text (real text layer, correct xref offsets)."""
    content = "\n".join(
        f"BT /F1 {size} Tf {x} {y} Td ({_pdf_escape(text)}) Tj ET" for x, y, size, text in lines
    ).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def scanned_png(lines=INVOICE_LINES, dpi: int = 200) -> bytes:
    """The invoice rendered to a greyscale raster at `dpi`, slightly noisy like a scan."""
    import io
    import random

    from PIL import Image, ImageDraw, ImageFont

    scale = dpi / 72.0
    img = Image.new("L", (int(595 * scale), int(842 * scale)), 255)
    draw = ImageDraw.Draw(img)
    for x, y, size, text in lines:
        font = ImageFont.load_default(size=int(size * scale))
        draw.text((x * scale, (842 - y - size) * scale), text, fill=20, font=font)
    rnd = random.Random(7)
    px = img.load()
    for _ in range(img.width * img.height // 400):  # sparse speckle noise
        px[rnd.randrange(img.width), rnd.randrange(img.height)] = rnd.choice((0, 90, 160))
    buf = io.BytesIO()
    img.save(buf, format="PNG", dpi=(dpi, dpi))
    return buf.getvalue()


def office_docx() -> bytes:
    import io

    import docx

    d = docx.Document()
    d.add_heading("Lieferschein LS-7781", level=1)
    d.add_paragraph("Muster Buerobedarf GmbH liefert an Beispiel AG, Lindenweg 3, 80331 Muenchen.")
    t = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("Artikel", "Menge", "Einheit"), ("Druckerpapier A4", "10", "Pack"), ("Toner schwarz", "2", "Stueck")]):
        for c, val in enumerate(row):
            t.cell(r, c).text = val
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def orders_csv() -> bytes:
    return "order_id;customer;amount;currency\n1001;Beispiel AG;267,51;EUR\n1002;Nordlicht KG;1.034,00;EUR\n".encode()


def write_samples(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "sample-invoice.pdf": born_digital_pdf(),
        "sample-scan.png": scanned_png(),
        "sample-letter.docx": office_docx(),
        "sample-orders.csv": orders_csv(),
    }
    out = []
    for name, data in files.items():
        p = folder / name
        if not p.exists() or p.read_bytes() != data:
            p.write_bytes(data)
        out.append(p)
    return out
