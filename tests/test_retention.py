"""Bounded live partitions: finished documents retire (record first, then the partition goes),
their lineage stays answerable, the same bytes stay known, and a document comes back on demand.

Real components: a persistent Dagster instance (SQLite) in a temp folder, the document assets run
in-process on corpus e-invoices (born-digital), the ArcadeDB Bolt server (fixture), the local
document store, the real inbox sensor and the retention sensor.

The tests on the real instance share one module fixture and run in file order, each starting from
what the one before left (retire two, look them up, restore them, retire by the sensor).
"""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner
from dagster import AssetKey, Definitions, SkipReason, build_sensor_context

from idp_assets import versions
from idp_assets.audit import audit_document, resolve_document_id
from idp_assets.backfill import document_asset_keys
from idp_assets.cli import main as cli_main
from idp_assets.definitions import ALL_ASSETS, defs, process_document_job
from idp_assets.logic.retention import PartitionState, choose_retirements, retirement_target, stale_assets
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
from idp_assets.retention import (
    get_retired, is_registered, is_retired, iter_retired, partition_states, restore, retire, run_retention,
    stale_retired,
)
from idp_assets.runner import DocumentRunner
from tests.fixtures.documents import embedded_world, process_good_and_garbage
from idp_assets.settings import build_resources
from sensors.inbox import InboxSettings, make_inbox_sensor
from sensors.retention import RetentionSettings, make_retention_sensor

EINVOICES = ["einvoice-zugferd-invoice.pdf", "einvoice-mustangbeispiel20221026.pdf",
             "einvoice-zugferd-1p0-basic-einfach.pdf"]


# -- the policy (pure) --------------------------------------------------------------------------
def _s(doc, t, finished=True):
    return PartitionState(document_id=doc, last_activity=t, finished=finished)


def test_nothing_retires_at_or_below_the_bound():
    states = [_s(f"d{i}", i) for i in range(10)]
    assert choose_retirements(states, max_live=10) == []
    assert choose_retirements(states, max_live=50) == []


def test_oldest_finished_retire_down_to_the_low_water_mark():
    states = [_s(f"d{i}", float(i)) for i in range(12)]
    # 12 live, bound 10, low water 0.8 -> 8 stay: the 4 oldest go
    assert choose_retirements(states, max_live=10, low_water=0.8) == ["d0", "d1", "d2", "d3"]
    assert retirement_target(10, 0.8) == 8


def test_unfinished_documents_never_retire_even_when_short():
    states = [_s("old-failed", 0.0, finished=False), _s("old-ok", 1.0), _s("new-running", 2.0, finished=False),
              _s("new-ok", 3.0)]
    # bound 2, target 1: three should go, but only the two finished ones may
    assert choose_retirements(states, max_live=2, low_water=0.5) == ["old-ok", "new-ok"]
    assert choose_retirements([_s("x", 0.0, finished=False)] * 3, max_live=1) == []


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        retirement_target(0)
    with pytest.raises(ValueError):
        retirement_target(10, 1.5)


def test_stale_assets_compares_recorded_with_current_versions():
    assert stale_assets({"a": "1", "b": "2"}, {"a": "1", "b": "2"}) == []
    assert stale_assets({"a": "1", "b": "2"}, {"a": "1", "b": "3"}) == ["b"]
    assert stale_assets({"a": "1"}, {"a": "1", "new_stage": "1"}) == ["new_stage"]  # added after retirement


# -- on a real instance -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory, bolt_server, corpus):
    """3 processed e-invoices (oldest first) and one that failed (garbage)."""
    tmp = tmp_path_factory.mktemp("retention")
    with embedded_world(tmp, bolt_server) as (data, resources, instance):
        runner = DocumentRunner(resources, instance)
        ok, bad = process_good_and_garbage(runner, [corpus / "einvoices" / n for n in EINVOICES], tmp)
        yield {"instance": instance, "resources": resources, "runner": runner, "store": runner.store, "ok": ok,
               "bad": bad, "data": data, "tmp": tmp}


def _live(instance):
    return set(instance.get_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME))


def test_states_tell_finished_from_failed(world):
    keys = document_asset_keys(defs.resolve_asset_graph())
    states = {s.document_id: s for s in partition_states(world["instance"], keys, sorted(_live(world["instance"])))}
    assert {d for d, s in states.items() if s.finished} == set(world["ok"])
    assert not states[world["bad"]].finished
    acts = [states[d].last_activity for d in world["ok"]]
    assert acts == sorted(acts) and acts[0] > 0


def test_retirement_keeps_lineage_and_the_document_known(world, corpus):
    inst, store, graph = world["instance"], world["store"], defs.resolve_asset_graph()
    before = {d: audit_document(inst, d)["materializations"] for d in world["ok"]}
    # 4 live, bound 3 -> down to int(3 * 0.67) = 2: the two oldest finished documents go, the failed one stays
    dry = run_retention(inst, store, graph, max_live=3, low_water=0.67, dry_run=True)
    assert dry.retired == world["ok"][:2] and _live(inst) == {*world["ok"], world["bad"]}
    assert not any(is_retired(store, d) for d in world["ok"])
    report = run_retention(inst, store, graph, max_live=3, low_water=0.67)
    assert report.retired == world["ok"][:2] and report.live_before == 4 and report.live_after == 2
    assert report.finished == 3 and report.over_bound_by == 0
    assert _live(inst) == {world["ok"][2], world["bad"]}
    # a second pass below the bound does nothing
    assert run_retention(inst, store, graph, max_live=3).retired == []
    # asked directly, retire() re-reads the latest run: a document whose run failed stays live
    assert retire(inst, store, [world["bad"]], document_asset_keys(graph)) == []
    assert world["bad"] in _live(inst) and not is_retired(store, world["bad"])

    for d in world["ok"][:2]:
        rec = get_retired(store, d)
        assert rec is not None and rec.document_id == d and rec.last_run_id
        # the code version of every document asset's latest materialization is recorded
        assert set(rec.code_versions) == {k.to_user_string() for k in document_asset_keys(graph)}
        assert rec.code_versions["ocr_pages"] == versions.configured_ocr_code_version()
        # lineage from the event log: unchanged by the retirement
        audit = audit_document(inst, d, store)
        assert audit["materializations"] == before[d] and len(audit["materializations"]) >= 9
        assert audit["retired"]["document_id"] == d
        # found by a prefix although it is no partition any more; still registered (no second run)
        assert resolve_document_id(inst, d[:10], store) == d
        assert is_registered(inst, store, d)
    assert {r.document_id for r in iter_retired(store)} == set(world["ok"][:2])


def test_the_inbox_sensor_treats_retired_bytes_as_known(world, corpus):
    inbox = world["tmp"] / "inbox"
    inbox.mkdir()
    shutil.copy(corpus / "einvoices" / EINVOICES[0], inbox / "again-under-another-name.pdf")
    sensor = make_inbox_sensor(name="retention_inbox_probe")
    ctx = build_sensor_context(instance=world["instance"], resources={
        "inbox_settings": InboxSettings(path=str(inbox), min_age_seconds=0),
        "document_store": world["resources"]["document_store"]})
    result = sensor(ctx)
    assert not result.run_requests and not result.dynamic_partitions_requests
    assert world["ok"][0] not in _live(world["instance"])


def test_stale_detection_reads_the_retirement_records(world):
    assert stale_retired(world["store"], defs.resolve_asset_graph()) == []
    other = versions.configured_ocr_code_version(env={"IDP_OCR_LANGUAGES": "deu"})
    assets = [a.map_asset_specs(lambda s: s.replace_attributes(code_version=other))
              if a.key == AssetKey("ocr_pages") else a for a in ALL_ASSETS]
    graph = Definitions(assets=assets, jobs=[process_document_job],
                        resources=build_resources(env={})).resolve_asset_graph()
    stale = stale_retired(world["store"], graph)
    assert [(r.document_id, a) for r, a in stale] == sorted((d, ["ocr_pages"]) for d in world["ok"][:2])


def test_cli_status_audit_and_restore(world):
    inst, store, data = world["instance"], world["store"], str(world["data"])
    res = CliRunner().invoke(cli_main, ["partitions", "status", "--json", "--data-dir", data], catch_exceptions=False)
    assert res.exit_code == 0 and '"live": 2' in res.output and '"retired": 2' in res.output, res.output
    first = world["ok"][0]
    res = CliRunner().invoke(cli_main, ["audit", first[:12], "--data-dir", data], catch_exceptions=False)
    assert res.exit_code == 0 and f"document {first}" in res.output and "retired:" in res.output, res.output
    res = CliRunner().invoke(cli_main, ["partitions", "restore", first[:12], "--data-dir", data], catch_exceptions=False)
    assert res.exit_code == 0 and f"{first} restored" in res.output, res.output
    assert first in _live(inst) and not is_retired(store, first) and is_registered(inst, store, first)
    assert restore(inst, store, first) is False  # live already


def test_processing_retired_bytes_again_makes_them_live(world, corpus):
    second = world["ok"][1]
    assert is_retired(world["store"], second)
    o = world["runner"].process(corpus / "einvoices" / EINVOICES[1])
    assert o.status == "ok" and o.document_id == second
    assert second in _live(world["instance"]) and not is_retired(world["store"], second)


def test_retention_sensor_retires_past_its_bound(world):
    inst = world["instance"]
    assert len(_live(inst)) == 4
    sensor = make_retention_sensor(RetentionSettings(max_live=2, low_water=0.5), name="retention_probe",
                                   asset_graph=defs.resolve_asset_graph)
    ctx = build_sensor_context(instance=inst, resources={"document_store": world["resources"]["document_store"]})
    out = sensor(ctx)
    assert isinstance(out, SkipReason)
    # target 1, but the failed document may not go: 3 finished retire, 1 live, still within the bound
    assert _live(inst) == {world["bad"]}
    assert "retired 3 of 3 finished; 1 live after" in out.skip_message
