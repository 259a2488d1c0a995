"""docling's standard pipeline on a page image: layout model + OCR (+ optional table structure).

Enabled only with a local model folder (`artifacts_path`, the output folder of
`docling-tools models download`): docling resolves each model below it as
`<artifacts_path>/<hf repo id with '/' -> '--'>`, e.g. the default layout
model `docling-project/docling-layout-heron` in
`docling-project--docling-layout-heron/` and TableFormer in
`docling-project--docling-models/model_artifacts/tableformer/{accurate,fast}/`.
Nothing is downloaded: `health()` reports what is missing without loading a model.

Per page: the page image (PNG, its dpi kept) is converted by a
`DocumentConverter` for `InputFormat.IMAGE` with `PdfPipelineOptions`
(`do_ocr`, Tesseract via tesserocr or the CLI); the text is the document's
text items in docling's reading order (table cells row by row). The
confidence is docling's own `ConversionResult.confidence`: the page's
`ocr_score` (mean of its OCR line confidences, Tesseract's MeanTextConf/100),
or where no OCR score exists the page's `mean_score` (layout/parse scores).
docling hands back text lines, not words: `words` stays empty.
"""

from __future__ import annotations

import io
import math
import shutil
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from idp_assets.models import RawPage
from resources.ocr.base import EngineError, EngineOptions, EngineOutput, OcrEngine
from resources.ocr.registry import register_engine

if TYPE_CHECKING:
    from docling.datamodel.base_models import ConfidenceReport
    from docling_core.types.doc import DoclingDocument


class DoclingStandardOptions(EngineOptions):
    kind: Literal["docling_standard"] = "docling_standard"
    artifacts_path: str | None = Field(
        default=None, description="local folder with docling's models (`docling-tools models download -o DIR`)"
    )
    ocr_engine: Literal["tesserocr", "tesseract_cli"] = Field(
        default="tesserocr", description="OCR inside docling: tesserocr bindings or the tesseract executable"
    )
    lang: str = Field(default="deu+eng", description="Tesseract language codes joined by '+'")
    tessdata: str | None = Field(default=None, description="tessdata folder (tesserocr); None = auto-detect")
    force_full_page_ocr: bool = Field(default=True, description="OCR the whole page, not only bitmap regions")
    do_table_structure: bool = Field(default=True, description="run TableFormer (needs its model folder)")
    table_mode: Literal["accurate", "fast"] = "accurate"
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(default="cpu", description="docling AcceleratorOptions.device")
    num_threads: int = Field(default=1, ge=1, description="docling AcceleratorOptions.num_threads")


def _repo_folder(repo_id: str) -> str:
    """Folder name docling looks for below artifacts_path (`resolve_model_artifacts_path`)."""
    return repo_id.replace("/", "--")


def layout_model_folder(artifacts_path: Path) -> Path:
    """Where docling's default layout model must lie below `artifacts_path`."""
    from docling.datamodel.pipeline_options import PdfPipelineOptions

    layout = PdfPipelineOptions().layout_options
    repo_id = layout.model_spec.get_repo_id(layout.engine_options.engine_type)
    return artifacts_path / _repo_folder(repo_id)


def table_model_folder(artifacts_path: Path, mode: str) -> Path:
    from docling.models.stages.table_structure.table_structure_model import TableStructureModel

    return artifacts_path / TableStructureModel._model_repo_folder / TableStructureModel._model_path / mode


def artifacts_problem(options: DoclingStandardOptions) -> str | None:
    """Why the model folder cannot serve the standard pipeline (None: it can). Loads nothing."""
    if not options.artifacts_path:
        return "artifacts_path is not set (docling's model folder, see `docling-tools models download`)"
    root = Path(options.artifacts_path)
    if not root.is_dir():
        return f"artifacts_path {root} does not exist"
    layout = layout_model_folder(root)
    if not layout.is_dir():
        return f"layout model folder {layout.name} missing in {root}"
    missing = [f for f in ("config.json", "preprocessor_config.json") if not (layout / f).is_file()]
    if not any(layout.glob("*.safetensors")) and not any(layout.glob("*.bin")):
        missing.append("weights (*.safetensors / *.bin)")
    if missing:
        return f"layout model folder {layout} lacks {', '.join(missing)}"
    if options.do_table_structure:
        table = table_model_folder(root, options.table_mode)
        if not (table / "tm_config.json").is_file():
            return f"TableFormer model missing: {table / 'tm_config.json'} (or set do_table_structure false)"
    return None


def document_text(document: DoclingDocument) -> str:
    """Text of a DoclingDocument in reading order: text items one per line, tables row by row."""
    from docling_core.types.doc import TableItem, TextItem

    lines: list[str] = []
    for item, _level in document.iterate_items():
        if isinstance(item, TextItem):
            if item.text.strip():
                lines.append(item.text.strip())
        elif isinstance(item, TableItem):
            for row in item.data.grid:
                cells = [c.text.strip() for c in row]
                if any(cells):
                    lines.append(" ".join(c for c in cells if c))
    return "\n".join(lines)


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def result_confidence(confidence: ConfidenceReport, text: str) -> tuple[float | None, dict]:
    """Page confidence from docling's ConfidenceReport: mean ocr_score of the pages, else their mean_score;
    None without text. Returns (confidence, the scores it was taken from)."""
    pages = list(confidence.pages.values())
    with warnings.catch_warnings():  # numpy warns on the all-NaN means of unfilled scores
        warnings.simplefilter("ignore", RuntimeWarning)
        return _result_confidence(confidence, pages, text)


def _result_confidence(confidence, pages, text: str) -> tuple[float | None, dict]:
    scores = {
        "ocr_score": _finite(confidence.ocr_score),
        "layout_score": _finite(confidence.layout_score),
        "parse_score": _finite(confidence.parse_score),
        "table_score": _finite(confidence.table_score),
        "mean_score": _finite(confidence.mean_score),
    }
    if not text.strip():
        return None, scores
    ocr = [s for s in (_finite(p.ocr_score) for p in pages) if s is not None]
    if ocr:
        value, source = sum(ocr) / len(ocr), "ocr_score"
    else:
        means = [s for s in (_finite(p.mean_score) for p in pages) if s is not None]
        if means:
            value, source = sum(means) / len(means), "mean_score"
        elif scores["mean_score"] is not None:
            value, source = scores["mean_score"], "mean_score"
        else:
            return None, scores
    scores["source"] = source
    return min(1.0, max(0.0, value)), scores


@register_engine
class DoclingStandardEngine(OcrEngine):
    """docling's standard pipeline (layout + Tesseract OCR) from a local model folder."""

    name = "docling_standard"
    compute = "cpu"
    inputs = frozenset({"image"})
    options_class = DoclingStandardOptions
    version_packages = ("docling", "docling-core", "docling-ibm-models")

    def __init__(self, options: EngineOptions | None = None):
        super().__init__(options)
        self.compute = "gpu" if self.options.device == "cuda" else "cpu"
        self._converter = None
        self._lock = threading.Lock()

    @property
    def languages(self) -> list[str]:
        return [lang for lang in self.options.lang.split("+") if lang]

    def health(self) -> tuple[bool, str]:
        try:
            import docling  # noqa: F401
        except ImportError as exc:
            return False, f"docling not importable: {exc}"
        problem = artifacts_problem(self.options)
        if problem:
            return False, problem
        if self.options.ocr_engine == "tesserocr":
            try:
                import tesserocr  # noqa: F401
            except ImportError as exc:
                return False, f"tesserocr not importable: {exc}"
        elif shutil.which("tesseract") is None:
            return False, "tesseract executable not found on PATH"
        if self.options.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                return False, "device cuda requested but no CUDA device is present"
        return True, "ok"

    def _pipeline_options(self):
        from docling.datamodel.accelerator_options import AcceleratorOptions
        from docling.datamodel.pipeline_options import (
            PdfPipelineOptions,
            TableFormerMode,
            TableStructureOptions,
            TesseractCliOcrOptions,
            TesseractOcrOptions,
        )

        opts = self.options
        if opts.ocr_engine == "tesserocr":
            from resources.ocr.tesseract import find_tessdata

            ocr = TesseractOcrOptions(lang=self.languages, path=find_tessdata(opts.tessdata),
                                      force_full_page_ocr=opts.force_full_page_ocr)
        else:
            ocr = TesseractCliOcrOptions(lang=self.languages, force_full_page_ocr=opts.force_full_page_ocr)
        return PdfPipelineOptions(
            artifacts_path=opts.artifacts_path,
            do_ocr=True,
            ocr_options=ocr,
            do_table_structure=opts.do_table_structure,
            table_structure_options=TableStructureOptions(mode=TableFormerMode(opts.table_mode)),
            accelerator_options=AcceleratorOptions(device=opts.device, num_threads=opts.num_threads),
        )

    def converter(self):
        """The DocumentConverter of this engine, built once (models load on first conversion)."""
        with self._lock:
            if self._converter is None:
                from docling.datamodel.base_models import InputFormat
                from docling.document_converter import DocumentConverter, ImageFormatOption

                self._converter = DocumentConverter(
                    allowed_formats=[InputFormat.IMAGE],
                    format_options={InputFormat.IMAGE: ImageFormatOption(pipeline_options=self._pipeline_options())},
                )
            return self._converter

    def read(self, page_image, raw_page: RawPage) -> EngineOutput:
        ok, reason = self.health()
        if not ok:
            raise EngineError(f"docling_standard unavailable: {reason}")
        if page_image is None:
            raise EngineError("docling_standard needs a page image")
        from docling.datamodel.base_models import ConversionStatus, DocumentStream

        dpi = raw_page.dpi or 0.0
        buf = io.BytesIO()
        page_image.convert("RGB").save(buf, format="PNG", **({"dpi": (dpi, dpi)} if dpi > 0 else {}))
        buf.seek(0)
        started = time.perf_counter()
        try:
            result = self.converter().convert(DocumentStream(name=f"page-{raw_page.number}.png", stream=buf),
                                              raises_on_error=False)
        except Exception as exc:  # docling/model failures surface as an engine error
            raise EngineError(f"docling_standard failed: {type(exc).__name__}: {exc}") from exc
        if result.status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
            errors = "; ".join(e.error_message for e in result.errors) or str(result.status)
            raise EngineError(f"docling_standard conversion {result.status.value}: {errors}")
        text = document_text(result.document)
        confidence, scores = result_confidence(result.confidence, text)
        return EngineOutput(
            text=text,
            confidence=confidence,
            rotation=0,
            width=page_image.width,
            height=page_image.height,
            dpi=dpi,
            details={"scores": scores, "status": result.status.value,
                     "seconds": round(time.perf_counter() - started, 3)},
        )
