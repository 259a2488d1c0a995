"""One document's Dagster run in this process: what `idp process`, its worker processes and the API's
workers share (`DocumentRunner`, `materialize_document`, memory hand-back, environment defaults).

The batch around it (inputs, index, stopping, workers) is `idp_assets.runner`; worker processes
(`idp_assets.worker_pool`) import only this module.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from dagster import DagsterInstance, materialize

from idp_assets.common import failure_reason
from idp_assets.logic.export import failed_export
from idp_assets.logic.inputs import InputError, InputFile, classify, display_path, read_input
from idp_assets.logic.safety import Limits
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
from idp_assets.retention import restore
from resources.storage import original_key


@dataclass
class Outcome:
    path: Path
    document_id: str | None
    status: str
    error: str | None
    reason: str | None
    record: dict
    seconds: float
    skipped: bool = False

    @property
    def display(self) -> str:
        return display_path(self.path)


def max_input_bytes() -> int:
    """Largest input read into memory (IDP_MAX_FILE_BYTES; default the safety limit, 200 MB)."""
    return int(os.environ.get("IDP_MAX_FILE_BYTES") or Limits().max_bytes)


def _uri(path) -> str:
    return Path(os.path.abspath(os.fspath(path))).as_uri()


# a full garbage collection costs ~0.4 s with torch, docling and Dagster loaded: only after the
# process grew by this much since the last one (IDP_GC_GROWTH_MB)
GC_GROWTH_BYTES = int(float(os.environ.get("IDP_GC_GROWTH_MB", "256")) * 1024 * 1024)
_last_rss = [0]


def release_memory() -> None:
    """Give memory freed by the last document back to the OS (glibc keeps freed arenas otherwise):
    the batch's peak RSS is then that of its largest document, not the sum of its fragments.
    Cyclic garbage is collected first when the process grew by ``GC_GROWTH_BYTES`` since the last time."""
    process = psutil.Process()
    if process.memory_info().rss - _last_rss[0] > GC_GROWTH_BYTES:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
    _last_rss[0] = process.memory_info().rss


def _interrupted(result) -> bool:
    """Did the run fail because the batch was asked to stop (Dagster interrupted a step)?"""
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            src = getattr(ev.step_failure_data, "error_source", None)
            if src is not None and str(getattr(src, "value", src)).upper() == "INTERRUPT":
                return True
        if ev.event_type_value in ("RUN_CANCELED", "PIPELINE_CANCELED"):
            return True
    return False


def materialize_document(assets, resources: dict, instance: DagsterInstance, doc_id: str, tags: dict[str, str]):
    """One Dagster run of every document stage for a registered partition, failures kept in the result
    (what `idp process` and the API's workers run)."""
    return materialize(assets, partition_key=doc_id, instance=instance, resources=resources,
                       raise_on_error=False, tags=tags)


def run_document_assets(runner, doc_id: str, tags: dict[str, str]) -> tuple[bool, str, str | None]:
    """`materialize_document` with `runner`'s assets, resources and instance: (success, run id, failure
    reason or None) - what the API's workers and worker processes report for a queued partition."""
    result = materialize_document(runner.assets, runner.resources, runner.instance, doc_id, tags)
    return result.success, result.run_id, None if result.success else failure_reason(result)[0]


class DocumentRunner:
    def __init__(self, resources: dict, instance: DagsterInstance | None = None):
        from idp_assets.definitions import ALL_ASSETS

        self.assets = ALL_ASSETS
        self.resources = resources
        self.instance = instance or DagsterInstance.ephemeral()
        # used directly (outside a run): resolve EnvVar credentials the way a run would
        self.store = resources["document_store"].process_config_and_initialize()

    def register_bytes(self, data: bytes, uri: str, filename: str) -> str:
        doc_id = hashlib.sha256(data).hexdigest()
        # original bytes are kept before anything else happens
        self.store.put_original(doc_id, data)
        self.store.put_source_record(doc_id, {"uri": uri, "filename": filename})
        if not self.instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, doc_id):
            # a retired document processed again becomes a live partition again (its history stays)
            if not restore(self.instance, self.store, doc_id):
                self.instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, [doc_id])
        return doc_id

    def register(self, path: Path) -> tuple[str, bytes]:
        inp = classify(os.fspath(path), [os.path.dirname(os.path.abspath(path))], max_bytes=max_input_bytes())
        try:
            data = read_input(inp, max_input_bytes())
        except InputError as exc:
            raise OSError(exc.message) from exc
        return self.register_bytes(data, _uri(path), inp.display.rsplit("/", 1)[-1]), data

    def process(self, path: Path, *, follow_symlinks: bool = False) -> Outcome:
        inp = classify(os.fspath(path), [os.path.dirname(os.path.abspath(path))], follow_symlinks=follow_symlinks,
                       max_bytes=max_input_bytes())
        return self.process_input(inp)

    def refused(self, inp: InputFile, reason: str, message: str) -> Outcome:
        rec = failed_export(None, _uri(inp.path), display_path(inp.name), reason, message)
        return Outcome(Path(inp.path), None, "failed", message, reason, rec, 0.0)

    def process_input(self, inp: InputFile, data: bytes | None = None) -> Outcome:
        t0 = time.perf_counter()
        if data is None:
            try:
                data = read_input(inp, max_input_bytes())
            except InputError as exc:
                return self.refused(inp, exc.reason, exc.message)
        try:
            doc_id = self.register_bytes(data, _uri(inp.path), display_path(inp.name))
        except OSError as exc:
            rec = failed_export(None, _uri(inp.path), display_path(inp.name), "unreadable", str(exc))
            return Outcome(Path(inp.path), None, "failed", str(exc), "unreadable", rec, time.perf_counter() - t0)
        del data  # the run reads the original from the store
        return self.run(inp, doc_id, t0)

    def run(self, inp: InputFile, doc_id: str, t0: float | None = None) -> Outcome:
        """Materialize every stage of a registered document."""
        t0 = time.perf_counter() if t0 is None else t0
        path, uri, filename = Path(inp.path), _uri(inp.path), display_path(inp.name)
        result = materialize_document(self.assets, self.resources, self.instance, doc_id,
                                      {"idp/source_uri": uri[:250], "idp/runner": "idp process"})
        if result.success:
            record = json.loads(self.store.get(self.store.artifact_key(doc_id, "export.json")))
            return Outcome(path, doc_id, record["status"], None, None, record, time.perf_counter() - t0)
        if _interrupted(result):
            reason, message, quarantine_uri = "interrupted", "the batch was stopped while this document ran", None
        else:
            reason, message, quarantine_uri = failure_reason(result)
        if reason == "stage_timeout" and not quarantine_uri:  # stages without the store: quarantined here
            try:
                quarantine_uri = self.store.quarantine(doc_id, reason, message, filename)
            except Exception:  # noqa: BLE001
                quarantine_uri = None
        return self.failed_run(inp, doc_id, reason, message, t0, quarantine_uri)

    def close_abandoned_runs(self, doc_id: str, why: str) -> int:
        """Runs of this command for the document left started by a process that died: marked failed
        (otherwise they stay STARTED in the instance and the UI for ever)."""
        from dagster import DagsterRunStatus, RunsFilter

        n = 0
        unfinished = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
        for run in self.instance.get_runs(RunsFilter(tags={"dagster/partition": doc_id, "idp/runner": "idp process"},
                                                     statuses=unfinished)):
            self.instance.report_run_failed(run, why)
            n += 1
        return n

    def failed_run(self, inp: InputFile, doc_id: str | None, reason: str, message: str, t0: float,
                   quarantine_uri: str | None = None) -> Outcome:
        """The record of a registered document whose run failed (or never finished)."""
        rec = failed_export(doc_id, _uri(inp.path), display_path(inp.name), reason, message)
        if doc_id:
            rec["source"]["store_uri"] = self.store.uri(original_key(doc_id))
        rec["quarantine_uri"] = quarantine_uri
        return Outcome(Path(inp.path), doc_id, "failed", message, reason, rec, time.perf_counter() - t0)


def default_env() -> None:
    """Environment defaults that matter for speed and for staying offline."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
