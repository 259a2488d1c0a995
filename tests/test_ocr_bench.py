"""`idp bench ocr` on a tiny slice of the corpus: the JSON report has the figures it promises."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

CORPUS = (Path(__file__).resolve().parent.parent.parent / "shared" / "corpus").resolve()


def test_bench_ocr_writes_json(tmp_path):
    from idp_assets.cli import main

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        main,
        ["bench", "ocr", "--corpus", str(CORPUS), "--categories", "invoices_pdf,forms", "--limit", "1",
         "--engines", "text_layer,tesseract,no_such_engine", "--pages", "3", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["documents"] == 2 and report["categories"] == ["forms", "invoices_pdf"]
    tl, tess = report["engines"]["text_layer"], report["engines"]["tesseract"]
    assert tl["pages"] >= 1 and tl["pages_per_s"] > 0 and tess["pages"] == 1 and tess["pages_per_s"] > 0
    assert report["engines"]["no_such_engine"]["healthy"] is False
    scanned, born = report["ocr_pages"]["scanned"], report["ocr_pages"]["born_digital"]
    assert scanned["pages"] == 1 and born["pages"] >= 1
    assert born["vs_engine"] > 0 and report["ocr_pages"]["engines_chosen"]["text_layer"] >= 1
    assert report["memory"]["pages"] == 3 and report["memory"]["peak_rss_mb"] > 0
    assert "pages/s" in result.output
