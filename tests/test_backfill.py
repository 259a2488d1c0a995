"""Scheduled backfills: code versions, failed / missing / stale partition selection, the re-runs,
the schedule and sensor run requests, `idp backfill`.

Real components: a persistent Dagster instance (SQLite) in a temp folder, the document assets
run in-process on corpus e-invoices (born-digital: text layer, no image OCR), the ArcadeDB Bolt
server (fixture), Chroma PersistentClient, the local document store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import date, timedelta

import pytest
from click.testing import CliRunner
from dagster import (
    AssetKey, AssetRecordsFilter, DagsterInvariantViolationError, Definitions, build_schedule_context, build_sensor_context,
    materialize,
)
from dagster._core.definitions.observe import observe

from idp_assets import definitions, versions
from idp_assets.backfill import (
    BackfillCandidate, backfill_run_requests, document_asset_keys, find_backfill_partitions,
    run_candidates,
)
from idp_assets.cli import main as cli_main
from idp_assets.common import DOCUMENT_BACKFILL_POLICY
from idp_assets.definitions import ALL_ASSETS, DOCUMENT_ASSETS, process_document_job
from idp_assets.runner import DocumentRunner
from tests.fixtures.documents import embedded_world, process_good_and_garbage
from idp_assets.settings import build_resources
from idp_assets.suppliers import supplier_master_asset
from resources.llm import LlmRouter
from resources.ocr.registry import get_engine
from resources.ocr.router import OcrRouter
from sensors.backfill import BackfillSettings, make_backfill_schedule, make_backfill_sensor
from sensors.common import PROCESS_JOB_NAME

EINVOICES = ["einvoice-zugferd-invoice.pdf", "einvoice-mustangbeispiel20221026.pdf"]
PENDING = "einvoice-zugferd-1p0-basic-einfach.pdf"


# -- versions.py ------------------------------------------------------------------------------
def test_short_hash_and_code_version():
    assert versions.short_hash({"a": 1, "b": [1, 2]}) == versions.short_hash({"b": [1, 2], "a": 1})
    assert versions.short_hash({"a": 1}) != versions.short_hash({"a": 2})
    assert versions.code_version("3") == "3"  # no configuration: the revision as it is
    v1, v2 = versions.code_version("3", {"x": 1}), versions.code_version("3", {"x": 2})
    assert v1.startswith("3+") and v2.startswith("3+") and v1 != v2


def _model_dir(root, header=b"HEADER", config='{"model_type": "got_ocr2"}'):
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(config)
    (root / "model.safetensors").write_bytes(header + b"\0" * 300_000 + b"TAIL")
    (root / "README.md").write_text("not part of the fingerprint")
    return root


def test_weights_fingerprint(tmp_path):
    assert versions.weights_fingerprint(None) == "none"
    assert versions.weights_fingerprint(tmp_path / "nope") == "missing"
    a = _model_dir(tmp_path / "a")
    fp = versions.weights_fingerprint(a)
    # same files elsewhere, newer mtimes, other non-weight files: same fingerprint
    b = tmp_path / "b"
    shutil.copytree(a, b)
    os.utime(b / "model.safetensors", (1, 1))
    (b / "README.md").write_text("changed")
    assert versions.weights_fingerprint(b) == fp
    # another header, another tail, another config, another weight file: another fingerprint
    assert versions.weights_fingerprint(_model_dir(tmp_path / "c", header=b"HEADEr")) != fp
    d = _model_dir(tmp_path / "d")
    (d / "model.safetensors").write_bytes(b"HEADER" + b"\0" * 300_000 + b"TAIl")
    assert versions.weights_fingerprint(d) != fp
    assert versions.weights_fingerprint(_model_dir(tmp_path / "e", config='{"model_type": "x"}')) != fp
    f = _model_dir(tmp_path / "f")
    (f / "extra.bin").write_bytes(b"1")
    assert versions.weights_fingerprint(f) != fp


def test_files_fingerprint_notices_missing_and_changed_files(tmp_path):
    p = tmp_path / "deu.traineddata"
    p.write_bytes(b"one")
    fp = versions.files_fingerprint([p])
    p.write_bytes(b"two")
    assert versions.files_fingerprint([p]) != fp
    assert versions.files_fingerprint([tmp_path / "x.traineddata"]) != versions.files_fingerprint([p])


def test_engine_versions_cover_library_and_model():
    tess = get_engine("tesseract", lang="deu+eng").version
    assert tess.startswith("tesseract/") and "libtesseract=" in tess and "traineddata=" in tess
    assert get_engine("tesseract", lang="deu").version != tess  # other traineddata, other options
    assert "rapidocr=" in get_engine("rapidocr").version


def test_ocr_code_version_follows_router_engines_and_weights(tmp_path):
    base = versions.ocr_code_version(OcrRouter())
    assert base.startswith(versions.OCR_REVISION + "+")
    assert versions.ocr_code_version(OcrRouter()) == base  # deterministic
    assert versions.ocr_code_version(OcrRouter(languages="deu")) != base
    assert versions.ocr_code_version(OcrRouter(min_confidence=0.7)) != base
    engines = versions.engine_versions(OcrRouter())
    assert set(engines) >= {"text_layer", "tesseract", "rapidocr", "docling"}
    assert versions.ocr_code_version(OcrRouter(), {**engines, "rapidocr": "rapidocr/2"}) != base
    # a GPU engine: its weights folder is part of the version (no model is loaded)
    model = _model_dir(tmp_path / "got")
    gpu = OcrRouter(gpu_engines=["got_ocr2"], engine_settings={"got_ocr2": {"model_path": str(model)}})
    v_gpu = versions.ocr_code_version(gpu)
    assert v_gpu != base
    (model / "model.safetensors").write_bytes(b"RETRAINED" + b"\0" * 300_000)
    assert versions.ocr_code_version(gpu) != v_gpu


def test_configured_ocr_version_comes_from_the_environment():
    base = versions.configured_ocr_code_version(env={})
    assert base == versions.ocr_code_version(build_resources(env={})["ocr_router"])
    assert versions.configured_ocr_code_version(env={"IDP_OCR_LANGUAGES": "deu"}) != base
    assert versions.configured_ocr_code_version(
        env={"IDP_OCR_ENGINE_SETTINGS": json.dumps({"tesseract": {"psm": 6}})}) != base


def test_fields_code_version_follows_llm_config(tmp_path):
    assert versions.fields_code_version(LlmRouter()) == versions.FIELDS_REVISION
    cfg = tmp_path / "llm.yaml"
    cfg.write_text("model_list:\n- model_name: idp-fields\n  litellm_params: {model: ollama/a}\n")
    on = versions.fields_code_version(LlmRouter(enabled=True, config_path=str(cfg)))
    assert on.startswith(versions.FIELDS_REVISION + "+")
    cfg.write_text("model_list:\n- model_name: idp-fields\n  litellm_params: {model: ollama/b}\n")
    assert versions.fields_code_version(LlmRouter(enabled=True, config_path=str(cfg))) != on
    assert versions.configured_fields_code_version(env={"IDP_LLM_CONFIG": str(cfg)}) == \
        versions.fields_code_version(LlmRouter(enabled=True, config_path=str(cfg)))


def test_document_assets_carry_versions_and_policy():
    by_key = {a.key.to_user_string(): a for a in DOCUMENT_ASSETS}
    assert by_key["ocr_pages"].code_versions_by_key[AssetKey("ocr_pages")] == versions.configured_ocr_code_version()
    assert by_key["extracted_fields"].code_versions_by_key[AssetKey("extracted_fields")] == \
        versions.configured_fields_code_version()
    for name in ("source_documents", "raw_pages", "ocr_pages", "extracted_fields", "document_exports"):
        assert by_key[name].backfill_policy == DOCUMENT_BACKFILL_POLICY


def test_backfill_settings_from_env():
    s = BackfillSettings.from_env({})
    assert s.cron == "0 2 * * *" and s.reasons == ("failed", "missing", "stale") and s.max_runs == 100
    assert s.include_quarantined is False
    assert BackfillSettings.from_env({"IDP_BACKFILL_INCLUDE_QUARANTINED": "true"}).include_quarantined is True
    s = BackfillSettings.from_env({"IDP_BACKFILL_CRON": "30 3 * * 1-5", "IDP_BACKFILL_REASONS": "stale, failed",
                                   "IDP_BACKFILL_MAX_RUNS": "5"})
    assert (s.cron, s.reasons, s.max_runs) == ("30 3 * * 1-5", ("stale", "failed"), 5)
    assert make_backfill_schedule(s, name="s").cron_schedule == "30 3 * * 1-5"
    with pytest.raises(ValueError):
        BackfillSettings.from_env({"IDP_BACKFILL_REASONS": "stale,typo"})


# -- partitions on a real instance ------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory, bolt_server, corpus):
    """2 processed e-invoices, one that failed (garbage), one registered but never run."""
    tmp = tmp_path_factory.mktemp("backfill")
    with embedded_world(tmp, bolt_server) as (data, resources, instance):  # the instance `idp backfill --data-dir` opens
        # as a deployment does (UI / schedule): the supplier master's version is observed before documents
        # are matched against it - else the first match records no master version and is stale at once
        assert observe([supplier_master_asset], instance=instance, resources=resources).success
        runner = DocumentRunner(resources, instance)
        ok, bad = process_good_and_garbage(runner, [corpus / "einvoices" / n for n in EINVOICES], tmp)
        pending, _ = runner.register(corpus / "einvoices" / PENDING)
        yield {"instance": instance, "resources": resources, "ok": ok, "bad": bad, "pending": pending,
               "data": data}


def _graph(ocr_version: str | None = None):
    """The asset graph as a deployment with another OCR configuration (code version) would have it."""
    assets = ALL_ASSETS
    if ocr_version is not None:
        assets = [a.map_asset_specs(lambda s: s.replace_attributes(code_version=ocr_version))
                  if a.key == AssetKey("ocr_pages") else a for a in ALL_ASSETS]
    return Definitions(assets=assets, jobs=[process_document_job], resources=build_resources(env={})), assets


OTHER_OCR = versions.configured_ocr_code_version(env={"IDP_OCR_LANGUAGES": "deu"})
KEYS = [k.to_user_string() for k in document_asset_keys(_graph()[0].resolve_asset_graph())]  # lineage order
# ocr_pages and everything that reads it (directly or not); page_thumbnails reads raw_pages only
AFTER_OCR = [k for k in KEYS if k in {"ocr_pages", "normalized_tables", "extracted_fields", "supplier_matches",
                                      "embeddings", "graph_nodes", "document_exports"}]


def test_nothing_to_do_for_processed_documents_failed_and_missing_found(world):
    defs, _ = _graph()
    found = {c.partition: c for c in find_backfill_partitions(world["instance"], defs.resolve_asset_graph())}
    assert set(found) == {world["bad"], world["pending"]}, [(c.partition[:8], c.reason, c.details) for c in found.values()]
    bad = found[world["bad"]]
    assert bad.reason == "failed" and bad.assets == KEYS[1:]  # source_documents did materialize in that run
    assert any("failed (quarantined: corrupt_pdf)" in d for d in bad.details)
    pending = found[world["pending"]]
    assert pending.reason == "missing" and pending.assets == KEYS and pending.last_run_id is None
    # one reason at a time
    only_failed = find_backfill_partitions(world["instance"], defs.resolve_asset_graph(), reasons=["failed"])
    assert [c.partition for c in only_failed] == [world["bad"]]
    only_missing = find_backfill_partitions(world["instance"], defs.resolve_asset_graph(), reasons=["missing"])
    assert {c.partition for c in only_missing} == {world["bad"], world["pending"]}
    assert not find_backfill_partitions(world["instance"], defs.resolve_asset_graph(), reasons=["stale"])


def test_since_filters_on_the_latest_run(world):
    g = _graph()[0].resolve_asset_graph()
    today = date.today()
    assert {c.partition for c in find_backfill_partitions(world["instance"], g, since=today)} == {world["bad"]}
    assert not find_backfill_partitions(world["instance"], g, since=today + timedelta(days=1))


def test_new_ocr_code_version_makes_exactly_the_processed_partitions_stale(world):
    assert OTHER_OCR != versions.configured_ocr_code_version()
    g = _graph(OTHER_OCR)[0].resolve_asset_graph()
    stale = find_backfill_partitions(world["instance"], g, reasons=["stale"])
    assert sorted(c.partition for c in stale) == sorted(world["ok"])
    for c in stale:
        assert c.reason == "stale" and c.assets == AFTER_OCR
        assert any(d.startswith("ocr_pages: ") and "code version" in d for d in c.details)
    # all reasons together: the failed and missing ones keep their reasons
    every = {c.partition: c.reason for c in find_backfill_partitions(world["instance"], g)}
    assert every == {**{p: "stale" for p in world["ok"]}, world["bad"]: "failed", world["pending"]: "missing"}


def test_schedule_and_sensor_request_one_run_per_partition(world):
    defs, _ = _graph(OTHER_OCR)
    repo = defs.get_repository_def()
    sched = make_backfill_schedule(BackfillSettings(reasons=("stale",)), name="s")
    with build_schedule_context(instance=world["instance"], repository_def=repo) as ctx:
        reqs = sched.evaluate_tick(ctx).run_requests
    assert sorted(r.partition_key for r in reqs) == sorted(world["ok"])
    for r in reqs:
        assert r.job_name == PROCESS_JOB_NAME and r.tags["idp/backfill_reason"] == "stale"
        assert [k.to_user_string() for k in r.asset_selection] == AFTER_OCR
    assert len({r.run_key for r in reqs}) == len(world["ok"])

    sens = make_backfill_sensor(BackfillSettings(reasons=("failed", "missing"), max_runs=1, include_quarantined=True),
                                name="b")
    reqs = sens(build_sensor_context(instance=world["instance"], repository_def=repo))
    reqs = list(reqs) if isinstance(reqs, list) else reqs
    assert len(reqs) == 1 and reqs[0].partition_key in {world["bad"], world["pending"]}  # capped at max_runs
    # by default the quarantined (garbage) document is not re-run every night: it would fail the same way
    sens_default = make_backfill_sensor(BackfillSettings(reasons=("failed", "missing")), name="d")
    reqs = sens_default(build_sensor_context(instance=world["instance"], repository_def=repo))
    assert {r.partition_key for r in reqs} == {world["pending"]}
    sens_all = make_backfill_sensor(BackfillSettings(reasons=("failed", "missing"), include_quarantined=True), name="c")
    reqs = sens_all(build_sensor_context(instance=world["instance"], repository_def=repo))
    assert {r.partition_key: r.tags["idp/backfill_reason"] for r in reqs} == {world["bad"]: "failed",
                                                                             world["pending"]: "missing"}
    # outside a code location (no repository): the graph the sensor was built with is used ...
    sens_local = make_backfill_sensor(BackfillSettings(reasons=("failed", "missing"), include_quarantined=True), name="l",
                                      asset_graph=definitions.defs.resolve_asset_graph)
    reqs = sens_local(build_sensor_context(instance=world["instance"]))
    assert {r.partition_key for r in reqs} == {world["bad"], world["pending"]}
    # ... the definitions' own sensor is built with the definitions' graph; without one, a clear error
    reqs = definitions.backfill_sensor(build_sensor_context(instance=world["instance"]))
    assert world["pending"] in {r.partition_key for r in reqs}
    with pytest.raises(DagsterInvariantViolationError, match="outside a code location"):
        sens_all(build_sensor_context(instance=world["instance"]))
    # the current definitions: nothing stale -> the tick skips
    current = _graph()[0].get_repository_def()
    with build_schedule_context(instance=world["instance"], repository_def=current) as ctx:
        res = sched.evaluate_tick(ctx)
    assert not res.run_requests and res.skip_message


def test_multi_partition_runs_break_the_assets_so_the_policy_is_one_per_run(world):
    """Why DOCUMENT_BACKFILL_POLICY is multi_run(1): a run over a partition range fails on these assets."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    assert DOCUMENT_BACKFILL_POLICY.max_partitions_per_run == 1
    a, b = world["ok"][:2]
    res = materialize([DOCUMENT_ASSETS[0]], instance=world["instance"], resources=world["resources"],
                      tags={ASSET_PARTITION_RANGE_START_TAG: a, ASSET_PARTITION_RANGE_END_TAG: b}, raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    assert "partition_key_range" in failure.step_failure_data.error.message


def test_cli_dry_run_lists_partitions_with_reason(world):
    res = CliRunner().invoke(cli_main,
                             ["backfill", "--missing", "--failed", "--dry-run", "--data-dir", str(world["data"])],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    lines = {ln.split()[0]: ln.split()[1] for ln in res.stdout.splitlines() if ln.strip()}
    assert lines == {world["bad"]: "failed", world["pending"]: "missing"}
    res = CliRunner().invoke(cli_main, ["backfill", "--dry-run"])
    assert res.exit_code != 0 and "choose --stale" in res.output


def test_rerun_of_stale_partitions_touches_only_them(world):
    """Last (changes the instance): re-run the stale partitions under the new OCR version."""
    inst = world["instance"]
    defs, assets = _graph(OTHER_OCR)
    g = defs.resolve_asset_graph()
    stale = find_backfill_partitions(inst, g, reasons=["stale"])
    runs_before = len(inst.get_run_records())
    results = run_candidates(stale, assets, world["resources"], inst)
    assert all(ok for _, ok, _ in results), results
    assert len(inst.get_run_records()) == runs_before + len(world["ok"])  # one run per stale partition, none for the others
    for pk in world["ok"]:
        ev = inst.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("ocr_pages"), asset_partitions=[pk]), limit=5)
        assert ev.records[0].asset_materialization.tags["dagster/code_version"] == OTHER_OCR
        srcs = inst.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("source_documents"), asset_partitions=[pk]),
            limit=5).records
        assert len(srcs) == 1  # upstream of the change: not re-run
    # nothing stale any more; failed and missing untouched
    assert not find_backfill_partitions(inst, g, reasons=["stale"])
    left = {c.partition: c.reason for c in find_backfill_partitions(inst, g)}
    assert left == {world["bad"]: "failed", world["pending"]: "missing"}
    # and the re-runs do not come back as missing/failed with the old definitions either: only stale
    old = {c.reason for c in find_backfill_partitions(inst, _graph()[0].resolve_asset_graph(), reasons=["stale"])}
    assert old == {"stale"}


def test_failed_and_missing_partitions_are_rerun(world, corpus):
    """The missing partition runs fine once its turn comes; the garbage one fails again and stays failed."""
    inst = world["instance"]
    defs, assets = _graph(OTHER_OCR)
    g = defs.resolve_asset_graph()
    todo = find_backfill_partitions(inst, g, reasons=["failed", "missing"])
    results = {c.partition: (ok, err) for c, ok, err in run_candidates(todo, assets, world["resources"], inst)}
    assert results[world["pending"]][0] is True
    assert results[world["bad"]][0] is False and "corrupt_pdf" in results[world["bad"]][1]
    after = {c.partition: c for c in find_backfill_partitions(inst, g)}
    assert set(after) == {world["bad"]} and after[world["bad"]].reason == "failed"
    assert after[world["bad"]].last_run_id != todo[[c.partition for c in todo].index(world["bad"])].last_run_id
    assert hashlib.sha256((corpus / "einvoices" / PENDING).read_bytes()).hexdigest() == world["pending"]


def test_run_requests_carry_selection_and_changing_run_keys():
    c = BackfillCandidate(partition="a" * 64, reason="stale", assets=["ocr_pages", "document_exports"],
                          details=["ocr_pages: has a new code version"], last_run_id="r1")
    (req,) = backfill_run_requests([c], PROCESS_JOB_NAME)
    assert req.partition_key == "a" * 64 and req.job_name == PROCESS_JOB_NAME
    assert [k.to_user_string() for k in req.asset_selection] == ["ocr_pages", "document_exports"]
    assert req.run_key == c.run_key
    assert c.model_copy(update={"last_run_id": "r2"}).run_key != c.run_key  # after another run: a new key
    assert len(backfill_run_requests([c, c.model_copy(update={"partition": "b" * 64})], PROCESS_JOB_NAME, limit=1)) == 1


def test_document_asset_keys_are_in_lineage_order():
    keys = [k.to_user_string() for k in document_asset_keys(_graph()[0].resolve_asset_graph())]
    assert set(keys) == {a.key.to_user_string() for a in DOCUMENT_ASSETS}
    assert keys.index("source_documents") < keys.index("raw_pages") < keys.index("ocr_pages") < keys.index("document_exports")


def test_new_supplier_master_version_makes_matches_stale(world):
    """Data-version staleness, not only code: another master version re-runs the matches and what follows."""
    from dagster import AssetObservation
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    inst = world["instance"]
    inst.report_runless_asset_event(AssetObservation(asset_key=AssetKey("supplier_master"),
                                                     tags={DATA_VERSION_TAG: "another-master-version"}))
    g = _graph(OTHER_OCR)[0].resolve_asset_graph()
    stale = {c.partition: c for c in find_backfill_partitions(inst, g, reasons=["stale"])}
    assert set(stale) == {*world["ok"], world["pending"]}  # every partition that has a supplier match
    for c in stale.values():
        assert c.assets[0] == "supplier_matches" and "ocr_pages" not in c.assets
        assert any(d.startswith("supplier_matches: ") for d in c.details)


def test_partitions_with_a_run_in_flight_are_left_alone(world):
    """Last: a queued/started run for a partition means no second one is requested."""
    from dagster import DagsterRunStatus
    from dagster._core.storage.dagster_run import DagsterRun

    inst = world["instance"]
    g = _graph(OTHER_OCR)[0].resolve_asset_graph()
    assert world["bad"] in {c.partition for c in find_backfill_partitions(inst, g, reasons=["failed"])}
    inst.add_run(DagsterRun(job_name=PROCESS_JOB_NAME, run_id="f" * 32, status=DagsterRunStatus.STARTED,
                            tags={"dagster/partition": world["bad"]}))
    assert world["bad"] not in {c.partition for c in find_backfill_partitions(inst, g)}
