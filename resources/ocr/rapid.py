"""RapidOCR engine (RapidOCR 3.x, PP-OCR ONNX models shipped in its wheel, onnxruntime on CPU).

Per page:
1. RGB; downscale above `max_pixels` (memory cap);
2. orientation: Tesseract OSD (0/90/180/270) when tesserocr and the 'osd'
   traineddata are present (RapidOCR's own classifier only knows 0/180 per
   text line, so `Global.use_cls` is off); a page OSD calls upside down is
   checked with that classifier instead: turned only when most of its text
   lines (by width) read as upside down;
3. detection + recognition with per-character boxes and scores
   (`return_single_char_box`): PP-OCR's recogniser often drops the space
   between words on tightly printed receipts ("JalanSS21/39,47400"), so a
   space is put back wherever the gap between two characters' CTC boxes is
   wider than `space_gap` x the line's median character pitch;
4. words = runs of characters between spaces, each with the mean of its
   characters' scores as confidence and the union of their boxes; text lines
   = detected segments grouped by vertical overlap, left to right;
5. page confidence = word confidences averaged, weighted by word length
   (= the mean score of the page's characters).

Character scores are the recogniser's CTC probabilities, taken from its decoder
output in text order. RapidOCR's own per-character results pair scores with
characters by position with the spaces left out, so after the first space in a
segment every character carried its left neighbour's score and the last ones
were lost (`aligned_char_scores` undoes that). Corpus receipts + forms + rotated
scans (50 pages), Pearson r of page confidence vs word F1: 0.41 with the shifted
scores, 0.53 aligned (receipts 0.58 -> 0.64); AUC of word confidence for "word
is in the ground truth" 0.70 -> 0.77. Min/geometric mean per word, shares of
characters above a score, segment or detection scores did no better per page.
"""

from __future__ import annotations

import os
import statistics
import time
import unicodedata
from typing import Literal

from pydantic import Field

from idp_assets.models import OcrWord, RawPage
from resources.ocr.base import EngineError, EngineOptions, EngineOutput, OcrEngine, weighted_confidence
from resources.ocr.pool import pool_for
from resources.ocr.registry import register_engine


class RapidOcrOptions(EngineOptions):
    kind: Literal["rapidocr"] = "rapidocr"
    detect_orientation: bool = Field(default=True, description="Tesseract OSD before reading (needs tesserocr + osd)")
    min_orientation_confidence: float = Field(default=1.0, ge=0.0, description="OSD orient_conf needed to turn a page")
    orientation_verify_margin: float = Field(
        default=0.02, ge=0.0, description="a turned page must read this much more confidently than unturned "
        "(only where the line classifier cannot decide)"
    )
    upside_down_share: float = Field(
        default=0.5, ge=0.0, le=1.0, description="OSD's 180 is kept when at least this share of text lines "
        "(by width) reads upside down to the PP-OCR line classifier"
    )
    space_gap: float = Field(
        default=1.0,
        gt=0.0,
        description="character gap (x median pitch) that means a space; corpus word F1 receipts/forms: "
        "no split 0.899/0.841, 0.8 0.918/0.820, 1.0 0.912/0.838, 1.5 0.900/0.843",
    )
    text_score: float = Field(default=0.5, ge=0.0, le=1.0, description="drop detected segments read below this score")
    max_pixels: int = Field(default=12_000_000, gt=0, description="downscale larger images before reading")
    threads: int = Field(default=1, ge=-1, description="inference threads per page (-1: the runtime decides)")
    rec_runtime: Literal["auto", "onnxruntime", "openvino"] = Field(
        default="auto",
        description="runtime of the text recogniser (same PP-OCR ONNX model): OpenVINO reads 1.5x faster than "
        "onnxruntime on this CPU with the same word F1 (0.840 vs 0.842 on 9 corpus pages); auto = OpenVINO when "
        "installed",
    )
    det_runtime: Literal["auto", "onnxruntime", "openvino"] = Field(
        default="auto",
        description="runtime of the text detector: OpenVINO moves a few boxes slightly (raw RapidOCR word F1 on "
        "all 48 corpus receipts/forms: receipts 0.898 vs 0.900, forms 0.841 vs 0.840) and is faster; "
        "auto = OpenVINO when installed",
    )


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def _runtime(option: str) -> str:
    if option == "auto":
        return "openvino" if openvino_available() else "onnxruntime"
    return option


def _rapid(threads: int, text_score: float, rec_runtime: str = "onnxruntime", det_runtime: str = "onnxruntime"):
    """The pool of RapidOCR pipelines for this configuration (loading the models takes ~0.5 s)."""

    def make():
        from rapidocr import RapidOCR
        from rapidocr.utils.typings import EngineType

        params = {
            "Global.use_cls": False,
            "Global.log_level": "critical",
            "Global.text_score": text_score,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
        if "openvino" in (rec_runtime, det_runtime):
            # one page per request, several pages (threads) at once: OpenVINO's throughput defaults
            # (CPU streams, core pinning) make two concurrent readers fight over the cores - two
            # threads read 0.74 pages/s that way, 1.22 with a latency hint, one stream, no pinning
            params.update({
                "EngineConfig.openvino.inference_num_threads": threads,
                "EngineConfig.openvino.performance_hint": "LATENCY",
                "EngineConfig.openvino.num_streams": 1,
                "EngineConfig.openvino.enable_cpu_pinning": False,
            })
        if rec_runtime == "openvino":
            params["Rec.engine_type"] = EngineType.OPENVINO
        if det_runtime == "openvino":
            params["Det.engine_type"] = EngineType.OPENVINO
        return RapidOCR(params=params)

    return pool_for(("rapidocr", threads, text_score, rec_runtime, det_runtime), make)


def _xs(box) -> tuple[float, float, float, float]:
    xs = [float(p[0]) for p in box]
    ys = [float(p[1]) for p in box]
    return min(xs), min(ys), max(xs), max(ys)


def aligned_char_scores(text: str, decoded: list[float] | None, chars: list[tuple[str, float, list]] | None):
    """`chars` (RapidOCR's single-character results for `text`'s non-space characters) with each
    character's own recogniser score.

    `decoded` are the recogniser's scores for every character of `text`, spaces included, in order.
    RapidOCR zips them with the non-space characters, shifting the scores after each space by one;
    here each character gets the score at its own position. Unchanged when the lengths don't fit.
    """
    if not chars or decoded is None or len(decoded) != len(text):
        return chars
    own = [float(sc) for ch, sc in zip(text, decoded) if not ch.isspace()]
    if len(own) != len(chars):
        return chars
    return [(c[0], sc, c[2]) for c, sc in zip(chars, own)]


def _bgr(rgb):
    """RapidOCR's input: a contiguous BGR array of an RGB PIL image."""
    import numpy as np

    return np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])


def recognise(engine, bgr):
    """RapidOCR's result for a BGR image plus, per result segment, the recogniser's scores of all its
    characters (spaces included, text order) or None where they cannot be matched.

    Runs the same steps as `engine(...)` one by one, to keep the decoder's scores before RapidOCR
    pairs them with character boxes; a rapidocr without these steps is simply called.
    """
    steps = ("update_params", "load_img", "preprocess_img", "run_ocr_steps", "build_final_output")
    if not all(hasattr(engine, a) for a in steps):
        res = engine(bgr, return_word_box=True, return_single_char_box=True)
        return res, [None] * len(res.txts or ())
    engine.update_params(return_word_box=True, return_single_char_box=True)
    ori = engine.load_img(bgr)
    img, record = engine.preprocess_img(ori)
    det, cls, rec, crops = engine.run_ocr_steps(img, record)
    infos, scores = list(rec.word_results or ()), list(rec.scores or ())
    raw = [
        (t, float(scores[i]) if i < len(scores) else None, list(getattr(infos[i], "confs", None) or []) or None)
        for i, t in enumerate(rec.txts or ())
        if i < len(infos)
    ]
    res = engine.build_final_output(ori, det, cls, rec, crops, record)
    # the result keeps the non-empty segments read at or above text_score, in order: match them up
    decoded, k = [], 0
    for txt, score in zip(res.txts or (), res.scores or ()):
        while k < len(raw) and (raw[k][0] != txt or raw[k][1] != float(score)):
            k += 1
        decoded.append(raw[k][2] if k < len(raw) else None)
        k += 1
    return res, decoded


def split_segment(text: str, chars: list[tuple[str, float, list]] | None, score: float, space_gap: float):
    """Words of one detected segment: [(word, confidence, (x0, y0, x1, y1) or None)].

    `chars` are RapidOCR's single-character results (char, score, 4-point box) for
    the segment's non-space characters; when they don't line up with `text` the
    segment is split on its own spaces and every word gets the segment score.
    """
    letters = [c for c in text if not c.isspace()]
    if not chars or len(chars) != len(letters) or any(c[0] != ch for c, ch in zip(chars, letters)):
        return [(w, score, None) for w in text.split()]
    boxes = [_xs(c[2]) for c in chars]
    pitches = [b[2] - b[0] for b in boxes if b[2] > b[0]]
    pitch = statistics.median(pitches) if pitches else 0.0
    words: list[list[int]] = [[]]
    k = 0
    for ch in text:
        if ch.isspace():
            if words[-1]:
                words.append([])
            continue
        if words[-1] and pitch > 0:
            gap = boxes[k][0] - boxes[words[-1][-1]][2]
            if gap > space_gap * pitch:
                words.append([])
        words[-1].append(k)
        k += 1
    out = []
    for idx in words:
        if not idx:
            continue
        word = "".join(chars[i][0] for i in idx)
        conf = statistics.fmean(float(chars[i][1]) for i in idx)
        x0 = min(boxes[i][0] for i in idx)
        y0 = min(boxes[i][1] for i in idx)
        x1 = max(boxes[i][2] for i in idx)
        y1 = max(boxes[i][3] for i in idx)
        out.append((word, conf, (x0, y0, x1, y1)))
    return out


def group_lines(boxes: list[tuple[float, float, float, float]]) -> list[list[int]]:
    """Indices of segments grouped into text lines (vertical overlap > half the smaller height), top to bottom."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1] + boxes[i][3]) / 2)
    lines: list[list[int]] = []
    spans: list[tuple[float, float]] = []
    for i in order:
        y0, y1 = boxes[i][1], boxes[i][3]
        h = max(1.0, y1 - y0)
        if lines:
            ly0, ly1 = spans[-1]
            overlap = min(y1, ly1) - max(y0, ly0)
            if overlap > 0.5 * min(h, max(1.0, ly1 - ly0)):
                lines[-1].append(i)
                spans[-1] = (min(ly0, y0), max(ly1, y1))
                continue
        lines.append([i])
        spans.append((y0, y1))
    return [sorted(line, key=lambda i: boxes[i][0]) for line in lines]


@register_engine
class RapidOcrEngine(OcrEngine):
    name = "rapidocr"
    compute = "cpu"
    inputs = frozenset({"image"})
    options_class = RapidOcrOptions
    version_packages = ("rapidocr", "onnxruntime", "openvino")  # the models ship inside the rapidocr package
    revision = "4"  # 2: OSD 180 verified by the line classifier; 3: character scores aligned; 4: OpenVINO runtimes
    options: RapidOcrOptions

    @property
    def languages(self) -> list[str]:
        # the shipped PP-OCR rec model reads Chinese and Latin script (no umlauts-specific model)
        return ["eng", "deu", "chi_sim"]

    def health(self) -> tuple[bool, str]:
        try:
            import onnxruntime  # noqa: F401
            import rapidocr
        except ImportError as exc:
            return False, f"rapidocr not importable: {exc}"
        models = os.path.join(os.path.dirname(rapidocr.__file__), "models")
        if not os.path.isdir(models) or not any(f.endswith(".onnx") for f in os.listdir(models)):
            return False, f"no ONNX models in {models}"
        if "openvino" in (self.options.rec_runtime, self.options.det_runtime) and not openvino_available():
            return False, "rec_runtime/det_runtime=openvino but the openvino package is not installed"
        return True, f"ok (detector on {self.det_runtime}, recogniser on {self.rec_runtime})"

    @property
    def rec_runtime(self) -> str:
        return _runtime(self.options.rec_runtime)

    @property
    def det_runtime(self) -> str:
        return _runtime(self.options.det_runtime)

    def _pipeline(self):
        """Lease a RapidOCR pipeline of this engine's configuration (context manager)."""
        return _rapid(self.options.threads, self.options.text_score, self.rec_runtime, self.det_runtime).lease()

    def _upside_down_share(self, rgb) -> float | None:
        """Share (by width) of the page's detected text lines that the PP-OCR line classifier reads as
        upside down (label 180, score >= 0.9); None when it cannot tell (no lines, classifier missing)."""
        try:
            with self._pipeline() as engine:
                img, record = engine.preprocess_img(_bgr(rgb))
                crops, _det = engine.detect_and_crop(img, record)
                cls = engine._load_cls_model()(crops)
        except Exception:  # noqa: BLE001 - no text found, or a rapidocr without these steps: compare readings
            return None
        widths = [float(c.shape[1]) for c in crops]
        if not widths or not cls.cls_res or len(cls.cls_res) != len(widths) or not sum(widths):
            return None
        flipped = sum(w for w, (label, score) in zip(widths, cls.cls_res) if str(label) == "180" and score >= 0.9)
        return flipped / sum(widths)

    def _read(self, rgb) -> list[OcrWord]:
        with self._pipeline() as engine:
            res, decoded = recognise(engine, _bgr(rgb))
        txts = list(res.txts or [])
        if not txts:
            return []
        scores = [float(s) for s in res.scores]
        seg_boxes = [_xs(b) for b in res.boxes]
        char_results = list(res.word_results or [])
        if len(char_results) != len(txts):
            char_results = [None] * len(txts)
        words: list[OcrWord] = []
        for line_no, line in enumerate(group_lines(seg_boxes)):
            for i in line:
                chars = [(c[0], c[1], c[2]) for c in char_results[i]] if char_results[i] else None
                chars = aligned_char_scores(txts[i], decoded[i] if i < len(decoded) else None, chars)
                text = unicodedata.normalize("NFC", txts[i])
                for w, conf, box in split_segment(text, chars, scores[i], self.options.space_gap):
                    x0, y0, x1, y1 = box if box is not None else seg_boxes[i]
                    words.append(
                        OcrWord(
                            text=w,
                            confidence=round(max(0.0, min(1.0, conf)), 4),
                            bbox=(round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1)),
                            line=line_no,
                            block=0,
                        )
                    )
        return words

    def read(self, page_image, raw_page: RawPage) -> EngineOutput:
        from PIL import Image

        if page_image is None:
            raise EngineError("rapidocr needs a page image")
        opts = self.options
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        rgb = page_image if page_image.mode == "RGB" else page_image.convert("RGB")
        w, h = rgb.size
        if w < 2 or h < 2:
            raise EngineError(f"page image too small ({w}x{h})")
        scale = 1.0
        if w * h > opts.max_pixels:
            scale = (opts.max_pixels / (w * h)) ** 0.5
            rgb = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.LANCZOS)
        timings["prepare"] = time.perf_counter() - t0

        rotation, osd = 0, {}
        if opts.detect_orientation:
            t1 = time.perf_counter()
            rotation, osd = _osd(rgb.convert("L"), opts.min_orientation_confidence)
            timings["osd"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        if rotation == 180:
            # OSD calls noisy upright receipts "180" now and then. RapidOCR's text-line
            # classifier settles it: on the unturned page, the share of detected lines
            # (by width) it reads as upside down is <= 0.09 on upright corpus pages and
            # >= 0.67 on the same pages turned (det + cls cost a fraction of a second
            # reading). Where the classifier cannot run, both readings are compared.
            share = self._upside_down_share(rgb)
            timings["verify_180"] = time.perf_counter() - t2
            if share is not None:
                osd["upside_down_share"] = round(share, 3)
                if share < opts.upside_down_share:
                    rotation = 0
                    osd["rejected"] = True
                words = self._read(rgb.rotate(180) if rotation else rgb)
            else:
                words = self._read(rgb.rotate(180))
                conf = weighted_confidence([(x.text, x.confidence) for x in words]) or 0.0
                words0 = self._read(rgb)
                conf0 = weighted_confidence([(x.text, x.confidence) for x in words0]) or 0.0
                osd.update(rotated_confidence=round(conf, 4), upright_confidence=round(conf0, 4))
                if conf < conf0 + opts.orientation_verify_margin:
                    rotation, words = 0, words0
                    osd["rejected"] = True
        else:
            # (90/270 are taken from OSD as they are: the recogniser turns tall crops by
            # itself and reads sideways text with good scores, only in the wrong order)
            words = self._read(rgb.rotate(-rotation, expand=True, fillcolor=(255, 255, 255)) if rotation else rgb)
        timings["recognize"] = time.perf_counter() - t2
        if scale != 1.0:
            words = [
                x.model_copy(update={"bbox": tuple(round(v / scale, 1) for v in x.bbox)}) for x in words
            ]
        lines: dict[int, list[str]] = {}
        for x in words:
            lines.setdefault(x.line, []).append(x.text)
        text = "\n".join(" ".join(ws) for _, ws in sorted(lines.items()))
        confidence = weighted_confidence([(x.text, x.confidence) for x in words]) if words else None
        width, height = (h, w) if rotation in (90, 270) else (w, h)
        return EngineOutput(
            text=text,
            words=words,
            confidence=None if confidence is None else round(confidence, 4),
            rotation=rotation,
            width=width,
            height=height,
            dpi=float(raw_page.dpi or 0.0),
            details={"scale": round(scale, 3), "osd": osd, "seconds": {k: round(v, 3) for k, v in timings.items()}},
        )


def _osd(gray, min_confidence: float) -> tuple[int, dict]:
    """Tesseract OSD when available; (0, reason) otherwise."""
    try:
        from resources.ocr.tesseract import detect_orientation, find_tessdata
    except ImportError as exc:
        return 0, {"error": f"no orientation detection: {exc}"}
    tessdata = find_tessdata()
    if tessdata is None:
        return 0, {"error": "no tessdata for orientation detection"}
    try:
        return detect_orientation(gray, tessdata, min_confidence)
    except Exception as exc:  # noqa: BLE001 - orientation is best effort, reading goes on upright
        return 0, {"error": f"{type(exc).__name__}: {exc}"}


__all__ = ["RapidOcrEngine", "RapidOcrOptions", "aligned_char_scores", "recognise", "split_segment", "group_lines"]
