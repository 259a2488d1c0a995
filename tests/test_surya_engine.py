"""Surya engine (surya-ocr 0.22, Surya 2 VLM): registry, health reasons, conversion of surya's own
result classes (surya.recognition.schema) into EngineOutput, and read() end to end through surya's
real RecognitionPredictor + inference manager + OpenAI client against a local stand-in server
that answers like a surya-ocr-2 server (HTML blocks with data-bbox, token logprobs)."""

from __future__ import annotations

import json
import math
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from idp_assets.models import RawPage  # noqa: E402
from resources.ocr import engine_class, known_engines  # noqa: E402
from resources.ocr.base import EngineError  # noqa: E402
from resources.ocr.surya import SuryaEngine, SuryaOptions, html_lines, output_from_result, page_words  # noqa: E402
from surya.recognition.schema import BlockOCRResult, PageOCRResult  # noqa: E402

RAW = RawPage(number=1, width=400, height=300, dpi=150)


def _engine(**kw) -> SuryaEngine:
    return SuryaEngine(SuryaOptions(**kw))


def test_registry_lists_surya():
    assert "surya" in known_engines()
    assert engine_class("surya") is SuryaEngine
    assert SuryaEngine().compute == "cpu"
    assert _engine(device="cuda").compute == "gpu"
    assert _engine(backend="server").compute == "gpu"
    assert SuryaEngine().languages == ["*"]
    assert _engine(batch=3).batch_size == 3


def test_health_not_configured():
    ok, why = SuryaEngine().health()
    assert not ok and "no model_path configured" in why
    ok, why = _engine(backend="server").health()
    assert not ok and "no inference_url" in why


def test_health_missing_and_empty_folder(tmp_path):
    ok, why = _engine(model_path=str(tmp_path / "nope")).health()
    assert not ok and "does not exist" in why
    ok, why = _engine(model_path=str(tmp_path)).health()
    assert not ok and "no model GGUF" in why
    (tmp_path / "surya-2.gguf").write_bytes(b"GGUF")
    ok, why = _engine(model_path=str(tmp_path)).health()
    assert not ok and "mmproj" in why
    (tmp_path / "surya-2-mmproj.gguf").write_bytes(b"GGUF")
    ok, why = _engine(model_path=str(tmp_path), llama_server="no-such-llama-server-binary").health()
    assert not ok and "no-such-llama-server-binary" in why and "not found" in why


def test_health_files_present_and_binary_found(tmp_path):
    (tmp_path / "surya-2.gguf").write_bytes(b"GGUF")
    (tmp_path / "surya-2-mmproj.gguf").write_bytes(b"GGUF")
    fake_bin = tmp_path / "bin" / "llama-server"
    fake_bin.parent.mkdir()
    fake_bin.write_text("#!/bin/sh\nexit 1\n")
    fake_bin.chmod(0o755)
    ok, why = _engine(model_path=str(tmp_path), llama_server=str(fake_bin)).health()
    assert ok, why
    assert "surya-2.gguf" in why


def test_health_server_unreachable():
    ok, why = _engine(backend="server", inference_url="http://127.0.0.1:9/v1").health()
    assert not ok and "not reachable" in why


def test_read_unhealthy_raises_clear_error(tmp_path):
    img = Image.new("RGB", (40, 20), "white")
    with pytest.raises(EngineError, match="no model_path configured"):
        SuryaEngine().read(img, RAW)
    with pytest.raises(EngineError, match="does not exist"):
        _engine(model_path=str(tmp_path / "gone")).read_batch([img], [RAW])
    with pytest.raises(EngineError, match="needs a page image"):
        SuryaEngine().read(None, RAW)


def test_html_lines():
    assert html_lines("<p>Rechnung Nr. <b>4711</b></p><p>Datum:&nbsp;01.02.2024</p>") == [
        "Rechnung Nr. 4711", "Datum: 01.02.2024"]
    assert html_lines("Summe<br>1.250,00 &euro;") == ["Summe", "1.250,00 €"]
    assert html_lines("<table><tr><th>Pos</th><th>Betrag</th></tr><tr><td>1</td><td>9,99</td></tr></table>") == [
        "Pos Betrag", "1 9,99"]
    assert html_lines("") == []


def _page() -> PageOCRResult:
    # as RecognitionPredictor builds it in block mode: own confidence per block, reading order not list order
    return PageOCRResult(
        image_bbox=[0, 0, 400, 300],
        blocks=[
            BlockOCRResult(polygon=[20, 200, 380, 260], label="Table", raw_label="Table", reading_order=2,
                           html="<table><tr><td>Summe</td><td>12,50</td></tr></table>", confidence=0.62),
            BlockOCRResult(polygon=[[20, 10], [300, 10], [300, 40], [20, 40]], label="SectionHeader",
                           raw_label="Section-Header", reading_order=0, html="<h1>Rechnung 4711</h1>",
                           confidence=0.98),
            BlockOCRResult(polygon=[20, 60, 420, 120], label="Text", raw_label="Text", reading_order=1,
                           html="<p>Musterstr. 1<br>12345 Berlin</p>", confidence=0.9),
            BlockOCRResult(polygon=[300, 130, 380, 190], label="Picture", raw_label="Picture", reading_order=3,
                           html="", skipped=True, confidence=1.0),
            BlockOCRResult(polygon=[20, 130, 200, 190], label="Text", raw_label="Text", reading_order=4,
                           html="", error=True, confidence=0.0),
        ],
    )


def test_page_words_from_surya_schema():
    words, lines, details = page_words(_page())
    assert lines == ["Rechnung 4711", "Musterstr. 1", "12345 Berlin", "Summe 12,50"]
    assert [(w.text, w.line, w.block) for w in words] == [
        ("Rechnung", 0, 0), ("4711", 0, 0), ("Musterstr.", 1, 1), ("1", 1, 1), ("12345", 2, 1),
        ("Berlin", 2, 1), ("Summe", 3, 2), ("12,50", 3, 2)]
    assert [w.confidence for w in words] == [0.98, 0.98, 0.9, 0.9, 0.9, 0.9, 0.62, 0.62]
    assert words[0].bbox == (20.0, 10.0, 300.0, 40.0)
    assert words[2].bbox == (20.0, 60.0, 400.0, 120.0)  # clamped to the page image
    assert details["skipped_blocks"] == 1 and details["error_blocks"] == 1
    assert details["labels"]["Text"] == 2


def test_output_confidence_is_weighted_by_word_length():
    out = output_from_result(_page(), 400, 300, 150.0)
    assert out.text == "Rechnung 4711\nMusterstr. 1\n12345 Berlin\nSumme 12,50"
    n = {0.98: len("Rechnung4711"), 0.9: len("Musterstr.112345Berlin"), 0.62: len("Summe12,50")}
    expected = sum(c * k for c, k in n.items()) / sum(n.values())
    assert out.confidence == pytest.approx(expected, abs=1e-4)
    assert (out.width, out.height, out.dpi) == (400, 300, 150.0)
    empty = output_from_result(PageOCRResult(blocks=[], image_bbox=[0, 0, 10, 10]), 10, 10)
    assert empty.confidence is None and empty.words == [] and empty.text == ""


# -- end to end: surya's predictor/manager/OpenAI client against a local stand-in server --------
ANSWER = ('<div data-bbox="50 33 600 133" data-label="Section-Header"><h1>Rechnung 4711</h1></div>'
          '<div data-bbox="50 500 900 700" data-label="Text"><p>Summe 12,50 EUR</p></div>')
LOGPROBS = [-0.01, -0.2, -0.05, -0.9]


class _Handler(BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def _json(self, body: dict):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self._json({"status": "ok"})
        elif self.path == "/v1/models":
            self._json({"object": "list", "data": [{"id": "datalab-to/surya-ocr-2", "object": "model"}]})
        else:
            self.send_error(404)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(req)
        content = [{"token": f"t{i}", "logprob": lp, "bytes": None, "top_logprobs": []} for i, lp in enumerate(LOGPROBS)]
        self._json({
            "id": "x", "object": "chat.completion", "created": 0, "model": req["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ANSWER},
                         "logprobs": {"content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(LOGPROBS), "total_tokens": 10 + len(LOGPROBS)},
        })


@pytest.fixture
def stand_in_server():
    from surya.settings import settings

    saved = settings.model_dump()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    for key, value in saved.items():  # surya's settings are process-wide: put them back
        if key in type(settings).model_fields:
            setattr(settings, key, value)


def test_read_batch_through_surya_predictor(stand_in_server):
    engine = _engine(backend="server", inference_url=stand_in_server, batch=2)
    ok, why = engine.health()
    assert ok, why
    im = Image.new("RGB", (400, 300), "white")
    d = ImageDraw.Draw(im)
    d.rectangle([25, 12, 230, 36], fill="black")  # ink inside both blocks (surya drops blank text blocks)
    d.rectangle([25, 155, 350, 205], fill="black")
    outs = engine.read_batch([im, im.copy()], [RAW, RAW])
    assert len(outs) == 2 and len(_Handler.requests) == 2
    assert all(r.get("logprobs") is True for r in _Handler.requests)  # surya asked for token scores
    out = outs[0]
    assert out.text == "Rechnung 4711\nSumme 12,50 EUR"
    mean_p = sum(math.exp(lp) for lp in LOGPROBS) / len(LOGPROBS)
    assert out.confidence == pytest.approx(mean_p, abs=1e-4)
    assert {w.confidence for w in out.words} == {round(mean_p, 4)}
    assert out.words[0].bbox == (20.0, 9.9, 240.0, 39.9)  # 0-1000 coordinates scaled to the image
    assert [w.line for w in out.words] == [0, 0, 1, 1, 1]
