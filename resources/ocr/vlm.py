"""Vision-language OCR engines: transformers models loaded from a local folder, and any
OpenAI-compatible endpoint through LiteLLM.

Transformers engines (`got_ocr2`, `janus_pro`, `deepseek_ocr`; compute class gpu):

* loaded with `<ModelClass>.from_pretrained(model_path, local_files_only=True)` and
  `AutoProcessor.from_pretrained(model_path, local_files_only=True)` - nothing is
  ever downloaded; `device` ("auto" = cuda when present) and `dtype` ("auto" =
  bfloat16 on CUDA, float32 on CPU) are options;
* `read_batch` reads up to `batch_size` pages in one `generate` call (left padding);
* confidence from the model itself: `generate(..., output_scores=True,
  return_dict_in_generate=True)`, token log-probabilities from
  `compute_transition_scores`; a word's confidence is the mean probability of the
  tokens that overlap it, the page's the length-weighted mean over its words;
* health: unhealthy without `model_path`, without a `config.json` there, with a
  `config.json` of another architecture (`model_type`), or without a CUDA device
  (unless `allow_cpu`, which tests and CPU-only trials set) - so the router only
  sends pages to them when they are configured and a GPU is there.

`janus_pro` (Janus / Janus-Pro in transformers' format, e.g. deepseek-community/Janus-Pro-1B):
the processor's chat template renders "<|User|>: <image_placeholder>\\n{prompt}\\n\\n<|Assistant|>:",
the processor expands the placeholder to the image tokens (and prepends the default system
prompt where the checkpoint asks for it); `generate(..., generation_mode="text")`.

`deepseek_ocr` uses transformers' native DeepSeek-OCR-2 classes
(`DeepseekOcr2ForConditionalGeneration` + `DeepseekOcr2Processor`, transformers >= 5; the
transformers-format weights are deepseek-community/DeepSeek-OCR-2): prompt "<image>\\nFree OCR.",
a global view plus local 768 px tiles for large pages (`pixel_values_local`). The deepseek-ai
checkpoints (DeepSeek-OCR, DeepSeek-OCR-2 as published by deepseek-ai, config `model_type`
"deepseek_vl_v2" with `auto_map`) ship remote code whose entry point is a custom `infer()`
that writes results to files and returns no token scores; the engine does not run them (health
says so) - convert them, or use the transformers-format weights.

`vlm_endpoint` sends the page PNG to an OpenAI-compatible chat endpoint (vLLM,
Ollama, a cloud model) via `litellm.completion` with `logprobs=True`; the
confidence comes from the returned token log-probs, and is None (so the router
falls back) when the endpoint returns none.
"""

from __future__ import annotations

import base64
import io
import math
import os
import threading
import time
from typing import Literal

from pydantic import Field

from idp_assets.fingerprints import weights_fingerprint
from idp_assets.models import OcrWord, RawPage
from resources.ocr.base import EngineError, EngineOptions, EngineOutput, OcrEngine, weighted_confidence
from resources.ocr.registry import register_engine

DEFAULT_PROMPT = "Read all text on this page. Output only the text, line by line."


class HfVlmOptions(EngineOptions):
    model_path: str | None = Field(default=None, description="local folder with config.json, weights and processor files")
    device: str = Field(default="auto", description="'auto' (cuda if present), 'cuda', 'cuda:1', 'cpu'")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    allow_cpu: bool = Field(default=False, description="healthy without a CUDA device (tests, CPU trials)")
    max_new_tokens: int = Field(default=2048, gt=0)
    batch: int = Field(default=4, ge=1, description="pages per generate() call")
    prompt: str = DEFAULT_PROMPT
    trust_remote_code: bool = Field(default=False, description="load model code shipped in model_path (never fetched)")


def token_spans(tokenizer, ids: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """Decoded text and the character span each token adds to it (special tokens skipped)."""
    spans: list[tuple[int, int]] = []
    prev = ""
    for k in range(len(ids)):
        cur = tokenizer.decode(ids[: k + 1], skip_special_tokens=True)
        if not cur.startswith(prev):  # a multi-byte character completed: attribute it to this token
            common = os.path.commonprefix([prev, cur])
            spans.append((len(common), len(cur)))
        else:
            spans.append((len(prev), len(cur)))
        prev = cur
    return prev, spans


def words_from_tokens(text: str, spans: list[tuple[int, int]], logprobs: list[float]) -> list[OcrWord]:
    """Words of `text` with the mean probability of their tokens; line = text line number."""
    words: list[OcrWord] = []
    pos = 0
    for line_no, line in enumerate(text.split("\n")):
        col = 0
        for raw in line.split(" "):
            start = pos + col
            end = start + len(raw)
            col += len(raw) + 1
            w = raw.strip()
            if not w:
                continue
            probs = [math.exp(lp) for (a, b), lp in zip(spans, logprobs) if a < end and b > start and b > a]
            if not probs:
                continue
            words.append(
                OcrWord(
                    text=w,
                    confidence=round(min(1.0, max(0.0, sum(probs) / len(probs))), 4),
                    bbox=(0.0, 0.0, 0.0, 0.0),
                    line=line_no,
                )
            )
        pos += len(line) + 1
    return words


class HfVlmEngine(OcrEngine):
    """Base of the transformers engines; subclasses set `model_class` and may override `_inputs`."""

    compute = "gpu"
    inputs = frozenset({"image"})
    options_class = HfVlmOptions
    options: HfVlmOptions
    model_class: str = "AutoModelForImageTextToText"
    # config.json model_type values this engine runs (None: not checked)
    model_types: frozenset[str] | None = None
    version_packages = ("transformers", "torch")

    @property
    def version(self) -> str:
        """Adds a fingerprint of the local weights folder (config files + weight file headers)."""
        return f"{super().version} weights={weights_fingerprint(self.options.model_path)}"

    def __init__(self, options=None):
        super().__init__(options)
        self._model = None
        self._processor = None
        self._lock = threading.Lock()

    @property
    def batch_size(self) -> int:
        return self.options.batch

    def _device(self) -> str:
        import torch

        if self.options.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.options.device

    def health(self) -> tuple[bool, str]:
        try:
            import torch
            import transformers
        except ImportError as exc:
            return False, f"transformers/torch not importable: {exc}"
        if not hasattr(transformers, self.model_class):
            return False, f"transformers {transformers.__version__} has no {self.model_class}"
        path = self.options.model_path
        if not path:
            return False, "no model_path configured (weights are never downloaded)"
        if not os.path.isfile(os.path.join(path, "config.json")):
            return False, f"no config.json in {path}"
        wrong = self._model_type_problem(path)
        if wrong:
            return False, wrong
        device = self._device()
        if device.startswith("cuda") and not torch.cuda.is_available():
            return False, f"device {device} requested but no CUDA device is present"
        if not device.startswith("cuda") and not self.options.allow_cpu:
            return False, "no CUDA device (set allow_cpu to run this model on the CPU)"
        return True, f"ok ({device})"

    def _model_type_problem(self, path: str) -> str | None:
        """Why config.json's architecture cannot be run by this engine (None when it can)."""
        import json

        if self.model_types is None:
            return None
        try:
            with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
                model_type = json.load(fh).get("model_type")
        except (OSError, ValueError) as exc:
            return f"config.json in {path} is not readable: {exc}"
        if model_type in self.model_types:
            return None
        return f"config.json model_type {model_type!r} is not {' / '.join(sorted(self.model_types))}"

    def _generate_kwargs(self) -> dict:
        """Model-specific keyword arguments for generate()."""
        return {}

    def load(self):
        """(model, processor), loaded once from the local folder."""
        with self._lock:
            if self._model is None:
                import torch
                import transformers
                from transformers import AutoProcessor

                path = self.options.model_path
                if not path or not os.path.isdir(path):
                    raise EngineError(f"{self.name}: model folder {path!r} not found")
                device = self._device()
                dtype = {
                    "auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
                    "float32": torch.float32,
                    "bfloat16": torch.bfloat16,
                    "float16": torch.float16,
                }[self.options.dtype]
                cls = getattr(transformers, self.model_class)
                model = cls.from_pretrained(
                    path, local_files_only=True, dtype=dtype, trust_remote_code=self.options.trust_remote_code
                )
                self._model = model.to(device).eval()
                self._processor = AutoProcessor.from_pretrained(
                    path, local_files_only=True, trust_remote_code=self.options.trust_remote_code
                )
                tok = getattr(self._processor, "tokenizer", None)
                if tok is not None:
                    tok.padding_side = "left"
        return self._model, self._processor

    def _inputs(self, processor, images):
        """Model inputs for a batch of RGB page images (chat-template prompt with the image)."""
        messages = [
            [{"role": "user", "content": [{"type": "image", "image": im}, {"type": "text", "text": self.options.prompt}]}]
            for im in images
        ]
        return processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt", padding=True
        )

    def read_batch(self, page_images, raw_pages: list[RawPage]) -> list[EngineOutput]:
        import torch

        if any(im is None for im in page_images):
            raise EngineError(f"{self.name} needs page images")
        model, processor = self.load()
        t0 = time.perf_counter()
        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in page_images]
        inputs = self._inputs(processor, rgb).to(model.device)
        for key in list(inputs.keys()):  # pixel_values, pixel_values_local, ... in the model's dtype
            if key.startswith("pixel_values") and inputs[key].is_floating_point():
                inputs[key] = inputs[key].to(model.dtype)
        tokenizer = getattr(processor, "tokenizer", processor)
        with torch.inference_mode():
            gen = model.generate(
                **inputs,
                max_new_tokens=self.options.max_new_tokens,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=tokenizer.pad_token_id,
                **self._generate_kwargs(),
            )
            scores = model.compute_transition_scores(gen.sequences, gen.scores, normalize_logits=True)
        seconds = time.perf_counter() - t0
        prompt_len = inputs["input_ids"].shape[1]
        special = set(tokenizer.all_special_ids)
        outputs = []
        for i, (im, raw) in enumerate(zip(rgb, raw_pages)):
            ids = gen.sequences[i, prompt_len:].tolist()
            lps = scores[i].float().tolist()
            keep = [(t, lp) for t, lp in zip(ids, lps) if t not in special and math.isfinite(lp)]
            text, spans = token_spans(tokenizer, [t for t, _ in keep])
            words = words_from_tokens(text, spans, [lp for _, lp in keep])
            conf = weighted_confidence([(w.text, w.confidence) for w in words]) if words else None
            outputs.append(
                EngineOutput(
                    text=text.strip(),
                    words=words,
                    confidence=None if conf is None else round(conf, 4),
                    width=im.width,
                    height=im.height,
                    dpi=float(raw.dpi or 0.0),
                    details={
                        "tokens": len(keep),
                        "batch": len(rgb),
                        "device": str(model.device),
                        "seconds": {"generate_batch": round(seconds, 3)},
                    },
                )
            )
        return outputs

    def read(self, page_image, raw_page: RawPage) -> EngineOutput:
        if page_image is None:
            raise EngineError(f"{self.name} needs a page image")
        return self.read_batch([page_image], [raw_page])[0]


class GotOcr2Options(HfVlmOptions):
    kind: Literal["got_ocr2"] = "got_ocr2"


@register_engine
class GotOcr2Engine(HfVlmEngine):
    """GOT-OCR 2.0 (GotOcr2ForConditionalGeneration): plain-text OCR, the fast GPU reader."""

    name = "got_ocr2"
    options_class = GotOcr2Options
    model_class = "GotOcr2ForConditionalGeneration"

    def _inputs(self, processor, images):
        # GOT's processor builds its own "OCR:" prompt around the image tokens; their number
        # follows from the vision tower (patch grid / 4 per side after the two stride-2 convs)
        vc = self._model.config.vision_config
        side = vc.image_size // vc.patch_size // 4
        return processor(images, return_tensors="pt", num_image_tokens=side * side)


def janus_inputs(processor, images, prompt: str):
    """JanusProcessor inputs for text generation: one user turn per page (image, then the prompt)
    rendered by the checkpoint's chat template; the processor expands each image placeholder to
    `num_image_tokens` image tokens and pads on the left."""
    messages = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}] for _ in images]
    prompts = [processor.apply_chat_template(m, add_generation_prompt=True) for m in messages]
    return processor(text=prompts, images=images, return_tensors="pt", padding=True, generation_mode="text")


def deepseek_ocr_inputs(processor, images, prompt: str):
    """DeepseekOcr2Processor inputs: the plain "<image>\\n..." prompt per page (no chat template);
    the processor expands "<image>" to the global view's + local tiles' tokens."""
    if "<image>" not in prompt:
        prompt = "<image>\n" + prompt
    return processor(images=images, text=[prompt] * len(images), return_tensors="pt", padding=True)


class JanusProOptions(HfVlmOptions):
    kind: Literal["janus_pro"] = "janus_pro"


@register_engine
class JanusProEngine(HfVlmEngine):
    """Janus-Pro (JanusForConditionalGeneration): a general VLM for complex documents.

    Needs the transformers-format checkpoint (config model_type "janus"; the deepseek-ai
    originals, model_type "multi_modality", are remote code and are converted with
    transformers' convert_janus_weights_to_hf)."""

    name = "janus_pro"
    options_class = JanusProOptions
    model_class = "JanusForConditionalGeneration"
    model_types = frozenset({"janus"})

    def _inputs(self, processor, images):
        return janus_inputs(processor, images, self.options.prompt)

    def _generate_kwargs(self) -> dict:
        return {"generation_mode": "text"}


class DeepseekOcrOptions(HfVlmOptions):
    kind: Literal["deepseek_ocr"] = "deepseek_ocr"
    prompt: str = "<image>\nFree OCR."


@register_engine
class DeepseekOcrEngine(HfVlmEngine):
    """DeepSeek-OCR-2 via transformers' native classes (DeepseekOcr2ForConditionalGeneration).

    Runs transformers-format weights only (config model_type "deepseek_ocr2", e.g.
    deepseek-community/DeepSeek-OCR-2). The deepseek-ai remote-code checkpoints (model_type
    "deepseek_vl_v2": DeepSeek-OCR and the original DeepSeek-OCR-2 upload) expose a custom
    `infer()` that writes files and returns no token scores, so no confidence could be given;
    health reports them as unsupported instead of loading code from the weights folder."""

    name = "deepseek_ocr"
    options_class = DeepseekOcrOptions
    model_class = "DeepseekOcr2ForConditionalGeneration"
    model_types = frozenset({"deepseek_ocr2"})

    def _model_type_problem(self, path: str) -> str | None:
        why = super()._model_type_problem(path)
        if why and "deepseek_vl_v2" in why:
            why += (
                " - a deepseek-ai remote-code checkpoint (custom infer(), no token scores); "
                "use transformers-format DeepSeek-OCR-2 weights (deepseek-community/DeepSeek-OCR-2)"
            )
        return why

    def _inputs(self, processor, images):
        return deepseek_ocr_inputs(processor, images, self.options.prompt)


# -- OpenAI-compatible endpoint ------------------------------------------------------------
class VlmEndpointOptions(EngineOptions):
    kind: Literal["vlm_endpoint"] = "vlm_endpoint"
    model: str | None = Field(default=None, description="LiteLLM model name, e.g. 'openai/qwen2.5-vl' or 'ollama/llava'")
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="name of the environment variable holding the API key")
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = Field(default=2048, gt=0)
    timeout_s: float = Field(default=120.0, gt=0)
    max_side: int = Field(default=2000, gt=0, description="page images are downscaled to this longer side")
    mock_response: str | None = Field(default=None, description="LiteLLM mock (tests): no request is sent")


def _logprob_items(choice) -> list[tuple[str, float]]:
    lp = getattr(choice, "logprobs", None)
    if lp is None and isinstance(choice, dict):
        lp = choice.get("logprobs")
    content = getattr(lp, "content", None) if lp is not None and not isinstance(lp, dict) else (lp or {}).get("content")
    items = []
    for item in content or []:
        token = item.get("token") if isinstance(item, dict) else getattr(item, "token", None)
        value = item.get("logprob") if isinstance(item, dict) else getattr(item, "logprob", None)
        if token is not None and value is not None:
            items.append((token, float(value)))
    return items


@register_engine
class VlmEndpointEngine(OcrEngine):
    """Any OpenAI-compatible vision model (vLLM, Ollama, cloud) through LiteLLM."""

    name = "vlm_endpoint"
    compute = "gpu"
    inputs = frozenset({"image"})
    options_class = VlmEndpointOptions
    options: VlmEndpointOptions

    def health(self) -> tuple[bool, str]:
        try:
            import litellm  # noqa: F401
        except ImportError as exc:
            return False, f"litellm not importable: {exc}"
        if not self.options.model:
            return False, "no model configured"
        if not self.options.api_base and not self.options.mock_response:
            return False, "no api_base configured"
        if self.options.api_key_env and not os.environ.get(self.options.api_key_env):
            return False, f"${self.options.api_key_env} is not set"
        return True, "ok"

    def read(self, page_image, raw_page: RawPage) -> EngineOutput:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        if page_image is None:
            raise EngineError("vlm_endpoint needs a page image")
        opts = self.options
        if not opts.model:
            raise EngineError("vlm_endpoint: no model configured")
        img = page_image.convert("RGB")
        if max(img.size) > opts.max_side:
            f = opts.max_side / max(img.size)
            img = img.resize((max(1, round(img.width * f)), max(1, round(img.height * f))))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        kwargs = dict(
            model=opts.model,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": opts.prompt}, {"type": "image_url", "image_url": {"url": url}}],
                }
            ],
            max_tokens=opts.max_tokens,
            temperature=0,
            logprobs=True,
            timeout=opts.timeout_s,
        )
        if opts.api_base:
            kwargs["api_base"] = opts.api_base
        if opts.api_key_env:
            kwargs["api_key"] = os.environ.get(opts.api_key_env)
        if opts.mock_response is not None:
            kwargs["mock_response"] = opts.mock_response
        t0 = time.perf_counter()
        try:
            resp = litellm.completion(**kwargs)
        except Exception as exc:  # noqa: BLE001 - surfaced as an engine failure
            raise EngineError(f"vlm_endpoint {opts.model}: {type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - t0
        choice = resp.choices[0]
        text = (choice.message.content or "").strip()
        items = _logprob_items(choice)
        words: list[OcrWord] = []
        if items:
            joined, spans, pos = "", [], 0
            for token, _ in items:
                joined += token
                spans.append((pos, pos + len(token)))
                pos += len(token)
            words = words_from_tokens(joined, spans, [lp for _, lp in items])
        conf = weighted_confidence([(w.text, w.confidence) for w in words]) if words else None
        return EngineOutput(
            text=text,
            words=words,
            confidence=None if conf is None or not text else round(conf, 4),
            width=page_image.width,
            height=page_image.height,
            dpi=float(raw_page.dpi or 0.0),
            details={
                "model": opts.model,
                "logprobs": bool(items),
                "usage": getattr(resp, "usage", None) and dict(resp.usage),
                "seconds": {"request": round(seconds, 3)},
            },
        )


__all__ = [
    "HfVlmEngine",
    "HfVlmOptions",
    "GotOcr2Engine",
    "JanusProEngine",
    "DeepseekOcrEngine",
    "janus_inputs",
    "deepseek_ocr_inputs",
    "VlmEndpointEngine",
    "token_spans",
    "words_from_tokens",
]
