"""`idp process --workers N`: several documents at once (worker processes, or threads of one process),
the same records as one at a time.

Each document is still its own Dagster run (lineage per document); the index is in input order, output
names do not depend on which document finished first, and the same bytes twice are run once.  With worker
processes the embedded Chroma store is written by the batch process only (resources/vector_relay.py): it
holds every chunk once.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance, RunsFilter

from idp_assets.cli import main
from idp_assets.samples import INVOICE_LINES, born_digital_pdf


@pytest.fixture
def graph_env(monkeypatch, bolt_server):
    for k, v in {"IDP_GRAPH_URI": bolt_server.uri, "IDP_GRAPH_USER": bolt_server.user,
                 "IDP_GRAPH_PASSWORD": bolt_server.password, "IDP_GRAPH_MANAGED": "0",
                 "IDP_GRAPH_DATABASE": bolt_server.database or "idp"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.delenv("IDP_PROCESS_WORKERS", raising=False)


def _inputs(folder):
    folder.mkdir()
    paths = []
    for i in range(3):  # distinct bytes, each with its own invoice number
        lines = [*INVOICE_LINES[:3], (50, 700, 10, f"Rechnungsnummer: RE-WORK-{i:03d}"), *INVOICE_LINES[4:]]
        p = folder / f"doc-{i}.pdf"
        p.write_bytes(born_digital_pdf(lines))
        paths.append(p)
    dup = folder / "sub"
    dup.mkdir()
    (dup / "doc-1.pdf").write_bytes(paths[1].read_bytes())  # same stem and same bytes as doc-1.pdf
    # input order on the command line: the duplicate right after its original (still running then)
    return [paths[0], paths[1], dup / "doc-1.pdf", folder / "missing.pdf", paths[2]]


def _chunks(data) -> dict:
    """Chunk ids per document in the data folder's Chroma store, and the keyword index's count."""
    import sqlite3

    from resources.vectors import CHUNKS_COLLECTION, VectorStore

    got = VectorStore(path=str(data / "chroma")).collection(CHUNKS_COLLECTION).get(include=["metadatas"])
    per_doc: dict[str, list[str]] = {}
    for cid, meta in zip(got["ids"], got["metadatas"]):
        per_doc.setdefault(meta["document_id"], []).append(cid)
    with sqlite3.connect(data / "chroma" / "keywords.sqlite") as db:
        keyed = db.execute("select count(*) from chunk_keys").fetchone()[0]
    return {"chunks": {d: sorted(ids) for d, ids in per_doc.items()}, "keyword_rows": keyed}


def _run(tmp_path, monkeypatch, inputs, workers: int, name: str, kind: str = "process"):
    monkeypatch.setenv("IDP_PROCESS_WORKER_KIND", kind)
    monkeypatch.setenv("IDP_DATA_DIR", str(tmp_path / f"data-{name}"))
    monkeypatch.setenv("IDP_EXPORT_DIR", str(tmp_path / f"exports-{name}"))
    out = tmp_path / f"out-{name}"
    res = CliRunner().invoke(main, ["process", *map(str, inputs), "--out", str(out), "--workers", str(workers)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    return out, index


@pytest.mark.parametrize("kind", ["process", "thread"])
def test_two_workers_give_the_records_of_one_worker(tmp_path, monkeypatch, graph_env, kind):
    inputs = _inputs(tmp_path / "in")
    out1, one = _run(tmp_path, monkeypatch, inputs, 1, "one")
    out2, two = _run(tmp_path, monkeypatch, inputs, 2, "two", kind)

    assert [r["source"] for r in two] == [str(p) for p in inputs]  # input order, whatever finished first
    assert [(r["status"], r["reason"], r["output"], r["document_id"]) for r in two] == \
           [(r["status"], r["reason"], r["output"], r["document_id"]) for r in one]
    assert [r["status"] for r in two] == ["ok", "ok", "ok", "failed", "ok"]
    assert two[3]["reason"] == "not_found"
    assert two[1]["document_id"] == two[2]["document_id"] and two[1]["output"] != two[2]["output"]
    for a, b in zip(one, two):
        if a["status"] == "ok":
            ra = json.loads((out1 / a["output"]).read_text())
            rb = json.loads((out2 / b["output"]).read_text())
            assert {k: v["value"] for k, v in rb["fields"].items()} == {k: v["value"] for k, v in ra["fields"].items()}
            assert rb["fields"] and "RE-WORK-" in rb["text"] and rb["text"] == ra["text"]
    # one Dagster run per distinct document, each tagged with its partition (lineage per document)
    instance = DagsterInstance.local_temp(str((tmp_path / "data-two" / "dagster_home").resolve()))
    runs = instance.get_runs(RunsFilter(tags={"idp/runner": "idp process"}))
    assert sorted(r.tags["dagster/partition"] for r in runs) == sorted({r["document_id"] for r in two if r["document_id"]})
    assert all(r.is_success for r in runs)
    # every chunk once in the batch's Chroma store and its keyword index, as with one worker
    assert _chunks(tmp_path / "data-two") == _chunks(tmp_path / "data-one") and _chunks(tmp_path / "data-two")

    # the same command again: everything finished is skipped, the index keeps one record per input
    res = CliRunner().invoke(main, ["process", *map(str, inputs), "--out", str(out2), "--workers", "2"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "5 inputs: 4 processed (4 already before), 1 failed" in res.output
    again = [json.loads(line) for line in (out2 / "index.jsonl").read_text().splitlines()]
    assert [r for r in again if r["status"] == "ok"] == [r for r in two if r["status"] == "ok"]  # the very records
    assert again[3]["reason"] == "not_found"  # tried again: a missing path is no finished document


def test_a_killed_worker_fails_only_its_documents_and_a_rerun_does_them(tmp_path, graph_env, corpus):
    """SIGKILL to a worker process mid-batch (as the OOM killer would): the batch goes on with new
    workers, every input keeps one record, the documents that were running are `worker_lost`, and the
    same command again processes exactly those."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    import psutil

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):  # scans: each long enough to be in flight when the worker is killed
        data = (corpus / "receipts" / "receipt-sroie-002.jpg").read_bytes()
        (folder / f"scan-{i}.jpg").write_bytes(data + f"copy {i}".encode())
    shutil.copy(corpus / "invoices_pdf" / "invoice-i2d-oyo.pdf", folder / "born-digital.pdf")
    out = tmp_path / "out"
    env = {**os.environ, "IDP_DATA_DIR": str(tmp_path / "data"), "IDP_EXPORT_DIR": str(tmp_path / "exports"),
           "IDP_PROCESS_WORKER_KIND": "process"}
    cmd = [sys.executable, "-m", "idp_assets.cli", "process", str(folder), "--out", str(out), "--workers", "2"]
    log = tmp_path / "first.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 600
    killed = None
    while killed is None:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        workers = [c for c in psutil.Process(proc.pid).children() if "spawn_main" in " ".join(c.cmdline())]
        index = out / "index.jsonl"
        # a worker that has started a document run (its Dagster run writes to the instance)
        if workers and index.exists() and index.read_text().count("\n") >= 1:
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    try:  # the batch ends by itself (a broken pool's survivors must not hold its exit)
        rc = proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, log.read_text(errors="replace")[-3000:]
    first = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert sorted(r["source"] for r in first) == sorted(str(p) for p in folder.iterdir())  # nothing lost
    lost = [r for r in first if r["reason"] == "worker_lost"]
    assert lost and all(r["status"] == "failed" and "worker process" in r["error"] for r in lost), first
    assert all(r["status"] == "ok" for r in first if r["reason"] != "worker_lost"), first
    # the killed worker's run is closed as failed, not left STARTED in the instance
    from dagster import DagsterRunStatus

    instance = DagsterInstance.local_temp(str((tmp_path / "data" / "dagster_home").resolve()))
    runs = instance.get_runs(RunsFilter(tags={"idp/runner": "idp process"}))
    assert not [r for r in runs if r.status in (DagsterRunStatus.STARTED, DagsterRunStatus.STARTING)]
    # (a lost document whose run had not started yet has no run to close)
    assert {r.tags["dagster/partition"] for r in runs if r.status == DagsterRunStatus.FAILURE} <= \
        {r["document_id"] for r in lost}

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    final = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert all(r["status"] == "ok" for r in final), final
    assert f"5 inputs: 5 processed ({5 - len(lost)} already before)" in again.stderr
