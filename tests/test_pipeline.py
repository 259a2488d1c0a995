"""End to end: a file dropped into the inbox flows through every asset on a real Dagster instance.

Real components: a Dagster instance (SQLite in a temp DAGSTER_HOME), the inbox sensor
evaluated with `build_sensor_context`, the ArcadeDB Bolt server (fixture), Chroma
PersistentClient, Tesseract, the document store in a temp folder.
"""

from __future__ import annotations

import json
import shutil

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context

from idp_assets.definitions import ALL_ASSETS, DOCUMENT_ASSETS, process_document_job
from idp_assets.exports import ExportTarget
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
from idp_assets.settings import build_resources
from sensors.inbox import InboxSettings, inbox_sensor

ASSET_KEYS = [a.key for a in DOCUMENT_ASSETS]


@pytest.fixture
def env(tmp_path, bolt_server, graph_store):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    resources = build_resources(env={}, data_dir=str(tmp_path / "data"))
    resources["inbox_settings"] = InboxSettings(path=str(inbox), min_age_seconds=0)
    resources["graph_store"] = graph_store
    resources["export_target"] = ExportTarget(out_dir=str(tmp_path / "exports"))
    (tmp_path / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    defs = Definitions(assets=ALL_ASSETS, jobs=[process_document_job], sensors=[inbox_sensor], resources=resources)
    yield {"inbox": inbox, "resources": resources, "instance": instance, "defs": defs, "tmp": tmp_path}
    instance.dispose()


def tick(env, cursor):
    ctx = build_sensor_context(instance=env["instance"], cursor=cursor,
                               resources={k: env["resources"][k] for k in ("inbox_settings", "document_store")})
    result = inbox_sensor(ctx)
    for req in result.dynamic_partitions_requests or []:
        env["instance"].add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, list(req.partition_keys))
    return result, ctx.cursor if result.cursor is None else result.cursor


def run(env, request):
    job = env["defs"].resolve_job_def(process_document_job.name)
    return job.execute_in_process(instance=env["instance"], partition_key=request.partition_key, tags=request.tags)


def test_dropped_invoice_materializes_every_asset_once(env, corpus, graph_store):
    src = corpus / "invoices_pdf" / "invoice-i2d-oyo.pdf"
    shutil.copy(src, env["inbox"] / src.name)

    result, cursor = tick(env, None)
    assert len(result.run_requests) == 1
    req = result.run_requests[0]
    import hashlib

    doc_id = hashlib.sha256(src.read_bytes()).hexdigest()
    assert req.partition_key == doc_id
    assert env["instance"].get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME) == [doc_id]

    res = run(env, req)
    assert res.success
    for key in ASSET_KEYS:
        ev = env["instance"].get_latest_materialization_event(key)
        assert ev is not None and ev.dagster_event.partition == doc_id, key
    checks = [e for e in res.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    failed = [e.event_specific_data.check_name for e in checks if not e.event_specific_data.passed]
    assert checks and not failed, failed

    exports = list((env["tmp"] / "exports").glob("*.json"))
    assert len(exports) == 1
    record = json.loads(exports[0].read_text())
    assert record["document_id"] == doc_id and record["status"] == "ok"
    assert record["pages"][0]["engine"] == "text_layer" and "OYO" in record["text"].upper()
    for p in record["pages"]:
        assert 0.0 <= p["confidence"] <= 1.0 and p["route_reason"]

    counts_once = graph_store.counts()
    assert counts_once["nodes"].get("Document") == 1

    # the same bytes dropped again under another name: one partition, never a second run
    shutil.copy(src, env["inbox"] / "copy-of-oyo.pdf")
    result2, cursor = tick(env, cursor)
    assert not result2.run_requests
    assert env["instance"].get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME) == [doc_id]
    # nothing new at all: an empty tick
    result3, _ = tick(env, cursor)
    assert not result3.run_requests

    # re-materializing the partition leaves the graph and the vector store as they were
    chunks_before = env["resources"]["vector_store"].count(doc_id)
    assert run(env, req).success
    assert graph_store.counts() == counts_once
    assert env["resources"]["vector_store"].count(doc_id) == chunks_before > 0


def test_bad_input_fails_only_its_partition(env):
    (env["inbox"] / "empty.pdf").write_bytes(b"")
    (env["inbox"] / "garbage.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    result, _ = tick(env, None)
    assert len(result.run_requests) == 2
    for req in result.run_requests:
        res = env["defs"].resolve_job_def(process_document_job.name).execute_in_process(
            instance=env["instance"], partition_key=req.partition_key, raise_on_error=False)
        assert not res.success
        failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
        reason = failure.step_failure_data.user_failure_data.metadata["reason"].value
        assert reason in ("empty_file", "corrupt_pdf")
        # the original bytes stay in the document store
        assert env["resources"]["document_store"].get_original(req.partition_key) is not None
        assert env["instance"].get_latest_materialization_event(AssetKey("source_documents")) is not None
