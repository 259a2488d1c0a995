"""Router: complexity features and score, engine choice, per-page timeout, agreement, corpus confidence."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from idp_assets.logic.pages import load_document  # noqa: E402
from idp_assets.logic.routing import (  # noqa: E402
    PageFeatures,
    choose_engines,
    complexity_score,
    complexity_terms,
    estimate_skew,
    page_features,
)
from idp_assets.models import RawPage  # noqa: E402
from resources.ocr import EngineOptions, EngineOutput, OcrEngine, get_engine, register_engine, unregister_engine  # noqa: E402
from resources.ocr.router import EngineTimeout, OcrRouter, run_with_timeout, word_agreement  # noqa: E402

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
CORPUS = (Path(__file__).resolve().parent.parent.parent / "shared" / "corpus").resolve()
LINES = ["Rechnung Nummer 2024-0815 vom 12. Maerz 2024", "Summe netto 1.250,00 EUR", "Bitte zahlen Sie innerhalb 30 Tagen"] * 4
H = {"tesseract": (True, "ok"), "rapidocr": (True, "ok"), "got_ocr2": (True, "ok")}


def text_page(size=(1600, 1200), font_px=30, lines=LINES) -> Image.Image:
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), font_px)
    for i, line in enumerate(lines):
        draw.text((80, 80 + i * int(font_px * 1.8)), line, fill=0, font=font)
    return img


def grid(img: Image.Image, step=80) -> Image.Image:
    img = img.copy()
    draw = ImageDraw.Draw(img)
    for y in range(40, img.height - 40, step):
        draw.line((40, y, img.width - 40, y), fill=0, width=3)
    for x in range(40, img.width - 40, step * 4):
        draw.line((x, 40, x, img.height - 40), fill=0, width=3)
    return img


def speckle(img: Image.Image, share=0.02, seed=1) -> Image.Image:
    arr = np.asarray(img).copy()
    rng = np.random.default_rng(seed)
    mask = rng.random(arr.shape) < share
    arr[mask] = 0
    return Image.fromarray(arr)


def test_features_measure_what_they_claim():
    clean = page_features(text_page(), dpi=300)
    assert clean.skew_deg <= 0.5 and clean.ruling_density < 0.05 and clean.noise < 0.2
    skewed = page_features(text_page().rotate(4, expand=True, fillcolor=255), dpi=300)
    assert 3.0 <= skewed.skew_deg <= 5.0
    ruled = page_features(grid(text_page()), dpi=300)
    assert ruled.ruling_density > clean.ruling_density + 0.1
    noisy = page_features(speckle(text_page()), dpi=300)
    assert noisy.noise > clean.noise + 0.3
    assert page_features(text_page(), dpi=300, text_layer_chars=2000).text_layer_coverage == 1.0
    blank = page_features(Image.new("L", (500, 500), 255), dpi=150)
    assert blank.noise == 0.0 and blank.dpi == 150


def test_estimate_skew_on_lines():
    bw = np.zeros((400, 800), np.uint8)
    for y in range(50, 350, 30):
        bw[y : y + 4, 50:750] = 255
    assert estimate_skew(bw) == 0.0
    rot = np.asarray(Image.fromarray(bw).rotate(3, expand=True))
    assert 2.5 <= estimate_skew(rot) <= 3.5


def test_complexity_formula():
    base = PageFeatures(dpi=300)
    assert complexity_score(base) == 0.0
    assert complexity_terms(PageFeatures(dpi=100))["low_dpi"] == 1.0
    low_dpi = complexity_score(PageFeatures(dpi=100))
    assert low_dpi == pytest.approx(0.25)
    everything = PageFeatures(dpi=50, skew_deg=10, noise=1, ruling_density=1, text_density=100, handwriting=1)
    assert complexity_score(everything) == 1.0
    # a complete text layer means nothing to read from pixels
    assert complexity_score(PageFeatures(dpi=50, noise=1, text_layer_coverage=1.0)) == 0.0
    # measured ordering: clean < noisy low-resolution ruled page
    clean = complexity_score(page_features(text_page(), dpi=300))
    hard = complexity_score(page_features(speckle(grid(text_page())), dpi=110))
    assert clean < 0.2 <= hard


def test_choose_engines():
    chain, why = choose_engines(0.1, H)
    assert chain == ["tesseract", "rapidocr"] and "fast engine" in why
    chain, why = choose_engines(0.35, H)
    assert chain == ["rapidocr", "tesseract"] and "accurate engine" in why
    # GPU engines only when configured ...
    assert choose_engines(0.8, H)[0] == ["rapidocr", "tesseract"]
    chain, why = choose_engines(0.8, H, gpu=["got_ocr2"])
    assert chain == ["got_ocr2", "rapidocr", "tesseract"] and "GPU" in why
    # ... and healthy
    sick = {**H, "got_ocr2": (False, "no CUDA device")}
    chain, why = choose_engines(0.8, sick, gpu=["got_ocr2"])
    assert chain == ["rapidocr", "tesseract"] and "got_ocr2 (no CUDA device)" in why
    # a full gpu pool sends the page to the CPU engines first, GPU last
    chain, why = choose_engines(0.8, H, gpu=["got_ocr2"], occupancy={"gpu": 1.0}, compute_of={"got_ocr2": "gpu"})
    assert chain == ["rapidocr", "tesseract", "got_ocr2"] and "pool is full" in why
    # unhealthy CPU engines are left out
    chain, _ = choose_engines(0.1, {**H, "tesseract": (False, "no tessdata")})
    assert chain == ["rapidocr"]


def test_word_agreement():
    assert word_agreement("Total 12.00", "total 12.00") == 1.0
    assert word_agreement("a b c d", "a b x y") == 0.5
    assert word_agreement("", "") is None
    assert word_agreement("a", "") == 0.0


def test_run_with_timeout():
    assert run_with_timeout(lambda: 5, 1.0) == 5
    with pytest.raises(ValueError):
        run_with_timeout(lambda: (_ for _ in ()).throw(ValueError("x")), 1.0)
    with pytest.raises(EngineTimeout):
        run_with_timeout(lambda: time.sleep(2), 0.1)


class _SlowOptions(EngineOptions):
    kind: Literal["slow_test"] = "slow_test"


class _Slow(OcrEngine):
    name = "slow_test"
    options_class = _SlowOptions

    def read(self, page_image, raw_page):
        time.sleep(30)  # daemon worker: abandoned after the timeout
        return EngineOutput(text="never", confidence=0.99)


def _png(img) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_router_cuts_off_slow_engine_and_falls_back():
    register_engine(_Slow)
    try:
        router = OcrRouter(accurate_engines=["slow_test"], fast_engines=["tesseract"], fast_below=0.0, page_timeout_s=6.0)
        raw, images = load_document("2" * 64, _png(text_page()), None)
        page = router.ocr_document(raw, images).pages[0]
        assert [a.engine for a in page.attempts] == ["slow_test", "tesseract"]
        assert not page.attempts[0].ok and "EngineTimeout" in page.attempts[0].error
        assert page.attempts[0].seconds < 15.0
        assert page.engine == "tesseract" and "slow_test timed out" in page.route_reason
        assert "complexity" in page.route_reason and "Rechnung" in page.text
    finally:
        unregister_engine("slow_test")


def test_router_sends_hard_pages_to_the_accurate_engine():
    router = OcrRouter()
    img = speckle(grid(text_page()), share=0.01)
    raw, images = load_document("3" * 64, _png(img), None)
    page = router.ocr_document(raw, images).pages[0]
    assert page.engine == "rapidocr" and "accurate engine" in page.route_reason
    assert page.attempts[0].engine == "rapidocr" and page.confidence is not None
    assert "Rechnung" in page.text


def test_gpu_engines_are_not_routed_to_without_health():
    router = OcrRouter(gpu_engines=["no_such_gpu_engine"], gpu_above=0.0)
    health = router.engines_health()
    assert health["no_such_gpu_engine"][0] is False
    raw = RawPage(number=1, width=10, height=10, dpi=100)
    chain, why, features = router.complexity_chain(raw, text_page(), health)
    assert features is not None
    assert "no_such_gpu_engine" not in chain and "unknown OCR engine" in why


@pytest.mark.slow
def test_page_confidence_tracks_word_f1_on_the_corpus():
    """Mean page confidence separates well-read from badly-read corpus receipts (Tesseract)."""
    manifest = [json.loads(line) for line in (CORPUS / "manifest.jsonl").read_text().splitlines()]
    spec = importlib.util.spec_from_file_location("score", CORPUS.parent / "tools" / "score.py")
    score = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(score)
    engine = get_engine("tesseract", detect_orientation=False)
    docs = [d for d in manifest if d["category"] == "receipts"][:10]
    f1s, confs = [], []
    for d in docs:
        with Image.open(CORPUS / d["file"]) as im:
            im.load()
            out = engine.read(im, RawPage(number=1, width=im.width, height=im.height, dpi=200))
        f1s.append(score.word_f1(out.text, d["text"]))
        confs.append(out.confidence or 0.0)
    corr = float(np.corrcoef(f1s, confs)[0, 1])
    assert corr > 0.5, (corr, list(zip(f1s, confs)))
    order = np.argsort(confs)
    # the most confident half reads better than the least confident half
    assert np.mean([f1s[i] for i in order[5:]]) > np.mean([f1s[i] for i in order[:5]])


def test_ocr_compute_class_follows_the_gpu_configuration(tmp_path):
    from idp_assets.compute import compute_op_tags
    from idp_assets.ocr import ocr_compute
    from idp_assets.settings import build_resources

    assert ocr_compute({}) == "cpu" and ocr_compute({"IDP_OCR_GPU_ENGINES": ""}) == "cpu"
    assert ocr_compute({"IDP_OCR_GPU_ENGINES": "got_ocr2"}) == "gpu"
    tags = compute_op_tags("gpu")
    k8s = tags["dagster-k8s/config"]
    assert tags["dagster-celery/queue"] == "gpu" and tags["idp/compute"] == "gpu"
    assert k8s["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert k8s["pod_spec_config"]["node_selector"] == {"idp.compute": "gpu"}
    env = {
        "IDP_OCR_GPU_ENGINES": "got_ocr2,vlm_endpoint",
        "IDP_OCR_ENGINE_SETTINGS": json.dumps({"got_ocr2": {"model_path": "/models/got", "dtype": "bfloat16"}}),
    }
    router = build_resources(env, data_dir=str(tmp_path))["ocr_router"]
    assert router.gpu_engines == ["got_ocr2", "vlm_endpoint"]
    assert router.engine_options("got_ocr2") == {"model_path": "/models/got", "dtype": "bfloat16"}
    health = router.engines_health()
    assert health["got_ocr2"][0] is False  # no such folder here: never routed to


def test_skewed_page_is_deskewed_before_reading():
    from idp_assets.logic.pages import deskew

    img = text_page().rotate(4, expand=True, fillcolor=255)
    f = page_features(img, dpi=300)
    assert -4.5 <= f.skew_angle <= -3.0 and f.skew_deg == abs(f.skew_angle)
    assert page_features(deskew(img, f.skew_angle), dpi=300).skew_deg <= 0.5
    router = OcrRouter()
    raw, images = load_document("5" * 64, _png(img), None)
    page = router.ocr_document(raw, images).pages[0]
    assert "deskewed -" in page.route_reason and "Rechnung" in page.text


def test_pool_occupancy_from_a_dagster_instance():
    from dagster import DagsterInstance

    from idp_assets.ocr import pool_occupancy

    with DagsterInstance.ephemeral() as instance:
        assert pool_occupancy(instance) == {} or all(0.0 <= v for v in pool_occupancy(instance).values())

    class Info:
        limit, slot_count, active_slot_count, pending_step_count = 1, 1, 1, 2

    class Storage:
        def get_concurrency_info(self, pool):
            if pool == "cpu":
                raise NotImplementedError
            return Info()

    class Instance:
        event_log_storage = Storage()

    assert pool_occupancy(Instance()) == {"gpu": 3.0}
