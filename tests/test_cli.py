"""`idp process`: same assets in-process, one JSON per input, index.jsonl, failures recorded."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from idp_assets.cli import main


@pytest.fixture
def idp_env(tmp_path, monkeypatch, bolt_server, graph_store):
    monkeypatch.setenv("IDP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IDP_EXPORT_DIR", str(tmp_path / "exports"))
    monkeypatch.setenv("IDP_GRAPH_URI", bolt_server.uri)
    monkeypatch.setenv("IDP_GRAPH_USER", bolt_server.user)
    monkeypatch.setenv("IDP_GRAPH_PASSWORD", bolt_server.password)
    monkeypatch.setenv("IDP_GRAPH_MANAGED", "0")
    if bolt_server.database:
        monkeypatch.setenv("IDP_GRAPH_DATABASE", bolt_server.database)
    return tmp_path


def test_process_mixed_batch(idp_env, corpus):
    inputs = idp_env / "in"
    (inputs / "sub").mkdir(parents=True)
    shutil.copy(corpus / "invoices_pdf" / "invoice-i2d-oyo.pdf", inputs / "invoice.pdf")
    shutil.copy(corpus / "receipts" / "receipt-sroie-002.jpg", inputs / "sub" / "invoice.jpg")  # same stem
    (inputs / "empty.pdf").write_bytes(b"")
    (inputs / "notes.bin").write_bytes(bytes(range(256)) * 4)
    out = idp_env / "out"
    res = CliRunner().invoke(main, ["process", str(inputs), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(index) == 4
    by_src = {r["source"].rsplit("/", 1)[-1]: r for r in index}
    assert by_src["invoice.pdf"]["status"] == "ok" and by_src["invoice.pdf"]["output"] == "invoice.json"
    assert by_src["invoice.jpg"]["status"] == "ok"
    assert by_src["invoice.jpg"]["output"] == f"invoice-{by_src['invoice.jpg']['document_id'][:8]}.json"
    assert by_src["empty.pdf"]["status"] == "failed" and by_src["empty.pdf"]["reason"] == "empty_file"
    assert by_src["notes.bin"]["status"] == "failed" and by_src["notes.bin"]["reason"] == "unsupported_type"
    for r in index:
        rec = json.loads((out / r["output"]).read_text())
        assert rec["document_id"] == r["document_id"]
        if r["status"] == "failed":
            assert rec["errors"][0]["reason"] == r["reason"]
    receipt = json.loads((out / by_src["invoice.jpg"]["output"]).read_text())
    assert receipt["pages"][0]["engine"] != "text_layer" and 0 < receipt["pages"][0]["confidence"] <= 1
    assert receipt["source"]["media_type"] == "image/jpeg"


def test_audit_shows_lineage_of_a_processed_file(idp_env, corpus):
    src = corpus / "einvoices" / "einvoice-mustangbeispiel20221026.pdf"
    out = idp_env / "out"
    runner = CliRunner()
    assert runner.invoke(main, ["process", str(src), "--out", str(out)], catch_exceptions=False).exit_code == 0
    res = runner.invoke(main, ["audit", str(src), "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    audit = json.loads(res.output)
    chain = ["source_documents", "raw_pages", "ocr_pages", "normalized_tables", "extracted_fields",
             "supplier_matches", "embeddings", "graph_nodes", "document_exports"]
    order = [m["asset"] for m in audit["materializations"]]
    assert [a for a in order if a != "page_thumbnails"] == chain
    # the side branch off raw_pages (page thumbnails for the review page) is in the lineage too
    assert order.count("page_thumbnails") == 1 and order.index("page_thumbnails") > order.index("raw_pages")
    assert all(m["data_version"] and m["code_version"] for m in audit["materializations"])
    exports = audit["materializations"][-1]
    assert "extracted_fields" in exports["upstream"] and "source_documents" in exports["upstream"]
    assert audit["fields"]["invoice_number"]["source"] == "einvoice_xml"
    assert audit["pages"]["1"].startswith("text_layer")
    # a unique prefix of the id works too, an unknown one fails clearly
    assert runner.invoke(main, ["audit", audit["document_id"][:10]]).exit_code == 0
    bad = runner.invoke(main, ["audit", "ffffffffffff"])
    assert bad.exit_code != 0 and "no document" in bad.output
