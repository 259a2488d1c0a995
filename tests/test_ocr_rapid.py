"""RapidOCR engine: space recovery from character boxes, line grouping, real reads with measured confidences."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from idp_assets.models import RawPage  # noqa: E402
from resources.ocr import get_engine, known_engines  # noqa: E402
from resources.ocr.base import EngineError  # noqa: E402
from resources.ocr.rapid import aligned_char_scores, group_lines, split_segment  # noqa: E402

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
LINES = [
    "Invoice 2024-0815 dated 12 March 2024",
    "Supplier: Example Trading Ltd, Main Street 5",
    "Total amount 1250.00 EUR including tax",
]


def _chars(text: str, pitch: float = 10.0, gap_after: dict[int, float] | None = None):
    """Fake RapidOCR single-char results for `text` (spaces removed), boxes `pitch` wide."""
    gap_after = gap_after or {}
    out, x = [], 0.0
    for k, ch in enumerate(c for c in text if not c.isspace()):
        out.append((ch, 0.9 - 0.01 * k, [[x, 0], [x + pitch, 0], [x + pitch, 20], [x, 20]]))
        x += pitch + gap_after.get(k, 0.0)
    return out


def test_split_segment_restores_dropped_spaces():
    # "JalanSS21" read without its space, but the CTC boxes leave a 12 px gap after 'n' (pitch 10)
    words = split_segment("JalanSS21", _chars("JalanSS21", gap_after={4: 12.0}), 0.95, space_gap=1.0)
    assert [w for w, _, _ in words] == ["Jalan", "SS21"]
    # word confidence = mean of its characters' scores (not the segment score)
    assert words[0][1] == pytest.approx(sum(0.9 - 0.01 * k for k in range(5)) / 5)
    assert words[1][2][0] > words[0][2][2]  # second word's box starts right of the first
    # a small gap (inside a word) is not a space
    assert [w for w, _, _ in split_segment("Total", _chars("Total", gap_after={1: 4.0}), 0.9, 1.0)] == ["Total"]
    # spaces in the recognised text are kept
    assert [w for w, _, _ in split_segment("a bc", _chars("a bc"), 0.9, 1.0)] == ["a", "bc"]


def test_split_segment_falls_back_when_chars_do_not_line_up():
    words = split_segment("ab cd", _chars("abx"), 0.77, 1.0)
    assert words == [("ab", 0.77, None), ("cd", 0.77, None)]
    assert split_segment("ab cd", None, 0.5, 1.0) == [("ab", 0.5, None), ("cd", 0.5, None)]


def test_aligned_char_scores_give_each_character_its_own_score():
    # the recogniser decoded "ab cd" with these scores (the space included); RapidOCR's per-character
    # results pair them by position without the space: c gets the space's 0.99, d gets c's 0.5
    decoded = [0.9, 0.8, 0.99, 0.5, 0.4]
    shifted = [(ch, sc, [[0, 0]]) for ch, sc in zip("abcd", decoded)]
    fixed = aligned_char_scores("ab cd", decoded, shifted)
    assert [(c, s) for c, s, _ in fixed] == [("a", 0.9), ("b", 0.8), ("c", 0.5), ("d", 0.4)]
    assert fixed[2][2] == shifted[2][2]  # boxes kept
    # lengths that do not fit: left as they are
    assert aligned_char_scores("ab cd", decoded[:4], shifted) is shifted
    assert aligned_char_scores("ab cd", None, shifted) is shifted
    assert aligned_char_scores("ab", [0.9, 0.8], None) is None


def test_group_lines_orders_segments():
    boxes = [(300, 12, 400, 30), (10, 10, 200, 30), (10, 50, 200, 70), (210, 52, 290, 71)]
    assert group_lines(boxes) == [[1, 0], [2, 3]]
    assert group_lines([]) == []


def _page(lines=LINES, size=(1400, 420), font_px=32) -> Image.Image:
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), font_px)
    for i, line in enumerate(lines):
        draw.text((60, 50 + i * int(font_px * 1.9)), line, fill="black", font=font)
    return img


@pytest.fixture(scope="module")
def rapid():
    if not FONT.exists():
        pytest.fail(f"font {FONT} missing (apt-get install fonts-dejavu-core)")
    assert "rapidocr" in known_engines()
    engine = get_engine("rapidocr")
    ok, why = engine.health()
    assert ok, why
    return engine


def test_rapidocr_reads_words_lines_and_confidences(rapid):
    img = _page()
    out = rapid.read(img, RawPage(number=1, width=img.width, height=img.height, dpi=200))
    assert "Supplier" in out.text and "1250.00" in out.text
    assert len(out.text.splitlines()) == 3
    assert out.words and all(0.0 <= w.confidence <= 1.0 for w in out.words)
    assert len({w.confidence for w in out.words}) > 1  # per-word, measured
    w = next(w for w in out.words if w.text.startswith("Invoice"))
    assert w.line == 0 and 40 <= w.bbox[0] < w.bbox[2] < 400 and w.bbox[1] < 120
    assert 0.8 < out.confidence <= 1.0 and out.rotation == 0
    assert out.details["seconds"]["recognize"] > 0


def test_rapidocr_confidence_drops_on_a_degraded_page(rapid):
    clean = _page()
    # heavy blur + downscale: the same text, much harder to read
    bad = clean.resize((clean.width // 4, clean.height // 4)).filter(ImageFilter.GaussianBlur(1.6))
    bad = bad.resize(clean.size)
    raw = RawPage(number=1, width=clean.width, height=clean.height, dpi=200)
    good_out, bad_out = rapid.read(clean, raw), rapid.read(bad, raw)
    assert good_out.confidence is not None
    assert bad_out.confidence is None or bad_out.confidence < good_out.confidence


def test_rapidocr_turns_rotated_pages_upright(rapid):
    img = _page(LINES * 3, size=(1400, 1200)).rotate(-90, expand=True)  # turned clockwise
    out = rapid.read(img, RawPage(number=1, width=img.width, height=img.height, dpi=200))
    assert out.rotation in (90, 270) and "Supplier" in out.text
    assert (out.width, out.height) == (img.height, img.width)


def test_rapidocr_needs_an_image(rapid):
    with pytest.raises(EngineError, match="needs a page image"):
        rapid.read(None, RawPage(number=1, width=0, height=0, dpi=0))


def test_upside_down_share_tells_turned_receipts_from_upright_ones(rapid, corpus):
    """The line classifier that verifies OSD's '180' on real corpus receipts, upright and turned."""
    for name in ("receipt-sroie-002.jpg", "receipt-sroie-040.jpg"):
        page = Image.open(corpus / "receipts" / name).convert("RGB")
        up, down = rapid._upside_down_share(page), rapid._upside_down_share(page.rotate(180))
        assert up is not None and down is not None
        assert up < 0.2 < 0.6 < down, (name, up, down)
    assert rapid._upside_down_share(Image.new("RGB", (400, 300), "white")) is None  # no text: cannot tell


def test_rapidocr_reads_a_page_turned_upside_down(rapid):
    img = _page(LINES * 3, size=(1400, 1200)).rotate(180)
    out = rapid.read(img, RawPage(number=1, width=img.width, height=img.height, dpi=200))
    assert out.rotation == 180 and "Supplier" in out.text
    assert out.details["osd"]["upside_down_share"] > 0.5


# Eight corpus receipts spanning RapidOCR's word F1 (every fifth of the 36 receipts ranked by it, 0.74-1.0).
CONFIDENCE_RECEIPTS = ["417", "008", "040", "174", "061", "618", "002", "591"]


def _ranks(xs: list[float]) -> list[float]:
    order = sorted(range(len(xs)), key=xs.__getitem__)
    ranks = [0.0] * len(xs)
    for r, i in enumerate(order):
        ranks[i] = float(r)
    return ranks


def _auc(labels: list[bool], scores: list[float]) -> float:
    """Probability that a correct item scores above a wrong one (ties count half)."""
    pos = [s for ok, s in zip(labels, scores) if ok]
    neg = [s for ok, s in zip(labels, scores) if not ok]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_confidences_track_reading_quality_on_corpus_receipts(rapid, corpus):
    """Page confidence follows word F1 against the ground truth, and word confidence tells
    words found in the ground truth from misread ones (measured on these pages: page Pearson r 0.63,
    Spearman 0.90; word AUC 0.85, 0.75 with RapidOCR's own shifted character scores)."""
    spec = importlib.util.spec_from_file_location("idp_corpus_score", corpus.parent / "tools" / "score.py")
    score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score)
    manifest = {d["id"]: d for d in map(json.loads, (corpus / "manifest.jsonl").read_text().splitlines())}
    f1s, confs, word_ok, word_conf = [], [], [], []
    for n in CONFIDENCE_RECEIPTS:
        doc = manifest[f"receipt-sroie-{n}"]
        with Image.open(corpus / doc["file"]) as im:
            page = im.convert("RGB")
        out = rapid.read(page, RawPage(number=1, width=page.width, height=page.height, dpi=200))
        f1s.append(score.word_f1(out.text, doc["text"]))
        confs.append(out.confidence)
        truth = set(score.words(doc["text"]))
        for w in out.words:
            if score.words(w.text):
                word_ok.append(all(x in truth for x in score.words(w.text)))
                word_conf.append(w.confidence)
    assert len(set(confs)) >= len(confs) - 2, confs  # measured per page, not a constant (4-decimal ties happen)
    pearson = statistics.correlation(confs, f1s)
    spearman = statistics.correlation(_ranks(confs), _ranks(f1s))
    assert pearson >= 0.4 and spearman >= 0.6, (pearson, spearman, list(zip(f1s, confs)))
    order = sorted(range(len(confs)), key=confs.__getitem__)
    half = len(order) // 2
    assert statistics.fmean(f1s[i] for i in order[half:]) > statistics.fmean(f1s[i] for i in order[:half])
    assert 0.5 < sum(word_ok) / len(word_ok) < 1.0  # both kinds of words are there
    assert _auc(word_ok, word_conf) >= 0.78, _auc(word_ok, word_conf)
