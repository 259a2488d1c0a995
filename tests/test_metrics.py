"""The Prometheus exporter reads pages, latencies, confidences and failure reasons from a real instance."""

from __future__ import annotations

import shutil

from click.testing import CliRunner
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from idp_assets.audit import instance_for
from idp_assets.cli import main
from idp_assets.metrics import registry_for


def test_metrics_from_processed_documents(tmp_path, monkeypatch, bolt_server, graph_store, corpus):
    for k, v in {"IDP_DATA_DIR": str(tmp_path / "data"), "IDP_GRAPH_URI": bolt_server.uri,
                 "IDP_GRAPH_USER": bolt_server.user, "IDP_GRAPH_PASSWORD": bolt_server.password,
                 "IDP_GRAPH_MANAGED": "0"}.items():
        monkeypatch.setenv(k, v)
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(corpus / "scans_rotated" / "scan-docling-ocr-test-rotated-90.pdf", inp / "scan.pdf")
    shutil.copy(corpus / "invoices_pdf" / "invoice-i2d-oyo.pdf", inp / "oyo.pdf")
    (inp / "empty.pdf").write_bytes(b"")
    assert CliRunner().invoke(main, ["process", str(inp), "--out", str(tmp_path / "out")]).exit_code == 0

    reg = registry_for(instance_for(str(tmp_path / "data")))
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    pages = {s.labels["engine"]: s.value for s in fams["idp_pages_processed"].samples if s.name.endswith("_total")}
    assert pages.get("text_layer") == 1 and sum(pages.values()) == 2
    fails = {s.labels["reason"]: s.value for s in fams["idp_document_failures"].samples if s.name.endswith("_total")}
    assert fails == {"empty_file": 1.0}
    counts = [s for s in fams["idp_page_latency_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in counts) == 2
    conf = [s for s in fams["idp_page_confidence"].samples if s.name.endswith("_sum")]
    assert all(0 < s.value <= 1 for s in conf)
    docs = [s for s in fams["idp_documents_processed"].samples if s.name.endswith("_total")]
    assert docs[0].value == 2
    # a second scrape does not count the same events twice
    fams2 = {f.name: f for f in text_string_to_metric_families(generate_latest(reg).decode())}
    pages2 = {s.labels["engine"]: s.value for s in fams2["idp_pages_processed"].samples if s.name.endswith("_total")}
    assert pages2 == pages


def test_grafana_dashboard_queries_exported_metrics():
    import json
    import re
    from pathlib import Path

    dash = json.loads((Path(__file__).parent.parent / "resources/observability/grafana_dashboard.json").read_text())
    exported = {"idp_pages_processed_total", "idp_page_latency_seconds_bucket", "idp_page_confidence_sum",
                "idp_page_confidence_count", "idp_page_confidence_bucket", "idp_document_failures_total",
                "idp_documents_processed_total", "idp_run_queue_depth"}
    used = {m for p in dash["panels"] for t in p["targets"] for m in re.findall(r"idp_[a-z_]+", t["expr"])}
    assert used and used <= exported
