"""Every stage on a time budget (idp_assets.budget), and a batch that stops cleanly on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from dagster import DagsterInstance, Output, asset, materialize

from idp_assets.budget import StageTimeout, budgeted, deadline, stage_budget
from idp_assets.common import failure_reason
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME, documents_partitions


def _spin():
    n = 0
    while True:  # pure Python, never returns
        n += 1


def test_deadline_cuts_off_a_pure_python_loop():
    t0 = time.monotonic()
    with pytest.raises(StageTimeout) as err:
        with deadline(0.5, "spin"):
            _spin()
    assert err.value.stage == "spin" and time.monotonic() - t0 < 5


def test_deadline_cuts_off_catastrophic_regex_backtracking():
    t0 = time.monotonic()
    with pytest.raises(StageTimeout):
        with deadline(0.5, "regex"):
            re.match(r"(a+)+$", "a" * 60 + "b")  # 2^60 steps
    assert time.monotonic() - t0 < 5


def test_stage_timeout_is_not_swallowed_by_except_exception():
    def careless():
        try:
            _spin()
        except Exception:  # noqa: BLE001 - what stage code often does
            return "swallowed"

    with pytest.raises(StageTimeout):
        with deadline(0.3, "careless"):
            careless()


def test_deadline_in_a_worker_thread():
    box = {}

    def work():
        try:
            with deadline(0.5, "threaded"):
                _spin()
        except StageTimeout as exc:
            box["stage"] = exc.stage

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive() and box == {"stage": "threaded"}


def test_a_finished_block_leaves_no_timer_behind():
    with deadline(0.2, "quick"):
        pass
    time.sleep(0.4)  # a late alarm would raise here
    assert signal.getitimer(signal.ITIMER_REAL)[0] == 0


def test_budget_configuration(monkeypatch):
    monkeypatch.delenv("IDP_STAGE_TIMEOUT_SCALE", raising=False)
    assert stage_budget("extracted_fields", pages=2) == 190.0  # 180 + 5 per page
    monkeypatch.setenv("IDP_STAGE_TIMEOUT_EXTRACTED_FIELDS", "30+1")
    assert stage_budget("extracted_fields", pages=10) == 40.0
    monkeypatch.setenv("IDP_STAGE_TIMEOUT_SCALE", "2")
    assert stage_budget("extracted_fields", pages=10) == 80.0
    monkeypatch.setenv("IDP_STAGE_TIMEOUT_SCALE", "0")
    assert stage_budget("extracted_fields") is None


def test_stuck_asset_fails_with_stage_timeout_and_the_stage_named(monkeypatch, tmp_path):
    monkeypatch.setenv("IDP_STAGE_TIMEOUT_STUCK_STAGE", "1")

    @asset(partitions_def=documents_partitions)
    @budgeted("stuck_stage")
    def stuck_stage(context):
        yield Output(re.match(r"(x+x+)+y", "x" * 5000) is not None)

    @asset(partitions_def=documents_partitions)
    @budgeted("quick_stage")
    def quick_stage(context):
        return 1

    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, ["a" * 64])
    t0 = time.monotonic()
    result = materialize([stuck_stage, quick_stage], partition_key="a" * 64, instance=instance, raise_on_error=False)
    assert time.monotonic() - t0 < 60
    assert not result.success
    reason, message, _ = failure_reason(result)
    assert reason == "stage_timeout" and "stuck_stage" in message and "1 s" in message
    assert result.output_for_node("quick_stage") == 1  # the other stage was not affected


_STOP_SCRIPT = textwrap.dedent("""
    import hashlib, sys, time
    from idp_assets.runner import StopSignals
    marker = sys.argv[1]
    with StopSignals(grace_s=1.0, on_timeout=lambda: open(marker, "w").write("abandoned")):
        print("ready", flush=True)
        hashlib.pbkdf2_hmac("sha256", b"x", b"y", 10**9)  # native code: no Python signal handler runs
    print("not reached", flush=True)
""")


def test_stop_signal_exits_even_when_stuck_in_native_code(tmp_path):
    marker = tmp_path / "abandoned"
    proc = subprocess.Popen([sys.executable, "-c", _STOP_SCRIPT, str(marker)], stdout=subprocess.PIPE,
                            cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(30)
    assert rc == 128 + signal.SIGTERM and time.monotonic() - t0 < 10
    assert marker.read_text() == "abandoned"  # what was being done is recorded before the exit
