"""Run the document assets in-process for a list of files (what `idp process` does).

The same asset definitions as the Dagster UI run, one partition per document, on a
Dagster instance under `<data_dir>/dagster` (or an ephemeral one).  One
document's failure is recorded with its reason and the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dagster import DagsterInstance, materialize

from idp_assets.logic.export import export_files, failed_export, safe_stem
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
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


def iter_inputs(paths: list[str]) -> list[Path]:
    """Files given directly, plus files found (recursively, sorted, no hidden ones) in given folders."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(p)
    return out


def failure_reason(result) -> tuple[str, str, str | None]:
    """(reason code, message, quarantine uri) of the first failed step of a run."""
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            data = ev.step_failure_data
            ufd = data.user_failure_data
            if ufd is not None and "reason" in ufd.metadata:
                q = ufd.metadata.get("quarantine_uri")
                return str(ufd.metadata["reason"].value), str(ufd.metadata["message"].value), q.value if q else None
            err = data.error
            while err is not None and err.cause is not None:  # the user code's exception, not Dagster's wrapper
                err = err.cause
            msg = err.message.strip() if err else "step failed"
            return "step_failed", f"{ev.step_key}: {msg}", None
    return "run_failed", "run did not succeed", None


class DocumentRunner:
    def __init__(self, resources: dict, instance: DagsterInstance | None = None):
        from idp_assets.definitions import ALL_ASSETS

        self.assets = ALL_ASSETS
        self.resources = resources
        self.instance = instance or DagsterInstance.ephemeral()
        # used directly (outside a run): resolve EnvVar credentials the way a run would
        self.store = resources["document_store"].process_config_and_initialize()

    def register(self, path: Path) -> tuple[str, bytes]:
        data = path.read_bytes()
        doc_id = hashlib.sha256(data).hexdigest()
        # original bytes are kept before anything else happens
        self.store.put_original(doc_id, data)
        self.store.put_source_record(doc_id, {"uri": path.resolve().as_uri(), "filename": path.name})
        if not self.instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, doc_id):
            self.instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, [doc_id])
        return doc_id, data

    def process(self, path: Path) -> Outcome:
        t0 = time.perf_counter()
        try:
            doc_id, _ = self.register(path)
        except OSError as exc:
            rec = failed_export(None, path.resolve().as_uri(), path.name, "unreadable", str(exc))
            return Outcome(path, None, "failed", str(exc), "unreadable", rec, time.perf_counter() - t0)
        result = materialize(
            self.assets,
            partition_key=doc_id,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
            tags={"idp/source_uri": path.resolve().as_uri()[:250], "idp/runner": "idp process"},
        )
        if result.success:
            record = json.loads(self.store.get(self.store.artifact_key(doc_id, "export.json")))
            return Outcome(path, doc_id, record["status"], None, None, record, time.perf_counter() - t0)
        reason, message, quarantine_uri = failure_reason(result)
        rec = failed_export(doc_id, path.resolve().as_uri(), path.name, reason, message)
        rec["source"]["store_uri"] = self.store.uri(original_key(doc_id))
        rec["quarantine_uri"] = quarantine_uri
        return Outcome(path, doc_id, "failed", message, reason, rec, time.perf_counter() - t0)


def output_name(path: Path, document_id: str | None, taken: set[str]) -> str:
    """`<input file stem>`, made file-system safe (no separators or control characters, at most
    120 characters so that `.fields.csv` etc. still fit); a repeated stem gets `-<hash8>`."""
    stem = safe_stem(path.name)
    name = stem
    if name in taken:
        name = f"{stem}-{(document_id or hashlib.sha256(str(path).encode()).hexdigest())[:8]}"
    i = 2
    base = name
    while name in taken:  # same stem and same content prefix: keep every output
        name = f"{base}-{i}"
        i += 1
    taken.add(name)
    return name


def process_paths(paths: list[str], out_dir: Path, resources: dict, instance: DagsterInstance | None = None,
                  progress=sys.stderr) -> list[Outcome]:
    files = iter_inputs(paths)
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = DocumentRunner(resources, instance)
    outcomes: list[Outcome] = []
    taken: set[str] = set()
    done: dict[str, Outcome] = {}
    with open(out_dir / "index.jsonl", "w", encoding="utf-8") as index:
        for i, f in enumerate(files, 1):
            try:
                digest = hashlib.sha256(f.read_bytes()).hexdigest()
            except OSError:
                digest = None
            if digest and digest in done:  # same bytes again: one partition, one run
                prev = done[digest]
                o = Outcome(f, prev.document_id, prev.status, prev.error, prev.reason, prev.record, 0.0)
            else:
                o = runner.process(f)
                if o.document_id:
                    done[o.document_id] = o
            name = output_name(f, o.document_id, taken)
            (out_dir / f"{name}.json").write_text(json.dumps(o.record, ensure_ascii=False, indent=2), encoding="utf-8")
            for suffix, data in export_files(o.record).items():  # <name>.fields.csv / .lines.csv / .cii.xml
                (out_dir / f"{name}.{suffix}").write_bytes(data)
            index.write(json.dumps({
                "source": str(f), "output": f"{name}.json", "document_id": o.document_id, "status": o.status,
                "reason": o.reason, "error": o.error, "quarantine": o.record.get("quarantine_uri"),
                "seconds": round(o.seconds, 3),
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }, ensure_ascii=False) + "\n")
            index.flush()
            outcomes.append(o)
            if progress:
                msg = f"[{i}/{len(files)}] {o.status:<7} {o.seconds:6.1f}s  {f}"
                if o.error:
                    msg += f"  ({o.reason}: {o.error[:160]})"
                print(msg, file=progress, flush=True)
    return outcomes


def default_env() -> None:
    """Environment defaults that matter for speed and for staying offline."""
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
