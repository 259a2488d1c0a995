"""Secrets come only from environment variables (EnvVar) and never end up in what Dagster stores.

A document runs end to end on a real Dagster instance (SQLite, temp DAGSTER_HOME) with
resources built by `build_resources` from an environment that carries distinctive secret
values: the S3 secret key (real moto S3 document store; moto accepts any credentials), the
ArcadeDB Bolt password (the real test server's password), the PostgreSQL supplier-master DSN
with a password (trust auth ignores it) and LLM / embedding API keys.  Then everything the
instance recorded is searched for those values: every event log entry, the run record (config,
tags), the job snapshot (what the UI shows as resource config), every file under the
instance's storage folder (compute logs included), the stdout/stderr of the run, and the exports.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, EnvVar
from dagster._serdes import serialize_value

from idp_assets.definitions import ALL_ASSETS, process_document_job
from idp_assets.runner import DocumentRunner
from idp_assets.settings import build_resources



def _secrets(bolt_server) -> dict[str, str]:
    tag = uuid.uuid4().hex[:12]
    return {
        "AWS_ACCESS_KEY_ID": f"AKIAIDPTEST{tag.upper()}",
        "AWS_SECRET_ACCESS_KEY": f"s3-secret-{tag}-Zq9",
        "IDP_GRAPH_PASSWORD": bolt_server.password,  # the real server's password: the run must use it
        "IDP_SUPPLIERS_DSN_PASSWORD": f"pg-secret-{tag}-Xw7",
        "IDP_EMBED_API_KEY": f"sk-embed-{tag}-Kp3",
        "OPENAI_API_KEY": f"sk-openai-{tag}-Rt5",
        "ANTHROPIC_API_KEY": f"sk-ant-{tag}-Lm2",
    }


def _contains(haystack: bytes, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value.encode() in haystack]


@pytest.fixture
def secret_env(tmp_path, monkeypatch, bolt_server, s3_client, graph_store, postgres_server):
    secrets = _secrets(bolt_server)
    schema = "t_sec_" + uuid.uuid4().hex[:10]
    env = {
        "IDP_STORE_KIND": "s3",
        "IDP_STORE_BUCKET": s3_client.bucket,
        "IDP_S3_ENDPOINT_URL": s3_client.endpoint_url,
        "AWS_DEFAULT_REGION": s3_client.region_name,
        "AWS_ACCESS_KEY_ID": secrets["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": secrets["AWS_SECRET_ACCESS_KEY"],
        "IDP_GRAPH_URI": bolt_server.uri,
        "IDP_GRAPH_USER": bolt_server.user,
        "IDP_GRAPH_PASSWORD": secrets["IDP_GRAPH_PASSWORD"],
        "IDP_GRAPH_DATABASE": bolt_server.database,
        "IDP_GRAPH_MANAGED": "0",
        "IDP_SUPPLIERS_DSN": postgres_server.dsn(password=secrets["IDP_SUPPLIERS_DSN_PASSWORD"]),
        "IDP_SUPPLIERS_SCHEMA": schema,
        "IDP_EMBED_API_KEY": secrets["IDP_EMBED_API_KEY"],
        "OPENAI_API_KEY": secrets["OPENAI_API_KEY"],
        "ANTHROPIC_API_KEY": secrets["ANTHROPIC_API_KEY"],
        "IDP_EXPORT_DIR": str(tmp_path / "exports"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "dagster_home").mkdir()
    instance = DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    resources = build_resources(data_dir=str(tmp_path / "data"))
    try:
        yield {"secrets": secrets, "resources": resources, "instance": instance, "tmp": tmp_path, "s3": s3_client,
               "graph": graph_store, "pg": postgres_server}
    finally:
        instance.dispose()
        try:
            resources["supplier_master"].backend().drop_schema()
        except Exception:  # noqa: BLE001 - cleanup only; the test itself reports real failures
            pass


def test_secret_fields_are_env_vars_not_values(secret_env):
    r = secret_env["resources"]
    assert r["document_store"].aws_secret_access_key == EnvVar("AWS_SECRET_ACCESS_KEY")
    assert r["document_store"].aws_access_key_id == EnvVar("AWS_ACCESS_KEY_ID")
    assert r["s3_inbox_settings"].aws_secret_access_key == EnvVar("AWS_SECRET_ACCESS_KEY")
    assert r["graph_store"].password == EnvVar("IDP_GRAPH_PASSWORD")
    assert r["supplier_master"].dsn == EnvVar("IDP_SUPPLIERS_DSN")
    assert r["embedder"].api_key == EnvVar("IDP_EMBED_API_KEY")
    # no resource's own representation carries a secret value
    assert not _contains(repr(r).encode(), secret_env["secrets"])


def test_no_secret_in_anything_the_run_stores(secret_env, corpus, capfd, caplog):
    secrets, instance, resources, tmp = (secret_env[k] for k in ("secrets", "instance", "resources", "tmp"))
    src = tmp / "invoice.pdf"
    src.write_bytes((corpus / "invoices_pdf" / "invoice-i2d-oyo.pdf").read_bytes())
    caplog.set_level("DEBUG")

    runner = DocumentRunner(resources, instance)
    outcome = runner.process(src)
    assert outcome.status == "ok", (outcome.reason, outcome.error)
    doc_id = outcome.document_id
    # the secrets were really used: the original is in the moto bucket, the graph has the document,
    # the supplier master lives in the PostgreSQL schema
    s3 = secret_env["s3"]
    assert resources["document_store"].kind == "s3"
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=s3.bucket).get("Contents", [])]
    assert any(doc_id in k for k in keys), keys
    assert secret_env["graph"].counts()["nodes"].get("Document", 0) >= 1
    import psycopg2

    con = secret_env["pg"].connect()
    try:
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name=%s",
                        (resources["supplier_master"].pg_schema,))
            assert cur.fetchone() is not None
    finally:
        con.close()

    runs = instance.get_runs()
    assert len(runs) == 1
    run = instance.get_run_by_id(runs[0].run_id)
    checked: dict[str, bytes] = {}
    # every event log entry of the run (messages, metadata, step failures ...)
    logs = instance.all_logs(run.run_id)
    assert len(logs) > 20
    checked["event_log"] = "\n".join(serialize_value(e) for e in logs).encode()
    # the run record: run config, tags, op selection ...
    checked["run"] = serialize_value(run).encode()
    checked["run_config"] = json.dumps(run.run_config, default=str).encode()
    checked["run_tags"] = json.dumps(run.tags).encode()
    # the job snapshot: the resource config the UI shows for the run
    snapshot = serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
    checked["job_snapshot"] = snapshot.encode()
    assert "IDP_GRAPH_PASSWORD" in snapshot and "AWS_SECRET_ACCESS_KEY" in snapshot  # shown as env var names
    # the resource config of the job definition (what a launchpad would prefill)
    defs = Definitions(assets=ALL_ASSETS, jobs=[process_document_job], resources=resources)
    job = defs.resolve_job_def(process_document_job.name)
    checked["resource_config"] = serialize_value(job.get_job_snapshot()).encode()
    # every file the instance wrote: run/event/schedule storage, compute logs, local artifacts
    for p in sorted(Path(instance.root_directory).rglob("*")):
        if p.is_file():
            checked[f"file:{p.relative_to(instance.root_directory)}"] = p.read_bytes()
    # the export (JSON and side files) and every object in the document store
    for p in sorted((tmp / "exports").rglob("*")):
        if p.is_file():
            checked[f"export:{p.name}"] = p.read_bytes()
    for key in keys:
        checked[f"s3:{key}"] = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    checked["export_record"] = json.dumps(outcome.record).encode()
    # whatever the run printed or logged in this process
    out, err = capfd.readouterr()
    checked["stdout"], checked["stderr"] = out.encode(), err.encode()
    # Python logging at INFO and above (what a deployment logs) carries nothing; at DEBUG, botocore's
    # request signing prints the access key *id* (an identifier, not a secret) but never a secret
    checked["python_logging_info"] = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= 20).encode()
    debug = "\n".join(r.getMessage() for r in caplog.records).encode()
    assert not _contains(debug, {k: v for k, v in secrets.items() if k != "AWS_ACCESS_KEY_ID"})
    assert any(k.startswith("file:") for k in checked) and any(k.startswith("export:") for k in checked)

    leaks = {where: _contains(data, secrets) for where, data in checked.items()}
    leaks = {where: names for where, names in leaks.items() if names}
    assert not leaks, leaks


def test_a_leak_would_be_found(secret_env):
    """The search itself works: a secret written into run tags is found."""
    instance, secrets = secret_env["instance"], secret_env["secrets"]
    from dagster import asset, materialize

    @asset
    def leaky(context) -> int:
        context.log.info("connecting with %s" % secrets["IDP_EMBED_API_KEY"])
        return 1

    assert materialize([leaky], instance=instance, tags={"leak": secrets["AWS_SECRET_ACCESS_KEY"]}).success
    run = instance.get_runs()[0]
    assert _contains(serialize_value(run).encode(), secrets) == ["AWS_SECRET_ACCESS_KEY"]
    logs = "\n".join(serialize_value(e) for e in instance.all_logs(run.run_id)).encode()
    assert _contains(logs, secrets) == ["IDP_EMBED_API_KEY"]
