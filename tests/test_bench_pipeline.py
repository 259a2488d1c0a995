"""`idp bench pipeline` on a few generated documents: real sensor, real instance, real engines."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from idp_assets.audit import STAGES as AUDITED
from idp_assets.bench.pipeline import distinct_copy, prepare_inputs
from idp_assets.cli import main
from idp_assets.definitions import DOCUMENT_ASSETS
from idp_assets.logic.pages import load_document
from idp_assets.samples import born_digital_pdf, scanned_png

STAGES = {a.key.path[-1] for a in DOCUMENT_ASSETS}


@pytest.fixture
def samples(tmp_path):
    pdf, png = tmp_path / "invoice.pdf", tmp_path / "scan.png"
    pdf.write_bytes(born_digital_pdf())
    png.write_bytes(scanned_png(dpi=150))
    return pdf, png


@pytest.fixture
def bench_env(monkeypatch, bolt_server):
    """The bench's resources talk to the session's ArcadeDB server instead of starting their own."""
    monkeypatch.setenv("IDP_GRAPH_URI", bolt_server.uri)
    monkeypatch.setenv("IDP_GRAPH_USER", bolt_server.user)
    monkeypatch.setenv("IDP_GRAPH_PASSWORD", bolt_server.password)
    monkeypatch.setenv("IDP_GRAPH_DATABASE", bolt_server.database)
    monkeypatch.setenv("IDP_GRAPH_MANAGED", "0")


@pytest.mark.parametrize("make", [born_digital_pdf, lambda: scanned_png(dpi=100)])
def test_repeats_are_distinct_documents_with_the_same_pages(make, corpus):
    data = make()
    copies = [distinct_copy(data, i) for i in range(3)]
    assert copies[0] == data and len({hashlib.sha256(c).hexdigest() for c in copies}) == 3
    loaded = [load_document("0" * 64, c, filename="x") for c in copies]
    first_raw, first_images = loaded[0]
    for raw, images in loaded[1:]:
        assert raw.kind == first_raw.kind and len(raw.pages) == len(first_raw.pages) >= 1
        assert [p.text_layer for p in raw.pages] == [p.text_layer for p in first_raw.pages]
        assert [im and im.tobytes() for im in images] == [im and im.tobytes() for im in first_images]
    jpeg = (corpus / "receipts" / "receipt-sroie-002.jpg").read_bytes()
    a, b = load_document("0" * 64, jpeg)[1][0], load_document("0" * 64, distinct_copy(jpeg, 5))[1][0]
    assert a.size == b.size and a.tobytes() == b.tobytes()
    with pytest.raises(ValueError):
        distinct_copy(b"PK\x03\x04 not a pdf", 1)


def test_prepare_inputs_cycles_the_files(samples, tmp_path):
    out = prepare_inputs(list(samples), 5, tmp_path / "inbox")
    assert [p.name for p in out] == ["00000-invoice.pdf", "00001-scan.png", "00002-invoice-r1.pdf",
                                     "00003-scan-r1.png", "00004-invoice-r2.pdf"]
    assert len({hashlib.sha256(p.read_bytes()).hexdigest() for p in out}) == 5


def _check_mode(m: dict, docs: int, pages: int) -> None:
    assert m["runs"] == m["succeeded"] == m["documents"] == docs and m["failed"] == 0
    assert m["pages"] == pages
    assert m["seconds"] > 0 and m["step_seconds"] > 0 and m["step_seconds"] <= m["seconds"]
    assert m["documents_per_s"] == pytest.approx(docs / m["seconds"], rel=1e-2)
    assert m["pages_per_s"] == pytest.approx(pages / m["seconds"], rel=1e-2)
    assert m["overhead_seconds"] == pytest.approx(m["seconds"] - m["step_seconds"], abs=2e-3)
    assert set(m["stages"]) == STAGES
    for stage in m["stages"].values():
        assert stage["runs"] == docs and 0 < stage["mean_s"] <= stage["max_s"] <= stage["total_s"] + 1e-3
    assert sum(s["total_s"] for s in m["stages"].values()) == pytest.approx(m["step_seconds"], abs=0.05)
    assert m["memory"]["tree_peak_rss_mb"] > 50
    assert m["sensor"]["run_requests"] == docs


def test_bench_pipeline_batched(samples, bench_env, tmp_path):
    pdf, png = samples
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["bench", "pipeline", "--files", str(pdf), "--files", str(png), "--docs", "3",
                                    "--mode", "batched", "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["inputs"]["documents"] == 3 and report["pages"] == 3
    m = report["modes"]["batched"]
    assert m["executor"] == "in_process" and m["step_processes"] == 3  # one process per run: this one
    _check_mode(m, docs=3, pages=3)
    raw = report["raw_engines"]
    assert raw["pages"] == 3 and raw["pages_without_raw_timing"] == 0 and raw["seconds"] > 0
    # the two PDFs are copies of one input (the same pages): read once by the raw engine, counted twice
    assert raw["distinct_documents_read"] == 2
    assert "text_layer" in raw["engines"] and raw["engines"]["text_layer"]["pages"] == 1
    image_engines = [e for e in raw["engines"] if e != "text_layer"]
    assert len(image_engines) == 1 and raw["engines"][image_engines[0]]["pages"] == 1  # the scan
    r = report["ratios"]["batched"]
    assert 0 < r["pipeline_vs_raw_engines"] < 1 and r["ocr_stage_vs_raw_engines"] > 0
    assert r["pipeline_vs_raw_engines"] == pytest.approx(m["pages_per_s"] / raw["pages_per_s"], rel=1e-2)
    # the tree is this test process's: it also holds the session's other servers (the API service and its
    # worker processes when test_api ran first), so its size says nothing about the bench's own peak
    assert report["memory"]["self_peak_rss_mb"] > 200 and m["memory"]["tree_peak_rss_mb"] > 200
    assert "batched" in res.output and "pages/s" in res.output


def test_bench_pipeline_processes(samples, bench_env, tmp_path):
    """Runs in two worker processes (what `idp process --workers 2` does), recorded in the bench's instance."""
    pdf, png = samples
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["bench", "pipeline", "--files", str(pdf), "--files", str(png), "--docs", "3",
                                    "--mode", "processes", "--workers", "2", "--no-raw", "--out", str(out)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    m = json.loads(out.read_text())["modes"]["processes"]
    assert m["executor"].startswith("in_process, one worker process")
    assert m["runs"] == m["succeeded"] == m["documents"] == 3 and m["pages"] == 3 and m["sensor"]["run_requests"] == 3
    assert set(m["stages"]) == STAGES and all(s["runs"] == 3 for s in m["stages"].values())
    assert m["step_processes"] == 3  # each run's steps in one process (a worker's), no process per step
    # the runs overlap on two workers: their summed capacity (wall x 2) holds every step
    assert 0 < m["step_seconds"] <= 2 * m["seconds"]
    assert m["memory"]["tree_peak_rss_mb"] > 200  # the worker processes are counted


@pytest.mark.slow
def test_bench_pipeline_per_run_multiprocess(samples, bench_env, tmp_path):
    """One run with the multiprocess executor: every asset step in its own process."""
    pdf, _ = samples
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["bench", "pipeline", "--files", str(pdf), "--docs", "1", "--mode", "per-run",
                                    "--no-raw", "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    m = report["modes"]["per_run"]
    assert m["executor"] == "multiprocess" and m["step_processes"] == len(STAGES)
    _check_mode(m, docs=1, pages=1)
    assert "raw_engines" not in report
    assert report["memory"]["largest_child_peak_rss_mb"] > 50


def test_bench_registry_registers_every_document_once(tmp_path, monkeypatch):
    home = tmp_path / "users_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the user's instance is never touched
    out = tmp_path / "registry.json"
    res = CliRunner().invoke(main, ["bench", "registry", "--docs", "1200", "--per-tick", "500", "--max-live", "1000",
                                    "--work-dir", str(tmp_path / "work"), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads(out.read_text())
    reg = r["registration"]
    assert reg["run_requests"] == 1200 and reg["ticks"] == 3  # 500 + 500 + 200, then a tick with nothing new
    assert r["queries"]["partitions"] == 1200
    assert len(list((tmp_path / "work" / "inbox").rglob("*.txt"))) == 1200
    assert r["steady_tick"]["seconds_median"] > 0 and r["steady_tick"]["cursor_bytes"] > 1200
    # retention: 1200 live, bound 1000 -> the 300 oldest (finished) retire down to 900, lineage kept
    ret = r["retention"]
    assert ret["finished_documents"] == 300 and ret["retired"] == 300
    assert ret["live_before"] == 1200 and ret["live_after"] == 900 and ret["over_bound_by"] == 0
    assert ret["audit_retired_materializations"] == len(AUDITED)  # every audited stage, read from the event log
    assert len(list((tmp_path / "work" / "data" / "store" / "retired").rglob("*.json"))) == 300
    lim = r["partition_limit"]
    assert lim["max_live_partitions"] == 1000 and lim["partitions_at_1m_documents"] == 1000
    assert lim["within_recommendation_at_1m"] is True
    # the UI's status query, answered by dagster-webserver over the bench's own instance (the live partitions)
    gq = r["graphql_status"]
    assert gq["materialized"] == 90 and gq["first_seconds"] > 0 and gq["repeat_seconds_median"] > 0
    assert gq["partition_stats"]["numPartitions"] == 900 and gq["partition_stats"]["numMaterialized"] == 90
    assert not home.exists()
