"""Smoke test of the Dagster UI backend: `dagster-webserver -w workspace.yaml` on a real instance.

One generated invoice is materialized into a temp DAGSTER_HOME (SQLite) first; the
webserver is then started as a subprocess on 127.0.0.1 and asked over GraphQL for
the asset graph (lineage edges) and for the partition's materializations.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import psutil
import pytest
from dagster import DagsterInstance

from idp_assets.exports import ExportTarget
from idp_assets.runner import DocumentRunner
from idp_assets.samples import born_digital_pdf
from idp_assets.settings import build_resources
from idp_assets.webserver import REPO, running_webserver, stop

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

ASSET_GRAPH = """
{ assetNodes { assetKey { path } groupName isPartitioned dependencyKeys { path } } }
"""

MATERIALIZATIONS = """
query ($key: AssetKeyInput!, $partition: String!) {
  assetOrError(assetKey: $key) {
    __typename
    ... on Asset {
      assetMaterializations(partitions: [$partition]) {
        runId timestamp partition
        metadataEntries { label __typename
          ... on TextMetadataEntry { text }
          ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""

RUN = """
query ($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status jobName tags { key value } } } }
"""


@pytest.fixture(scope="module")
def processed_home(tmp_path_factory, bolt_server):
    """A Dagster home with one document partition materialized, plus the env the webserver needs."""
    from resources.graph import GraphStore

    tmp = tmp_path_factory.mktemp("webserver")
    home = tmp / "dagster_home"
    home.mkdir()
    resources = build_resources(env={}, data_dir=str(tmp / "data"))
    resources["graph_store"] = GraphStore(uri=bolt_server.uri, user=bolt_server.user, password=bolt_server.password,
                                          database=bolt_server.database, manage_local_server=False,
                                          server_home=str(bolt_server.home))
    resources["export_target"] = ExportTarget(out_dir=str(tmp / "exports"))
    src = tmp / "invoice.pdf"
    src.write_bytes(born_digital_pdf())
    instance = DagsterInstance.local_temp(str(home))
    try:
        outcome = DocumentRunner(resources, instance).process(src)
    finally:
        instance.dispose()
    assert outcome.status == "ok", outcome.error
    assert outcome.document_id == hashlib.sha256(src.read_bytes()).hexdigest()
    env = {"IDP_DATA_DIR": str(tmp / "data"), "IDP_EXPORT_DIR": str(tmp / "exports"),
           "IDP_GRAPH_URI": bolt_server.uri, "IDP_GRAPH_MANAGED": "0", "IDP_INBOX": str(tmp / "inbox")}
    return {"home": home, "env": env, "document_id": outcome.document_id}


@pytest.fixture(scope="module")
def webserver(processed_home):
    with running_webserver(processed_home["home"], env=processed_home["env"]) as server:
        yield server


def test_asset_graph_has_the_document_lineage(webserver):
    nodes = {tuple(n["assetKey"]["path"]): n for n in webserver.graphql(ASSET_GRAPH)["assetNodes"]}
    deps = {key[-1]: {d["path"][-1] for d in n["dependencyKeys"]} for key, n in nodes.items()}
    assert deps["source_documents"] == set()
    assert "source_documents" in deps["raw_pages"]
    assert "raw_pages" in deps["ocr_pages"]
    assert "ocr_pages" in deps["normalized_tables"]
    assert "normalized_tables" in deps["extracted_fields"]
    assert {"extracted_fields", "supplier_master"} <= deps["supplier_matches"]
    assert "source_documents" in deps["document_exports"]
    for stage in ("source_documents", "raw_pages", "ocr_pages", "extracted_fields", "document_exports"):
        assert nodes[(stage,)]["isPartitioned"], stage
    assert not nodes[("supplier_master",)]["isPartitioned"]


def test_partition_materializations_carry_run_and_engine(webserver, processed_home):
    doc_id = processed_home["document_id"]
    data = webserver.graphql(MATERIALIZATIONS, {"key": {"path": ["ocr_pages"]}, "partition": doc_id})
    asset = data["assetOrError"]
    assert asset["__typename"] == "Asset"
    mats = asset["assetMaterializations"]
    assert len(mats) == 1
    mat = mats[0]
    assert mat["runId"] and mat["partition"] == doc_id and float(mat["timestamp"]) > 0
    meta = {m["label"]: m for m in mat["metadataEntries"]}
    assert meta["engines"]["text"] == "text_layer"  # the born-digital sample is read from its text layer
    assert meta["page_count"]["intValue"] == 1
    run = webserver.graphql(RUN, {"runId": mat["runId"]})["runOrError"]
    assert run["__typename"] == "Run" and run["status"] == "SUCCESS"
    assert {"key": "dagster/partition", "value": doc_id} in run["tags"]
    # an unknown partition has no materializations (the filter is applied, not ignored)
    other = webserver.graphql(MATERIALIZATIONS, {"key": {"path": ["ocr_pages"]}, "partition": "0" * 64})
    assert other["assetOrError"]["assetMaterializations"] == []


def _non_loopback_ipv4() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET address: no packet is sent for a UDP connect
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def test_webserver_binds_loopback_only(webserver):
    listening = [c.laddr for c in psutil.Process(webserver.process.pid).net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and {a.port for a in listening} == {webserver.port}
    assert {a.ip for a in listening} == {"127.0.0.1"}
    ip = _non_loopback_ipv4()
    if ip is not None:  # the port is not reachable on the machine's network address
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            assert s.connect_ex((ip, webserver.port)) != 0
    # the documented ways to start the UI pass -h 127.0.0.1 too
    recipe = [line for line in (REPO / "Makefile").read_text().splitlines() if line.startswith("\t")]
    ui = [line for line in recipe if "$(BIN)/dagster dev" in line]
    api = [line for line in recipe if "$(BIN)/idp api serve" in line]
    assert ui and all("-h 127.0.0.1" in line for line in ui), ui
    assert api and all("--host 127.0.0.1" in line for line in api), api  # the API beside it, too


def test_webserver_terminates_cleanly(processed_home, tmp_path):
    with running_webserver(processed_home["home"], env=processed_home["env"], log_path=tmp_path / "ws.log") as server:
        children = psutil.Process(server.process.pid).children(recursive=True)
        code = stop(server)
    assert code == 0, server.log_tail()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, alive
    assert "Traceback" not in Path(server.log_path).read_text(errors="replace")
