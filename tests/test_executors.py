"""Executors and GPU/CPU routing (idp_assets/executors.py, idp_assets/compute.py).

- celery: real `dagster-celery worker start` workers, one per queue, on the local RabbitMQ;
  the GPU-tagged op must run in the gpu-queue worker and the CPU op in the cpu-queue worker.
- k8s: the Job manifest the k8s executor would create for the real `ocr_pages` step,
  rendered without a cluster, with IDP_OCR_GPU_ENGINES set (gpu) and unset (cpu).
- multiprocess: the `cpu` pool limit of the instance keeps two pooled steps of one run apart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from dagster import DagsterEventType, DagsterInstance, execute_job, reconstructable

from idp_assets.executors import build_executor, executor_name_from_env
from tests.fixtures.executor_jobs import celery_toy_job, pooled_pair

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- executor choice


def test_celery_default_queue_is_the_cpu_queue():
    from idp_assets.executors import celery_executor_config

    # untagged stages must reach a worker of this deployment, not dagster-celery's 'dagster' queue
    assert celery_executor_config({"IDP_CELERY_QUEUE_PREFIX": "staging-"})["config_source"] == {
        "task_default_queue": "staging-cpu"}
    assert celery_executor_config({})["config_source"]["task_default_queue"] == "cpu"


def test_executor_choice_from_env():
    assert executor_name_from_env({}) == "in_process"
    assert executor_name_from_env({"IDP_EXECUTOR": "Multiprocess"}) == "multiprocess"
    with pytest.raises(ValueError, match="IDP_EXECUTOR"):
        executor_name_from_env({"IDP_EXECUTOR": "dask"})
    assert {n: build_executor(n).name for n in ("in_process", "multiprocess", "celery", "k8s")} == {
        "in_process": "in_process", "multiprocess": "multiprocess", "celery": "celery", "k8s": "k8s"}


def test_document_job_executor_follows_idp_executor():
    from idp_assets.definitions import defs

    if not os.environ.get("IDP_EXECUTOR"):
        assert defs.resolve_job_def("process_document").executor_def.name == "in_process"
    env = {**os.environ, "IDP_EXECUTOR": "celery"}
    out = subprocess.run(
        [sys.executable, "-c", "from idp_assets.definitions import defs; "
         "print(defs.resolve_job_def('process_document').executor_def.name)"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "celery"


# ---------------------------------------------------------------- celery


def _stop(proc: subprocess.Popen) -> None:
    """Stop a worker we started (its own session: the dagster-celery CLI and its celery child)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


@pytest.fixture
def celery_workers(tmp_path, monkeypatch, rabbitmq_broker):
    """One `dagster-celery worker start` per queue (`<prefix>gpu`, `<prefix>cpu`) with a temp
    DAGSTER_HOME; a unique queue prefix per test run keeps stale broker messages out. The broker
    is 127.0.0.1:5672 or a private RabbitMQ node (tests/fixtures/servers.py), never a skip."""
    BROKER = rabbitmq_broker.url
    monkeypatch.setenv("IDP_CELERY_BROKER", BROKER)
    from celery import Celery
    from kombu import Connection

    prefix = f"idptest-{uuid.uuid4().hex[:8]}-"
    monkeypatch.setenv("IDP_CELERY_QUEUE_PREFIX", prefix)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # create the SQLite storages here, before two workers race to create them on start-up
    instance = DagsterInstance.local_temp(str(home))
    config_yaml = tmp_path / "celery.yaml"
    config_yaml.write_text(json.dumps({"execution": {"config": {"broker": BROKER, "backend": "rpc://"}}}))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "IDP_CELERY_QUEUE_PREFIX": prefix,
    }
    workers: dict[str, dict] = {}
    try:
        for compute in ("gpu", "cpu"):
            queue = f"{prefix}{compute}"
            log = tmp_path / f"worker-{compute}.log"
            proc = subprocess.Popen(
                [str(VENV_BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                 "-y", str(config_yaml), "-q", queue, "-n", queue, "-l", "INFO",
                 "--", "--pool=solo", "--without-gossip", "--without-mingle"],
                env=env, cwd=REPO, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
            workers[compute] = {"proc": proc, "queue": queue, "log": log}

        app = Celery(broker=BROKER)
        deadline = time.time() + 60
        nodes: dict[str, str] = {}
        while time.time() < deadline and len(nodes) < 2:
            for w in workers.values():
                if w["proc"].poll() is not None:
                    pytest.fail(f"celery worker for {w['queue']} exited:\n{w['log'].read_text()[-3000:]}")
            for reply in app.control.ping(timeout=1.0) or []:
                for node in reply:
                    for compute, w in workers.items():
                        if node.startswith(w["queue"] + "@"):
                            nodes[compute] = node
        if len(nodes) < 2:
            pytest.fail("celery workers did not answer a ping within 60 s: "
                        + " | ".join(w["log"].read_text()[-1500:] for w in workers.values()))
        for compute, node in nodes.items():
            workers[compute]["node"] = node
        yield {"instance": instance, "workers": workers, "prefix": prefix}
    finally:
        instance.dispose()
        for w in workers.values():
            _stop(w["proc"])
        with Connection(BROKER) as conn:
            channel = conn.channel()
            for w in workers.values():
                try:
                    channel.queue_delete(w["queue"])
                except Exception:  # noqa: BLE001 - never declared (worker failed to start)
                    channel = conn.channel()


def _process_tree(pid: int) -> set[int]:
    proc = psutil.Process(pid)
    return {pid} | {c.pid for c in proc.children(recursive=True)}


@pytest.mark.timeout(150)
# dagster-celery registers its `execute_plan` task once per submitted step; celery warns, harmless
@pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered")
def test_celery_routes_gpu_and_cpu_ops_to_their_queue_workers(celery_workers, tmp_path):
    workers = celery_workers["workers"]
    trees = {compute: _process_tree(w["proc"].pid) for compute, w in workers.items()}
    out = tmp_path / "records"
    out.mkdir()
    instance = celery_workers["instance"]
    run_config = {"ops": {name: {"config": {"out_dir": str(out)}} for name in ("gpu_step", "cpu_step")}}
    with execute_job(reconstructable(celery_toy_job), instance=instance, run_config=run_config) as result:
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        run_id = result.run_id

    recs = {c: json.loads((out / f"{c}_step.json").read_text()) for c in ("gpu", "cpu")}
    for compute in ("gpu", "cpu"):
        other = "cpu" if compute == "gpu" else "gpu"
        rec = recs[compute]
        assert rec["tags"]["dagster-celery/queue"] == workers[compute]["queue"]
        # the op ran inside the worker that consumes its queue, not the other one
        assert rec["pid"] in trees[compute], (compute, rec, trees)
        assert rec["pid"] not in trees[other]
        assert rec["pid"] != os.getpid()

    # Dagster's own record of where each step ran: the celery node name of the worker
    ran_on = {}
    for rec in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        ev = rec.dagster_event
        md = ev.engine_event_data.metadata if ev and ev.engine_event_data else {}
        if "Celery worker" in md:
            ran_on[ev.step_key] = md["Celery worker"].value
    assert ran_on == {"gpu_step": workers["gpu"]["node"], "cpu_step": workers["cpu"]["node"]}


@pytest.fixture
def real_job_env(tmp_path, monkeypatch, bolt_server):
    """Environment of the real job's run and of the celery workers (taken before they start): one
    data folder, the test's Bolt server, and a GPU engine configured so that OCR is a `gpu` step."""
    for k, v in {"IDP_DATA_DIR": str(tmp_path / "data"), "IDP_EXPORT_DIR": str(tmp_path / "exports"),
                 "IDP_GRAPH_URI": bolt_server.uri, "IDP_GRAPH_USER": bolt_server.user,
                 "IDP_GRAPH_PASSWORD": bolt_server.password, "IDP_GRAPH_MANAGED": "0",
                 "IDP_GRAPH_DATABASE": bolt_server.database or "idp", "IDP_OCR_GPU_ENGINES": "surya",
                 "IDP_EXECUTOR": "celery"}.items():
        monkeypatch.setenv(k, v)


@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered")
def test_real_process_document_job_on_celery_cpu_and_gpu_workers(real_job_env, celery_workers, corpus):
    """The product's `process_document` job (every stage of one e-invoice) under the celery executor:
    OCR on the `gpu` queue's worker, every other stage on the `cpu` queue's (the executor's default
    queue), all on one instance; the document's assets are materialized."""
    workers = celery_workers["workers"]
    instance = celery_workers["instance"]
    doc = next(d for d in map(json.loads, (corpus / "manifest.jsonl").read_text().splitlines())
               if d["category"] == "einvoices")
    env = {**os.environ, "DAGSTER_HOME": instance.root_directory,
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    script = ("import json, sys\nfrom tests.fixtures.executor_jobs import run_process_document\n"
              "print(json.dumps(run_process_document(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", script, str(corpus / doc["file"])], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=540)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["success"], res["failures"]

    ran_on = {}
    for rec in instance.all_logs(res["run_id"], of_type=DagsterEventType.ENGINE_EVENT):
        ev = rec.dagster_event
        md = ev.engine_event_data.metadata if ev and ev.engine_event_data else {}
        if "Celery worker" in md:
            ran_on[ev.step_key] = md["Celery worker"].value
    assert ran_on["ocr_pages"] == workers["gpu"]["node"]
    others = {k: v for k, v in ran_on.items() if k != "ocr_pages"}
    assert len(others) >= 8 and set(others.values()) == {workers["cpu"]["node"]}, ran_on
    # every stage's asset materialized for this document's partition
    mats = instance.get_latest_materialization_events(
        [k for k in defs_asset_keys()])
    assert all(m is not None for m in mats.values()), [k for k, m in mats.items() if m is None]


def defs_asset_keys():
    from idp_assets.definitions import DOCUMENT_ASSETS

    return [k for a in DOCUMENT_ASSETS for k in a.keys]


# ---------------------------------------------------------------- k8s


def _render_ocr_step(gpu_engines: str | None) -> dict:
    """Import the real ocr_pages asset in a fresh interpreter (its compute class is fixed at
    import from IDP_OCR_GPU_ENGINES) and render its step Job as the k8s executor would."""
    env = {k: v for k, v in os.environ.items() if k != "IDP_OCR_GPU_ENGINES"}
    if gpu_engines:
        env["IDP_OCR_GPU_ENGINES"] = gpu_engines
    script = (
        "import json\n"
        "from idp_assets.ocr import ocr_pages\n"
        "from idp_assets.executors import render_k8s_step_job\n"
        "op = ocr_pages.op\n"
        "print(json.dumps({'pool': op.pool, 'tags': dict(op.tags),\n"
        "  'job': render_k8s_step_job(op.tags, step_key='ocr_pages', image='idp-platform:test')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_k8s_step_job_for_ocr_pages_gpu_and_cpu():
    gpu, cpu = _render_ocr_step("surya"), _render_ocr_step(None)

    assert gpu["pool"] == "gpu" and gpu["tags"]["idp/compute"] == "gpu"
    spec = gpu["job"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "idp-platform:test"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] == {"idp.compute": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert gpu["job"]["metadata"]["labels"]["dagster/op"] == "ocr_pages"

    assert cpu["pool"] == "cpu" and cpu["tags"]["idp/compute"] == "cpu"
    spec = cpu["job"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert "nvidia.com/gpu" not in json.dumps(cpu["job"])
    assert not spec.get("nodeSelector") and not spec.get("tolerations")
    assert container["resources"]["requests"]["cpu"] == "1"


# ---------------------------------------------------------------- pools + multiprocess


def _run_pooled_pair(instance: DagsterInstance, out: Path, limit: int, wait_s: float) -> dict[str, dict]:
    instance.event_log_storage.set_concurrency_slots("cpu", limit)
    out.mkdir()
    run_config = {
        "execution": {"config": {"max_concurrent": 2}},
        "ops": {n: {"config": {"out_dir": str(out), "wait_for_other_s": wait_s}} for n in ("pooled_a", "pooled_b")},
    }
    with execute_job(reconstructable(pooled_pair), instance=instance, run_config=run_config) as result:
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    return {n: json.loads((out / f"{n}.json").read_text()) for n in ("pooled_a", "pooled_b")}


def _overlap(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


@pytest.mark.timeout(150)
def test_multiprocess_executor_honours_pool_limit(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the instance config `make run` uses
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # as `make run` sets it (the storage's base_dir)
    instance = DagsterInstance.local_temp(str(home))
    try:
        # limit 1: each step waits up to 6 s for the other to start; the pool must keep it out
        a, b = _run_pooled_pair(instance, tmp_path / "limit1", limit=1, wait_s=6).values()
        assert a["pid"] != b["pid"]  # separate step processes
        assert not a["saw_other_running"] and not b["saw_other_running"]
        assert not _overlap(a, b), (a, b)

        # control, same job and instance with limit 2: the steps do run side by side
        a, b = _run_pooled_pair(instance, tmp_path / "limit2", limit=2, wait_s=60).values()
        assert a["saw_other_running"] or b["saw_other_running"]
        assert _overlap(a, b), (a, b)
    finally:
        instance.dispose()
