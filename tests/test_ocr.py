"""OCR layer: engine registry, routing, Tesseract with orientation, fallbacks, confidences."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
from pathlib import Path
from typing import Literal

import pytest
from PIL import Image, ImageDraw, ImageFont

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from idp_assets.logic.pages import load_document, page_image_loader  # noqa: E402
from idp_assets.models import RawPage, RawPages  # noqa: E402
from resources.ocr import (  # noqa: E402
    EngineOptions,
    EngineOutput,
    OcrEngine,
    UnknownEngineError,
    get_engine,
    known_engines,
    register_engine,
    unregister_engine,
)
from resources.ocr.router import OcrRouter, RoutePrefs, engine_chain, route_page  # noqa: E402
from resources.ocr.text_layer import text_layer_confidence  # noqa: E402

CORPUS = (Path(__file__).resolve().parent.parent.parent / "shared" / "corpus").resolve()
DOC_ID = "1" * 64
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
PARAGRAPH = [
    "Rechnung Nummer 2024-0815 vom 12. März 2024",
    "Lieferant: Beispiel Handels GmbH, Hauptstraße 5",
    "Summe netto 1.250,00 EUR zuzüglich Umsatzsteuer",
    "Please pay within thirty days to the account below",
    "Thank you for your business and kind regards",
]
HEALTHY = {"text_layer": (True, "ok"), "tesseract": (True, "ok"), "docling": (True, "ok")}


@pytest.fixture(scope="module")
def corpus_dir() -> Path:
    if not (CORPUS / "manifest.jsonl").exists():
        pytest.fail(f"evaluation corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="module")
def manifest(corpus_dir) -> dict[str, dict]:
    return {d["id"]: d for d in map(json.loads, (corpus_dir / "manifest.jsonl").read_text().splitlines())}


@pytest.fixture(scope="module")
def word_f1(corpus_dir):
    spec = importlib.util.spec_from_file_location("score", corpus_dir.parent / "tools" / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.word_f1


@pytest.fixture(scope="module")
def router() -> OcrRouter:
    return OcrRouter()


def page_image(lines=PARAGRAPH, size=(1700, 700), font_px=34) -> Image.Image:
    if not FONT.exists():
        pytest.fail(f"font {FONT} missing (apt-get install fonts-dejavu-core)")
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), font_px)
    for i, line in enumerate(lines):
        draw.text((70, 70 + i * int(font_px * 1.7)), line, fill=0, font=font)
    return img


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", dpi=(300, 300))
    return buf.getvalue()


def noisy(img: Image.Image, amount: float = 0.03, seed: int = 7) -> Image.Image:
    """Salt-and-pepper noise on 3% of the pixels: the same page, much harder to read (6% reads nothing)."""
    rnd = random.Random(seed)
    out = img.copy()
    px = out.load()
    w, h = out.size
    for _ in range(int(w * h * amount)):
        x, y = rnd.randrange(w), rnd.randrange(h)
        px[x, y] = 0 if rnd.random() < 0.5 else 255
    return out


# --------------------------------------------------------------------------- registry


def test_registry_lists_builtins():
    assert {"text_layer", "tesseract", "docling"} <= set(known_engines())


def test_registry_unknown_name_lists_known():
    with pytest.raises(UnknownEngineError) as exc:
        get_engine("no_such_engine")
    assert "tesseract" in str(exc.value) and "text_layer" in str(exc.value)


def test_registry_duplicate_and_options():
    class DummyOptions(EngineOptions):
        kind: Literal["dummy_test"] = "dummy_test"
        factor: int = 1

    class Dummy(OcrEngine):
        name = "dummy_test"
        options_class = DummyOptions

        def read(self, page_image, raw_page):
            return EngineOutput(text="x", confidence=0.5)

    register_engine(Dummy)
    try:
        with pytest.raises(ValueError, match="already registered"):
            register_engine(Dummy)
        a = get_engine("dummy_test", factor=2)
        assert a is get_engine("dummy_test", factor=2)  # one shared instance per options
        assert a is not get_engine("dummy_test", factor=3)
        assert a.options.kind == "dummy_test" and a.options.factor == 2
        with pytest.raises(Exception):
            get_engine("dummy_test", unknown_option=1)
    finally:
        unregister_engine("dummy_test")
    assert "dummy_test" not in known_engines()


def test_engine_health_and_attributes():
    tess = get_engine("tesseract")
    ok, reason = tess.health()
    assert ok, reason
    assert tess.compute == "cpu" and "image" in tess.inputs
    assert tess.languages == ["deu", "eng"] and tess.batch_size >= 1
    assert get_engine("text_layer").inputs == frozenset({"pdf_text"})
    bad = get_engine("tesseract", lang="xxx")
    ok, reason = bad.health()
    assert not ok and "xxx" in reason


# --------------------------------------------------------------------------- routing (pure)


def _page(**kw) -> RawPage:
    base = dict(number=1, width=0, height=0, dpi=300.0)
    base.update(kw)
    return RawPage(**base)


def test_route_page_rules():
    born = _page(text_layer="Invoice " * 40, text_layer_chars=280, image_coverage=0.03)
    scan = _page(width=2480, height=3508, text_layer_chars=0, image_coverage=1.0)
    stamp = _page(text_layer="COPY 123", text_layer_chars=7, image_coverage=1.0)
    assert route_page(born, HEALTHY)[0] == "text_layer"
    name, reason = route_page(scan, HEALTHY)
    assert name == "tesseract" and "no text layer" in reason
    assert route_page(stamp, HEALTHY)[0] == "tesseract"
    assert route_page(scan, HEALTHY, kind="image") == ("tesseract", "image document")
    assert route_page(born, HEALTHY, kind="office")[0] == "docling"
    garbled = _page(text_layer="\ue001\ue002\ue003 " * 30, text_layer_chars=90)
    name, reason = route_page(garbled, HEALTHY)
    assert name == "tesseract" and "garbled" in reason

    down = dict(HEALTHY, tesseract=(False, "tessdata missing"))
    assert route_page(scan, down)[0] is None
    assert "tessdata missing" in route_page(scan, down)[1]
    name, reason = route_page(stamp, down)
    assert name == "text_layer" and "no healthy image engine" in reason
    assert route_page(born, HEALTHY, RoutePrefs(force_engine="tesseract")) == ("tesseract", "forced by configuration")
    assert engine_chain("text_layer", born, HEALTHY) == ["text_layer", "tesseract"]
    assert engine_chain("tesseract", stamp, HEALTHY) == ["tesseract", "text_layer"]
    assert engine_chain("tesseract", scan, HEALTHY) == ["tesseract"]


def test_text_layer_confidence_is_measured():
    assert text_layer_confidence("Rechnung über 12,00 €") == 1.0
    assert text_layer_confidence("") is None
    assert 0.4 < text_layer_confidence("abcd\ue000\ue001\ue002\ue003") < 0.6
    assert text_layer_confidence("FÃ¼r GrÃ¶ÃŸe") < 0.8  # mojibake


# --------------------------------------------------------------------------- documents end to end


def test_born_digital_pdf_routes_to_text_layer(router, corpus_dir):
    data = (corpus_dir / "einvoices" / "einvoice-zugferd-1p0-basic-einfach.pdf").read_bytes()
    raw, images = load_document(DOC_ID, data, "application/pdf")
    assert images == [None]  # nothing rendered
    out = router.ocr_document(raw, images)
    page = out.pages[0]
    assert page.engine == "text_layer" and page.compute == "cpu"
    assert "text layer complete" in page.route_reason
    assert 0.9 <= page.confidence <= 1.0
    assert "Lieferant GmbH" in page.text and "\r" not in page.text
    assert [a.engine for a in page.attempts] == ["text_layer"] and page.attempts[0].ok
    assert page.empty_reason is None and page.rotation == 0


def test_clean_image_routes_to_tesseract(router):
    raw, images = load_document(DOC_ID, png(page_image()), None)
    out = router.ocr_document(raw, images)
    page = out.pages[0]
    # a clean synthetic page has low complexity: the fast engine reads it
    assert page.engine == "tesseract" and page.route_reason.startswith("image document; complexity 0.")
    assert "fast engine" in page.route_reason
    assert 0.0 < page.confidence <= 1.0
    assert "Beispiel" in page.text and "Rechnung" in page.text
    assert len(page.text.splitlines()) >= 5  # line structure kept
    assert page.words and all(0.0 <= w.confidence <= 1.0 for w in page.words)
    w = next(w for w in page.words if w.text == "Rechnung")
    x0, y0, x1, y1 = w.bbox
    assert 50 <= x0 < x1 <= 400 and 50 <= y0 < y1 <= 140  # first line, left
    assert page.attempts[0].engine == "tesseract" and page.attempts[0].seconds > 0


def test_rotated_image_is_turned_upright(router):
    img = page_image().rotate(90, expand=True)  # text runs bottom-to-top
    raw, images = load_document(DOC_ID, png(img), None)
    page = router.ocr_document(raw, images).pages[0]
    assert page.rotation == 90  # turned 90 degrees clockwise before reading
    assert "Beispiel" in page.text
    assert (page.width, page.height) == (img.height, img.width)


def _with_rotate(data: bytes, rotate: int) -> bytes:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    writer = pypdf.PdfWriter()
    for p in reader.pages:
        p[pypdf.generic.NameObject("/Rotate")] = pypdf.generic.NumberObject(rotate)
        writer.add_page(p)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


# (corpus file, /Rotate to set or None to keep, expected clockwise correction)
ROTATED = [
    ("scan-docling-ocr-test-rotated-180.pdf", None, 180),
    ("scan-docling-ocr-test-rotated-90.pdf", None, 90),
    ("scan-docling-ocr-test-rotated-180.pdf", 0, 0),  # same scan shown upright
    ("scan-docling-ocr-test-rotated-180.pdf", 90, 270),  # and turned the other way
]


@pytest.mark.parametrize("name,rotate,expected", ROTATED, ids=[f"{n[-7:-4]}@{r}" for n, r, _ in ROTATED])
def test_scans_rotated(router, corpus_dir, manifest, word_f1, name, rotate, expected):
    data = (corpus_dir / "scans_rotated" / name).read_bytes()
    if rotate is not None:
        data = _with_rotate(data, rotate)
    raw, images = load_document(DOC_ID, data, "application/pdf")
    assert images[0] is not None
    page = router.ocr_document(raw, images).pages[0]
    gt = manifest[name[:-4]]["text"]
    assert page.engine == "tesseract"
    assert page.rotation == expected
    assert word_f1(page.text, gt) >= 0.95, page.text
    assert page.confidence > 0.8


def test_clean_page_more_confident_than_noisy_page():
    engine = get_engine("tesseract")
    clean = page_image()
    raw = _page(width=clean.width, height=clean.height)
    c_clean = engine.read(clean, raw).confidence
    c_noisy = engine.read(noisy(clean), raw).confidence
    assert c_clean is not None and c_noisy is not None
    assert c_clean > c_noisy + 0.05, (c_clean, c_noisy)


def test_blank_page_has_empty_reason(router):
    raw, images = load_document(DOC_ID, png(Image.new("L", (1200, 1600), 255)), None)
    page = router.ocr_document(raw, images).pages[0]
    assert page.text == "" and page.confidence is None
    assert page.empty_reason and "no text" in page.empty_reason


def test_low_confidence_text_layer_falls_back_to_tesseract(corpus_dir):
    # a born-digital page whose text layer has ~5% unmapped characters: complete (>= 90% mapped)
    # but below a strict min_confidence, so the router renders the page and reads it with Tesseract
    data = (corpus_dir / "invoices_pdf" / "invoice-i2d-oyo.pdf").read_bytes()
    raw, images = load_document(DOC_ID, data, "application/pdf")
    text = raw.pages[0].text_layer
    damaged = "".join("\ue000" if i % 20 == 0 and not ch.isspace() else ch for i, ch in enumerate(text))
    raw.pages[0] = raw.pages[0].model_copy(update={"text_layer": damaged})
    strict = OcrRouter(min_confidence=0.99)
    page = strict.ocr_document(raw, images, render=page_image_loader(data, raw, dpi=200)).pages[0]
    # nobody reaches 0.99: text layer, then the fast and the accurate image engine (max_attempts=3)
    assert [a.engine for a in page.attempts] == ["text_layer", "tesseract", "rapidocr"]
    assert page.attempts[0].error and "confidence" in page.attempts[0].error
    assert page.engine in ("tesseract", "rapidocr", "text_layer")
    # the kept reading is the most confident one, and the agreement with another reading is recorded
    assert page.confidence == max(a.confidence for a in page.attempts if a.confidence is not None)
    assert "agreement with" in page.route_reason
    assert "text_layer: confidence" in page.route_reason
    assert page.attempts[1].ok and page.attempts[1].confidence is not None


def test_failing_engine_falls_back():
    class BrokenOptions(EngineOptions):
        kind: Literal["broken_test"] = "broken_test"

    class Broken(OcrEngine):
        name = "broken_test"
        options_class = BrokenOptions

        def read(self, page_image, raw_page):
            raise RuntimeError("GPU fell off the bus")

    register_engine(Broken)
    try:
        r = OcrRouter(image_engines=["broken_test", "tesseract"])
        raw, images = load_document(DOC_ID, png(page_image()), None)
        page = r.ocr_document(raw, images).pages[0]
        assert [a.engine for a in page.attempts] == ["broken_test", "tesseract"]
        assert not page.attempts[0].ok and "GPU fell off the bus" in page.attempts[0].error
        assert page.engine == "tesseract" and "broken_test failed" in page.route_reason
        assert "Beispiel" in page.text
    finally:
        unregister_engine("broken_test")


def test_office_document_uses_docling_text(router):
    raw = RawPages(
        document_id=DOC_ID,
        kind="office",
        pages=[RawPage(number=1, width=0, height=0, dpi=0.0, text_layer="| a | b |", text_layer_chars=6)],
        office_text="# Angebot\n\n| a | b |",
    )
    page = router.ocr_document(raw, [None]).pages[0]
    assert page.engine == "docling" and page.text.startswith("# Angebot")
    assert page.confidence == 1.0 and page.compute == "cpu"


def test_router_is_a_dagster_resource():
    from dagster import ConfigurableResource

    r = OcrRouter(languages="eng", dpi=200, min_confidence=0.4)
    assert isinstance(r, ConfigurableResource)
    assert r.engine("tesseract").languages == ["eng"]
    assert set(r.engines_health()) >= {"tesseract", "text_layer", "docling"}


def test_a_text_free_picture_on_a_born_digital_page_is_read_by_ocr():
    # saeco: the seller's name, address and VAT number are an image under a complete text layer;
    # netpresse: only a small logo (under IMAGE_REGION_MIN_AREA), nothing to read
    data = (CORPUS / "invoices_pdf" / "invoice-i2d-saeco.pdf").read_bytes()
    raw, images = load_document("5" * 64, data, "application/pdf")
    page = raw.pages[0]
    assert images == [None] and len(page.image_regions) == 1
    x0, y0, x1, y1 = page.image_regions[0]
    assert 0 <= x0 < x1 <= 1 and 0.5 < y0 < y1 <= 1  # near the bottom, origin top left
    out = OcrRouter().ocr_document(raw, images, render=page_image_loader(data, raw)).pages[0]
    assert out.engine == "text_layer" and "1 of 1 picture(s) without text layer read by" in out.route_reason
    assert "Factuur" in out.text and "Nederland B.V." in out.text  # the text layer and the picture
    assert len(out.attempts) == 2 and out.attempts[1].ok and 0 < out.attempts[1].confidence <= 1
    small, _ = load_document("6" * 64, (CORPUS / "invoices_pdf" / "invoice-i2d-netpresseinvoice.pdf").read_bytes(),
                             "application/pdf")
    assert 0 < small.pages[0].image_coverage < 0.05 and small.pages[0].image_regions == []
