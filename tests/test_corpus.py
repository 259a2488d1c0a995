"""The whole development corpus through `idp process`, scored with ../shared/tools/score.py.

Guards the foundation's acceptance (every document processed, coverage 1.0) and the
figures that are already exact (e-invoice fields, rotated scans), so a regression
in any stage shows up here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from idp_assets.cli import main

BORN_DIGITAL = {"invoices_pdf", "einvoices", "tables"}


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, corpus, bolt_server):
    tmp = tmp_path_factory.mktemp("corpus")
    mp = pytest.MonkeyPatch()
    for k, v in {"IDP_DATA_DIR": str(tmp / "data"), "IDP_EXPORT_DIR": str(tmp / "exports"),
                 "IDP_GRAPH_URI": bolt_server.uri, "IDP_GRAPH_USER": bolt_server.user,
                 "IDP_GRAPH_PASSWORD": bolt_server.password, "IDP_GRAPH_MANAGED": "0",
                 "IDP_GRAPH_DATABASE": bolt_server.database or "idp"}.items():
        mp.setenv(k, v)
    docs = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    out = tmp / "results"
    # two documents at a time (threads): the whole corpus doubles as a concurrency test of every stage
    res = CliRunner().invoke(main, ["process", *[str(corpus / d["file"]) for d in docs], "--out", str(out),
                                    "--workers", "2"],
                             catch_exceptions=False)
    mp.undo()
    assert res.exit_code == 0, res.output
    report = tmp / "score.json"
    subprocess.run([sys.executable, str(corpus.parent / "tools" / "score.py"), "--manifest",
                    str(corpus / "manifest.jsonl"), "--results", str(out), "--json", str(report)],
                   check=True, capture_output=True)
    return {"docs": docs, "out": out, "report": json.loads(report.read_text())}


def test_every_corpus_document_is_processed(corpus_run):
    index = [json.loads(line) for line in (corpus_run["out"] / "index.jsonl").read_text().splitlines()]
    assert len(index) == len(corpus_run["docs"]) == 79
    assert [r for r in index if r["status"] == "failed"] == []
    assert corpus_run["report"]["overall"]["coverage"] == 1.0


def test_born_digital_pages_never_go_through_image_ocr(corpus_run):
    for d in corpus_run["docs"]:
        if d["category"] in BORN_DIGITAL:
            rec = json.loads((corpus_run["out"] / f"{d['id']}.json").read_text())
            assert {p["engine"] for p in rec["pages"]} == {"text_layer"}, d["id"]
            assert len(rec["pages"]) == d["pages"]


def test_measured_confidences_and_routes(corpus_run):
    for d in corpus_run["docs"]:
        rec = json.loads((corpus_run["out"] / f"{d['id']}.json").read_text())
        for p in rec["pages"]:
            assert p["route_reason"]
            assert p["confidence"] is None or 0.0 <= p["confidence"] <= 1.0


def test_exact_figures_do_not_regress(corpus_run):
    cats = corpus_run["report"]["categories"]
    assert cats["einvoices"]["fields"]["mean"] == 1.0
    assert cats["einvoices"]["tables"]["f1"] == 1.0
    assert cats["scans_rotated"]["text"]["word_f1"] >= 0.95
