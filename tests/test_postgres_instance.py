"""Production instance: dagster.postgres.yaml on a real PostgreSQL server (127.0.0.1:5432 or a private one).

The test creates its own database, points DAGSTER_PG_* at it, loads the instance from
the repository's dagster.postgres.yaml, runs the inbox sensor, materializes the
partition and reads the lineage back through the instance API; the database is
dropped afterwards.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, build_sensor_context
from dagster._core.instance.ref import InstanceRef

from idp_assets.definitions import ALL_ASSETS, DOCUMENT_ASSETS, process_document_job
from idp_assets.exports import ExportTarget
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
from idp_assets.settings import build_resources
from sensors.inbox import InboxSettings, inbox_sensor

REPO = Path(__file__).resolve().parent.parent
@pytest.fixture
def pg_database(postgres_server):
    con = postgres_server.connect()
    name = f"idp_dagster_{uuid.uuid4().hex[:10]}"
    with con.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with con.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.close()


def test_sensor_and_partition_on_postgres_storage(tmp_path, monkeypatch, pg_database, corpus, graph_store,
                                                  postgres_server):
    PG = postgres_server.params()
    for k, v in {"DAGSTER_PG_HOST": PG["host"], "DAGSTER_PG_PORT": str(PG["port"]), "DAGSTER_PG_USER": PG["user"],
                 "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": pg_database}.items():
        monkeypatch.setenv(k, v)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.postgres.yaml", home / "dagster.yaml")
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"

        inbox = tmp_path / "inbox"
        inbox.mkdir()
        src = corpus / "einvoices" / "einvoice-zugferd-2p1-basic-taxifahrt.pdf"
        shutil.copy(src, inbox / src.name)
        resources = build_resources(env={}, data_dir=str(tmp_path / "data"))
        resources.update(inbox_settings=InboxSettings(path=str(inbox), min_age_seconds=0), graph_store=graph_store,
                         export_target=ExportTarget(out_dir=str(tmp_path / "exports")))

        ctx = build_sensor_context(instance=instance, resources={k: resources[k] for k in ("inbox_settings", "document_store")})
        result = inbox_sensor(ctx)
        for req in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, list(req.partition_keys))
        (run_request,) = result.run_requests
        doc_id = hashlib.sha256(src.read_bytes()).hexdigest()
        assert run_request.partition_key == doc_id

        defs = Definitions(assets=ALL_ASSETS, jobs=[process_document_job], resources=resources)
        res = defs.resolve_job_def(process_document_job.name).execute_in_process(
            instance=instance, partition_key=doc_id, tags=run_request.tags)
        assert res.success

        # lineage read back from PostgreSQL: every stage materialized for the partition in this run,
        # with data versions and the upstream data versions it was computed from
        record = instance.get_run_record_by_id(res.run_id)
        assert record.dagster_run.tags["dagster/partition"] == doc_id
        for asset in DOCUMENT_ASSETS:
            recs = instance.fetch_materializations(asset.key, limit=5).records
            mine = [r for r in recs if r.partition_key == doc_id and r.run_id == res.run_id]
            assert mine, asset.key
            mat = mine[0].asset_materialization
            assert "dagster/data_version" in mat.tags and mat.tags.get("dagster/code_version")
        exports = instance.fetch_materializations(AssetKey("document_exports"), limit=1).records[0]
        upstream = [k for k in exports.asset_materialization.tags if k.startswith("dagster/input_data_version/")]
        assert {u.rsplit("/", 1)[-1] for u in upstream} >= {"source_documents", "ocr_pages", "extracted_fields"}
    finally:
        instance.dispose()
