"""Surya OCR engine (surya-ocr 0.22: the Surya 2 VLM, `datalab-to/surya-ocr-2`).

surya-ocr 0.22 no longer ships separate detection/recognition torch checkpoints for OCR: a
page is read by one vision-language model served over an OpenAI-compatible API, either
llama.cpp (`llama-server` + a GGUF model and its `mmproj` projector) or vLLM. The engine uses
surya's public `RecognitionPredictor` (full-page mode: one request per page, the model returns
`<div data-bbox=... data-label=...>` blocks; on a looping/unparsable answer surya falls back to
layout + per-block requests by itself) with an explicit `SuryaInferenceManager`.

Two backends (option `backend`):

* `llamacpp` (default): `model_path` is a local folder holding the model GGUF and the
  `*mmproj*.gguf` projector (datalab-to/surya-ocr-2-gguf: surya-2.gguf + surya-2-mmproj.gguf);
  surya spawns `llama_server` on a free local port on first read. `device` 'cuda' offloads all
  layers to the GPU (`LLAMA_CPP_NGL=99`), 'cpu' none (0). Nothing is ever downloaded: health is
  False until both files are there, and surya's own HF download path is never reached (it is
  only taken when the local paths are unset).
* `server`: `inference_url` of a running surya-ocr-2 server (vLLM or llama-server,
  e.g. `http://gpu-host:8000/v1`); health asks its `/models` once.

Confidence comes from surya's own scores: `BlockOCRResult.confidence` is the mean token
probability of the answer the block came from (full-page mode: the page's answer; block mode:
the block's). Token log-probabilities are always requested (`SURYA_INFERENCE_LOGPROBS`).
surya 0.22 gives no per-line or per-character scores and no word boxes: each word gets its
block's confidence and box; lines are the block's text lines (`<br>`, paragraphs, list items,
table rows) numbered through the page in surya's reading order. Page confidence =
length-weighted mean of the word confidences.

surya's configuration is process-global (`surya.settings.settings`): the engine writes its
options there before the manager starts, so one process runs one surya configuration.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from typing import Literal

from pydantic import Field

from idp_assets.fingerprints import weights_fingerprint
from idp_assets.models import OcrWord, RawPage
from resources.ocr.base import EngineError, EngineOptions, EngineOutput, OcrEngine, weighted_confidence
from resources.ocr.registry import register_engine


class SuryaOptions(EngineOptions):
    kind: Literal["surya"] = "surya"
    backend: Literal["llamacpp", "server"] = Field(
        default="llamacpp", description="llamacpp: spawn llama-server on local GGUF files; server: a running endpoint"
    )
    model_path: str | None = Field(
        default=None, description="local folder with the surya-ocr-2 GGUF model and its *mmproj*.gguf (llamacpp)"
    )
    inference_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL of a running surya-ocr-2 server (backend=server)"
    )
    model_name: str = Field(default="datalab-to/surya-ocr-2", description="model name the server serves")
    device: Literal["cpu", "cuda"] = Field(default="cpu", description="llamacpp: cuda offloads all layers (NGL 99)")
    llama_server: str = Field(default="llama-server", description="llama.cpp server binary (name on PATH or path)")
    batch: int = Field(default=4, ge=1, description="pages handed to surya at once (concurrent requests)")
    parallel: int | None = Field(default=None, ge=1, description="server request slots (None: surya's default)")
    timeout_s: float = Field(default=600.0, gt=0, description="per-request timeout")


_BLOCK_TAGS = ("p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "caption", "ul", "ol",
               "blockquote", "pre", "thead", "tbody", "tfoot")


def html_lines(html: str) -> list[str]:
    """Text lines of one block's HTML (entities decoded; <br>, block elements and table rows end a
    line, table cells are separated by a space); whitespace collapsed, empty lines dropped."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html or "", "html.parser")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(["td", "th"]):
        tag.append(" ")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.append("\n")
    text = unicodedata.normalize("NFC", soup.get_text())
    return [" ".join(line.split()) for line in text.split("\n") if line.strip()]


def page_words(result) -> tuple[list[OcrWord], list[str], dict]:
    """Words, text lines and diagnostics of one surya `PageOCRResult`.

    Blocks are taken in `reading_order`; skipped blocks (pictures, ...) and failed ones carry no
    text; a block without a confidence gives text lines but no words (its text cannot be scored).
    """
    words: list[OcrWord] = []
    lines: list[str] = []
    labels: dict[str, int] = {}
    skipped = errors = unscored = 0
    x_max = y_max = None
    if result.image_bbox and len(result.image_bbox) == 4:
        x_max, y_max = float(result.image_bbox[2]), float(result.image_bbox[3])
    blocks = sorted(enumerate(result.blocks), key=lambda kb: (kb[1].reading_order, kb[0]))
    for block_no, (_, block) in enumerate(blocks):
        labels[block.label] = labels.get(block.label, 0) + 1
        if block.skipped:
            skipped += 1
            continue
        if block.error:
            errors += 1
            continue
        block_lines = html_lines(block.html)
        if not block_lines:
            continue
        x0, y0, x1, y1 = (float(v) for v in block.bbox)
        if x_max is not None:
            x0, x1 = max(0.0, min(x0, x_max)), max(0.0, min(x1, x_max))
            y0, y1 = max(0.0, min(y0, y_max)), max(0.0, min(y1, y_max))
        conf = block.confidence
        if conf is None:
            unscored += 1
        for text in block_lines:
            line_no = len(lines)
            lines.append(text)
            if conf is None:
                continue
            for w in text.split(" "):
                words.append(
                    OcrWord(
                        text=w,
                        confidence=round(max(0.0, min(1.0, float(conf))), 4),
                        bbox=(round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1)),
                        line=line_no,
                        block=block_no,
                    )
                )
    details = {"blocks": len(result.blocks), "labels": labels, "skipped_blocks": skipped,
               "error_blocks": errors, "unscored_blocks": unscored}
    return words, lines, details


def output_from_result(result, width: int, height: int, dpi: float = 0.0, details: dict | None = None) -> EngineOutput:
    """EngineOutput of one surya `PageOCRResult` (see `page_words`)."""
    words, lines, info = page_words(result)
    conf = weighted_confidence([(w.text, w.confidence) for w in words]) if words else None
    return EngineOutput(
        text="\n".join(lines),
        words=words,
        confidence=None if conf is None else round(conf, 4),
        width=width,
        height=height,
        dpi=dpi,
        details={**info, **(details or {})},
    )


def _gguf_files(path: str) -> tuple[list[str], list[str]]:
    """(model GGUFs, mmproj GGUFs) directly in `path`."""
    files = sorted(glob.glob(os.path.join(path, "*.gguf")))
    mmproj = [f for f in files if "mmproj" in os.path.basename(f).lower()]
    return [f for f in files if f not in mmproj], mmproj


def _gpu_present() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    return os.path.exists("/dev/nvidia0")


@register_engine
class SuryaEngine(OcrEngine):
    name = "surya"
    compute = "cpu"  # per instance: gpu when device is cuda or the server is a GPU model server
    inputs = frozenset({"image"})
    options_class = SuryaOptions
    options: SuryaOptions
    version_packages = ("surya-ocr",)
    revision = "1"

    def __init__(self, options=None):
        super().__init__(options)
        # the router asks the instance; a remote server counts as gpu (vLLM serves on GPUs)
        self.compute = "gpu" if self.options.device == "cuda" or self.options.backend == "server" else "cpu"
        self._predictor = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        o = self.options
        where = f"weights={weights_fingerprint(o.model_path)}" if o.backend == "llamacpp" else f"model={o.model_name}"
        return f"{super().version} {where}"

    @property
    def batch_size(self) -> int:
        return self.options.batch

    def health(self) -> tuple[bool, str]:
        # configuration first: an unconfigured engine is answered without importing surya (torch)
        o = self.options
        if o.backend == "server":
            if not o.inference_url:
                return False, "surya: backend=server but no inference_url configured"
            return self._importable() or self._probe_server(o.inference_url)
        if not o.model_path:
            return False, "surya: no model_path configured (folder with the surya-ocr-2 GGUF + mmproj; never downloaded)"
        if not os.path.isdir(o.model_path):
            return False, f"surya: model folder {o.model_path} does not exist"
        models, mmproj = _gguf_files(o.model_path)
        if not models:
            return False, f"surya: no model GGUF (*.gguf) in {o.model_path}"
        if not mmproj:
            return False, f"surya: no *mmproj*.gguf projector in {o.model_path}"
        if len(models) > 1 or len(mmproj) > 1:
            return False, f"surya: several GGUF files in {o.model_path} ({', '.join(map(os.path.basename, models + mmproj))})"
        if shutil.which(o.llama_server) is None:
            return False, f"surya: llama.cpp server binary {o.llama_server!r} not found"
        if o.device == "cuda" and not _gpu_present():
            return False, "surya: device cuda requested but no NVIDIA GPU is present"
        return self._importable() or (True, f"ok (llama.cpp, {os.path.basename(models[0])}, {o.device})")

    @staticmethod
    def _importable() -> tuple[bool, str] | None:
        """None when surya's predictor imports, else (False, why)."""
        try:
            import surya.recognition  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - any import failure makes the engine unusable
            return False, f"surya-ocr not importable: {type(exc).__name__}: {exc}"
        return None

    def _probe_server(self, url: str) -> tuple[bool, str]:
        if not url.startswith(("http://", "https://")):
            return False, f"surya: inference_url {url!r} is not an http(s) URL"
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=3) as resp:
                served = [m.get("id") for m in json.load(resp).get("data", [])]
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return False, f"surya: server {url} not reachable: {exc}"
        if self.options.model_name not in served:
            return False, f"surya: server {url} serves {served}, not {self.options.model_name}"
        return True, f"ok (server {url})"

    def _configure(self) -> str:
        """Write the options into surya's process-wide settings; the backend name for the manager."""
        from surya.settings import settings

        o = self.options
        settings.SURYA_INFERENCE_LOGPROBS = True  # the confidences come from the token probabilities
        settings.SURYA_MODEL_CHECKPOINT = o.model_name
        settings.SURYA_INFERENCE_TIMEOUT_SECONDS = o.timeout_s
        settings.DISABLE_TQDM = True
        if o.parallel is not None:
            settings.SURYA_INFERENCE_PARALLEL = o.parallel
        if o.backend == "server":
            settings.SURYA_INFERENCE_URL = o.inference_url
            return "llamacpp"  # both backends attach to SURYA_INFERENCE_URL; llamacpp's needs no docker
        models, mmproj = _gguf_files(o.model_path)
        settings.SURYA_INFERENCE_URL = None
        settings.SURYA_GGUF_LOCAL_MODEL_PATH = models[0]
        settings.SURYA_GGUF_LOCAL_MMPROJ_PATH = mmproj[0]
        settings.LLAMA_CPP_BINARY = o.llama_server
        settings.LLAMA_CPP_NGL = 99 if o.device == "cuda" else 0
        return "llamacpp"

    def load(self):
        """surya's RecognitionPredictor on a started inference manager (once per engine)."""
        with self._lock:
            if self._predictor is None:
                ok, why = self.health()
                if not ok:
                    raise EngineError(why)
                from surya.inference import SuryaInferenceManager
                from surya.recognition import RecognitionPredictor

                manager = SuryaInferenceManager(method=self._configure(), lazy=True)
                manager.start()
                self._predictor = RecognitionPredictor(manager)
        return self._predictor

    def read_batch(self, page_images, raw_pages: list[RawPage]) -> list[EngineOutput]:
        if any(im is None for im in page_images):
            raise EngineError("surya needs page images")
        predictor = self.load()
        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in page_images]
        t0 = time.perf_counter()
        try:
            results = predictor(rgb)
        except Exception as exc:  # noqa: BLE001 - server/backends fail in many ways; the router hands on
            raise EngineError(f"surya failed: {type(exc).__name__}: {exc}") from exc
        seconds = round(time.perf_counter() - t0, 3)
        if len(results) != len(rgb):
            raise EngineError(f"surya returned {len(results)} results for {len(rgb)} pages")
        return [
            output_from_result(res, im.width, im.height, float(raw.dpi or 0.0),
                               {"batch": len(rgb), "seconds": {"recognize_batch": seconds}})
            for res, im, raw in zip(results, rgb, raw_pages)
        ]

    def read(self, page_image, raw_page: RawPage) -> EngineOutput:
        if page_image is None:
            raise EngineError("surya needs a page image")
        return self.read_batch([page_image], [raw_page])[0]


__all__ = ["SuryaEngine", "SuryaOptions", "html_lines", "output_from_result", "page_words"]
