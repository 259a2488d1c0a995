"""GPU engines on the CPU: tiny random GOT-OCR2, Janus and DeepSeek-OCR-2 models (the real
transformers classes, processors and locally trained tokenizers) saved to tmp and loaded back
through the real from_pretrained(local_files_only=True) + batched generate path; health reasons;
the LiteLLM endpoint with mock responses (no network)."""

from __future__ import annotations

import io
import math
import os

import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from idp_assets.logic.pages import load_document  # noqa: E402
from idp_assets.models import RawPage  # noqa: E402
from resources.ocr import get_engine  # noqa: E402
from resources.ocr.base import EngineError  # noqa: E402
from resources.ocr.router import OcrRouter  # noqa: E402
from resources.ocr.vlm import _logprob_items, token_spans, words_from_tokens  # noqa: E402

TAUGHT = "Summe 1250.00 EUR"
RAW = RawPage(number=1, width=300, height=200, dpi=100)


def _taught_image() -> Image.Image:
    im = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(im).rectangle((20, 20, 200, 80), fill="black")
    return im


@pytest.fixture(scope="module")
def tiny_got(tmp_path_factory) -> str:
    from tests.tiny_models import build_tiny_got_ocr2

    path = tmp_path_factory.mktemp("got_ocr2")
    build_tiny_got_ocr2(path, taught=(_taught_image(), TAUGHT))
    return str(path)


@pytest.fixture(scope="module")
def tiny_janus(tmp_path_factory) -> str:
    from tests.tiny_models import build_tiny_janus

    path = tmp_path_factory.mktemp("janus")
    build_tiny_janus(path, taught=(_taught_image(), TAUGHT))
    return str(path)


@pytest.fixture(scope="module")
def tiny_deepseek(tmp_path_factory) -> str:
    from tests.tiny_models import build_tiny_deepseek_ocr2

    path = tmp_path_factory.mktemp("deepseek_ocr2")
    build_tiny_deepseek_ocr2(path, taught=(_taught_image(), TAUGHT))
    return str(path)


def _assert_taught_page(out, batch: int):
    assert out.text == TAUGHT
    assert [w.text for w in out.words] == TAUGHT.split()
    # confidences are token probabilities: inside (0, 1), per word, not a constant
    assert all(0.0 < w.confidence < 1.0 for w in out.words)
    assert 0.0 < out.confidence < 1.0
    # device "auto": the GPU (bfloat16) where one is present, else the CPU (float32)
    assert out.details["batch"] == batch and out.details["tokens"] > 0
    assert out.details["device"].startswith("cuda" if _cuda() else "cpu")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_got_ocr2_loads_locally_and_reads_a_batch(tiny_got):
    engine = get_engine("got_ocr2", model_path=tiny_got, allow_cpu=True, max_new_tokens=16, batch=2)
    ok, why = engine.health()
    assert ok, why
    assert engine.compute == "gpu" and engine.batch_size == 2
    model, _ = engine.load()
    assert sum(p.numel() for p in model.parameters()) < 1_000_000  # a tiny model, the real class
    assert type(model).__name__ == "GotOcr2ForConditionalGeneration"
    outs = engine.read_batch([_taught_image(), _taught_image().rotate(3)], [RAW, RAW])
    assert len(outs) == 2
    _assert_taught_page(outs[0], batch=2)


def test_janus_pro_loads_locally_and_reads_a_batch(tiny_janus):
    engine = get_engine("janus_pro", model_path=tiny_janus, allow_cpu=True, max_new_tokens=16, batch=3)
    ok, why = engine.health()
    assert ok, why
    model, processor = engine.load()
    assert type(model).__name__ == "JanusForConditionalGeneration"
    assert type(processor).__name__ == "JanusProcessor"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    # the prompt the engine sends: system prompt + the chat template's user turn + the answer cue
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": engine.options.prompt}]}],
        add_generation_prompt=True,
    )
    assert prompt.startswith("<|User|>: <image_placeholder>") and prompt.endswith("<|Assistant|>:")
    pages = [_taught_image(), _taught_image().rotate(3), Image.new("RGB", (120, 300), "gray")]
    outs = engine.read_batch(pages, [RAW] * 3)
    assert len(outs) == 3
    _assert_taught_page(outs[0], batch=3)
    assert (outs[2].width, outs[2].height) == (120, 300)
    # one page alone gives the same answer as inside the batch
    assert engine.read(_taught_image(), RAW).text == TAUGHT


def test_deepseek_ocr2_loads_locally_and_reads_a_batch_with_local_tiles(tiny_deepseek):
    engine = get_engine("deepseek_ocr", model_path=tiny_deepseek, allow_cpu=True, max_new_tokens=12, batch=2)
    ok, why = engine.health()
    assert ok, why
    model, processor = engine.load()
    assert type(model).__name__ == "DeepseekOcr2ForConditionalGeneration"
    assert type(processor).__name__ == "DeepseekOcr2Processor"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    # a page larger than the 768 px tile is read as a global view plus local tiles: its prompt is
    # much longer, so the taught page is left-padded in the batch and must still read the same
    big = Image.new("RGB", (1000, 700), "white")
    ImageDraw.Draw(big).rectangle((100, 100, 600, 300), fill="black")
    inputs = engine._inputs(processor, [_taught_image(), big])
    assert inputs["num_local_patches"].tolist()[0] == 0 and inputs["num_local_patches"].tolist()[1] > 0
    assert "pixel_values_local" in inputs
    assert inputs["attention_mask"][0].sum() < inputs["attention_mask"][1].sum()
    outs = engine.read_batch([_taught_image(), big], [RAW, RAW])
    assert len(outs) == 2
    _assert_taught_page(outs[0], batch=2)
    assert (outs[1].width, outs[1].height) == (1000, 700)


def test_deepseek_ocr2_bfloat16_casts_every_pixel_input(tiny_deepseek):
    # bfloat16 weights (the CUDA default): the global view and the local tiles must both be cast
    import torch

    engine = get_engine("deepseek_ocr", model_path=tiny_deepseek, allow_cpu=True, dtype="bfloat16", max_new_tokens=12)
    model, _ = engine.load()
    assert model.dtype == torch.bfloat16
    big = Image.new("RGB", (1000, 700), "white")
    outs = engine.read_batch([_taught_image(), big], [RAW, RAW])  # raised a dtype error before the cast
    assert len(outs) == 2 and outs[1].width == 1000 and outs[1].details["batch"] == 2


def test_deepseek_remote_code_checkpoint_is_reported_not_loaded(tmp_path):
    # deepseek-ai's own DeepSeek-OCR folders: remote code with a custom infer(), no token scores
    (tmp_path / "config.json").write_text(
        '{"model_type": "deepseek_vl_v2", "auto_map": {"AutoModel": "modeling_deepseekocr.DeepseekOCRForCausalLM"}}'
    )
    for trust in (False, True):
        ok, why = get_engine("deepseek_ocr", model_path=str(tmp_path), allow_cpu=True, trust_remote_code=trust).health()
        assert not ok and "deepseek_vl_v2" in why and "remote-code" in why


def test_transformers_engines_reject_other_architectures(tiny_got, tiny_janus):
    ok, why = get_engine("janus_pro", model_path=tiny_got, allow_cpu=True).health()
    assert not ok and "'got_ocr2' is not janus" in why
    ok, why = get_engine("deepseek_ocr", model_path=tiny_janus, allow_cpu=True).health()
    assert not ok and "'janus' is not deepseek_ocr2" in why


def test_got_ocr2_health_without_cuda(tiny_got):
    engine = get_engine("got_ocr2", model_path=tiny_got)
    ok, why = engine.health()
    if _cuda():
        assert ok
    else:
        assert not ok and "no CUDA device" in why
    ok, why = get_engine("got_ocr2", model_path=tiny_got, device="cuda").health()
    assert ok == _cuda()


def test_router_sends_hard_pages_to_a_configured_gpu_engine(tiny_got):
    router = OcrRouter(
        gpu_engines=["got_ocr2"],
        gpu_above=0.0,
        min_confidence=0.01,
        engine_settings={"got_ocr2": {"model_path": tiny_got, "allow_cpu": True, "max_new_tokens": 16}},
    )
    buf = io.BytesIO()
    _taught_image().save(buf, format="PNG")
    raw, images = load_document("4" * 64, buf.getvalue(), None)
    page = router.ocr_document(raw, images).pages[0]
    assert page.engine == "got_ocr2" and page.compute == "gpu"
    assert "GPU engine" in page.route_reason and page.text == TAUGHT
    # not configured -> never routed to, even when healthy
    plain = OcrRouter(gpu_above=0.0)
    assert "got_ocr2" not in plain.complexity_chain(raw.pages[0], images[0], plain.engines_health())[0]


@pytest.mark.parametrize("name", ["got_ocr2", "janus_pro", "deepseek_ocr"])
def test_transformers_engines_health_reasons(name, tmp_path):
    ok, why = get_engine(name).health()
    assert not ok and "no model_path" in why
    ok, why = get_engine(name, model_path=str(tmp_path / "missing")).health()
    assert not ok and "no config.json" in why
    with pytest.raises(EngineError, match="not found"):
        get_engine(name, model_path=str(tmp_path / "missing"), allow_cpu=True).load()


def test_words_from_tokens_and_spans():
    text = "ab cd\nef"
    spans = [(0, 2), (2, 3), (3, 5), (5, 6), (6, 8)]
    lps = [math.log(0.9), math.log(0.5), math.log(0.6), math.log(0.5), math.log(0.2)]
    words = words_from_tokens(text, spans, lps)
    assert [(w.text, w.line) for w in words] == [("ab", 0), ("cd", 0), ("ef", 1)]
    assert words[0].confidence == pytest.approx(0.9) and words[2].confidence == pytest.approx(0.2)

    class Tok:
        def decode(self, ids, skip_special_tokens=True):
            return "".join({1: "Hal", 2: "lo", 3: " Welt"}[i] for i in ids)

    assert token_spans(Tok(), [1, 2, 3]) == ("Hallo Welt", [(0, 3), (3, 5), (5, 10)])


def test_vlm_endpoint_with_mock_response():
    engine = get_engine("vlm_endpoint", model="openai/test-vlm", mock_response="Rechnung 42\nSumme 10,00 EUR")
    ok, why = engine.health()
    assert ok, why
    out = engine.read(_taught_image(), RAW)
    assert out.text == "Rechnung 42\nSumme 10,00 EUR"
    # the mock returns no token log-probs: no confidence is invented, the router will fall back
    assert out.confidence is None and out.details["logprobs"] is False
    assert not get_engine("vlm_endpoint").health()[0]
    assert "api_base" in get_engine("vlm_endpoint", model="openai/x").health()[1]


def test_vlm_endpoint_errors_become_engine_errors():
    engine = get_engine("vlm_endpoint", model="openai/test-vlm", mock_response="litellm.RateLimitError")
    with pytest.raises(EngineError, match="RateLimitError"):
        engine.read(_taught_image(), RAW)


def test_logprob_items_from_openai_shape():
    choice = {"logprobs": {"content": [{"token": "Hallo", "logprob": -0.1}, {"token": " Welt", "logprob": -2.0}]}}
    items = _logprob_items(choice)
    assert items == [("Hallo", -0.1), (" Welt", -2.0)]
    words = words_from_tokens("Hallo Welt", [(0, 5), (5, 10)], [lp for _, lp in items])
    assert words[0].confidence > words[1].confidence
