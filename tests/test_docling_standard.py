"""docling standard-pipeline engine: registration, model-folder health, text + confidence from docling's own
result classes. The layout model itself is never run (no weights here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from idp_assets.models import RawPage  # noqa: E402
from resources.ocr import get_engine, known_engines  # noqa: E402
from resources.ocr.base import EngineError  # noqa: E402
from resources.ocr.docling_standard import (  # noqa: E402
    DoclingStandardOptions,
    artifacts_problem,
    document_text,
    layout_model_folder,
    result_confidence,
    table_model_folder,
)

docling_core = pytest.importorskip("docling_core")
from docling.datamodel.base_models import ConfidenceReport, PageConfidenceScores  # noqa: E402
from docling_core.types.doc import DocItemLabel, DoclingDocument, TableCell, TableData  # noqa: E402


def _raw_page() -> RawPage:
    return RawPage(number=1, width=200, height=100, dpi=300)


def _complete_artifacts(root: Path, table: bool = True) -> Path:
    """A model folder laid out like `docling-tools models download` (empty files: nothing is loaded)."""
    layout = layout_model_folder(root)
    layout.mkdir(parents=True)
    for name in ("config.json", "preprocessor_config.json", "model.safetensors"):
        (layout / name).write_text("{}")
    if table:
        tf = table_model_folder(root, "accurate")
        tf.mkdir(parents=True)
        (tf / "tm_config.json").write_text("{}")
    return root


def test_registry_lists_engine():
    assert "docling_standard" in known_engines()
    engine = get_engine("docling_standard")
    assert engine.inputs == frozenset({"image"})
    assert engine.compute == "cpu"
    assert get_engine("docling_standard", device="cuda").compute == "gpu"
    assert engine.languages == ["deu", "eng"]


def test_layout_folder_is_where_docling_resolves_it(tmp_path):
    """Our health check must look where docling's own resolver looks (breaks if docling renames its layout)."""
    from docling.models.inference_engines.vlm._utils import resolve_model_artifacts_path

    folder = layout_model_folder(tmp_path)
    folder.mkdir(parents=True)

    def no_download(repo_id, revision):
        raise AssertionError("must not download")

    from docling.datamodel.pipeline_options import PdfPipelineOptions

    layout = PdfPipelineOptions().layout_options
    repo = layout.model_spec.get_repo_id(layout.engine_options.engine_type)
    assert resolve_model_artifacts_path(repo, "main", tmp_path, no_download) == folder


def test_health_unset_artifacts_path():
    ok, reason = get_engine("docling_standard").health()
    assert not ok and "artifacts_path is not set" in reason


def test_health_missing_artifacts_path(tmp_path):
    ok, reason = get_engine("docling_standard", artifacts_path=str(tmp_path / "nope")).health()
    assert not ok and "does not exist" in reason


def test_health_incomplete_artifacts(tmp_path):
    ok, reason = get_engine("docling_standard", artifacts_path=str(tmp_path)).health()
    assert not ok and "layout model folder" in reason and "missing" in reason

    layout = layout_model_folder(tmp_path)
    layout.mkdir(parents=True)
    (layout / "config.json").write_text("{}")
    ok, reason = get_engine("docling_standard", artifacts_path=str(tmp_path)).health()
    assert not ok and "preprocessor_config.json" in reason and "weights" in reason

    (layout / "preprocessor_config.json").write_text("{}")
    (layout / "model.safetensors").write_text("")
    problem = artifacts_problem(DoclingStandardOptions(artifacts_path=str(tmp_path)))
    assert problem is not None and "TableFormer" in problem
    assert artifacts_problem(DoclingStandardOptions(artifacts_path=str(tmp_path), do_table_structure=False)) is None


def test_health_complete_artifacts(tmp_path):
    pytest.importorskip("tesserocr")
    _complete_artifacts(tmp_path)
    engine = get_engine("docling_standard", artifacts_path=str(tmp_path))
    assert engine.health() == (True, "ok")
    assert engine._converter is None  # health loads nothing


def test_read_on_unhealthy_engine_raises_reason(tmp_path):
    engine = get_engine("docling_standard", artifacts_path=str(tmp_path / "absent"))
    with pytest.raises(EngineError, match="does not exist"):
        engine.read(Image.new("RGB", (200, 100), "white"), _raw_page())
    assert engine._converter is None


def _document() -> DoclingDocument:
    doc = DoclingDocument(name="page")
    doc.add_title(text="Invoice 2024-0815")
    doc.add_text(label=DocItemLabel.TEXT, text="Supplier: Example Trading Ltd")
    doc.add_text(label=DocItemLabel.TEXT, text="   ")
    data = TableData(num_rows=2, num_cols=2, table_cells=[
        TableCell(text="Item", start_row_offset_idx=0, end_row_offset_idx=1, start_col_offset_idx=0,
                  end_col_offset_idx=1),
        TableCell(text="Amount", start_row_offset_idx=0, end_row_offset_idx=1, start_col_offset_idx=1,
                  end_col_offset_idx=2),
        TableCell(text="Paper", start_row_offset_idx=1, end_row_offset_idx=2, start_col_offset_idx=0,
                  end_col_offset_idx=1),
        TableCell(text="12.50", start_row_offset_idx=1, end_row_offset_idx=2, start_col_offset_idx=1,
                  end_col_offset_idx=2),
    ])
    doc.add_table(data=data)
    doc.add_text(label=DocItemLabel.TEXT, text="Total 12.50 EUR")
    return doc


def test_document_text_in_reading_order():
    assert document_text(_document()) == (
        "Invoice 2024-0815\nSupplier: Example Trading Ltd\nItem Amount\nPaper 12.50\nTotal 12.50 EUR"
    )
    assert document_text(DoclingDocument(name="empty")) == ""


def test_confidence_from_ocr_score():
    report = ConfidenceReport()
    report.pages[0] = PageConfidenceScores(ocr_score=0.8, layout_score=0.5, parse_score=1.0)
    conf, scores = result_confidence(report, "some text")
    assert conf == pytest.approx(0.8)
    assert scores["source"] == "ocr_score"
    # report-level aggregates are NaN until the pipeline fills them: reported as None, not invented
    assert scores["ocr_score"] is None


def test_confidence_falls_back_to_mean_score_and_none_without_text():
    report = ConfidenceReport()
    report.pages[0] = PageConfidenceScores(layout_score=0.6, parse_score=0.8)
    conf, scores = result_confidence(report, "text")
    assert conf == pytest.approx(0.7) and scores["source"] == "mean_score"
    assert result_confidence(report, "  ")[0] is None
    assert result_confidence(ConfidenceReport(), "text")[0] is None


def test_converter_is_built_once_with_the_options(tmp_path):
    from docling.datamodel.base_models import InputFormat
    from docling.datamodel.pipeline_options import TesseractCliOcrOptions

    engine = get_engine("docling_standard", artifacts_path=str(tmp_path), ocr_engine="tesseract_cli",
                        lang="deu", do_table_structure=False, num_threads=2)
    converter = engine.converter()
    assert engine.converter() is converter
    opts = converter.format_to_options[InputFormat.IMAGE].pipeline_options
    assert isinstance(opts.ocr_options, TesseractCliOcrOptions) and opts.ocr_options.lang == ["deu"]
    assert opts.do_ocr and not opts.do_table_structure
    assert Path(opts.artifacts_path) == tmp_path and opts.accelerator_options.num_threads == 2
