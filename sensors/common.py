"""Shared ingestion logic for the source sensors (inbox folder, S3 bucket).

A source sensor only has to *list* its source and describe every object it sees
as a :class:`Candidate` (a stable ``key`` inside the source, a cheap ``version``
token that changes when the object changes, a URI, a file name and a callable
that returns the bytes).  :func:`ingest` does the rest, identically for every
source:

1. Candidates whose ``(key, version)`` is already in the cursor are ignored
   without being read, so a tick over thousands of known objects costs one
   listing and dictionary look-ups only.
2. At most ``max_per_tick`` of the remaining candidates (in key order) are
   examined; the rest stay pending and are picked up by the next ticks, because
   only examined candidates are written into the cursor.
3. Each examined candidate is read and hashed (sha256 = document id); the
   original bytes are copied into the :class:`DocumentStore` and the sighting is
   recorded (``put_source_record``) *before* anything is requested from Dagster.
4. One :class:`dagster.SensorResult` is returned that adds the new document ids
   as ``documents`` partitions and requests one run per new id.  An id is "new"
   when it is neither a partition yet (``instance.has_dynamic_partition``), nor a retired
   document (``idp_assets.retention``), nor already handled earlier in the same tick: the same bytes seen twice (another
   name, another source, another tick) give one partition and never two runs.
   ``run_key`` is the document id as a second line of defence.

Read failures
    * :class:`SkipForNow` - benign (object vanished, file still being written):
      skipped without counting, the object is simply examined again later.
    * :class:`Rejected` - permanently unacceptable (e.g. a symlink leaving the
      inbox, an S3 key with ``..``): logged once, remembered in the cursor with
      its version, and not looked at again until its version changes.
    * :class:`SourceUnavailable` - the whole source is unreachable: the tick
      fails (exception), the cursor is not advanced.
    * any other exception - logged and retried on the following ticks; after
      ``max_read_attempts`` consecutive failures of the same version the object
      is considered permanently unreadable and treated like ``Rejected``.

The cursor is a versioned, zlib-compressed, base64 JSON document (see
:class:`SeenState`).  The run requests and the new cursor travel in the same
``SensorResult``, so Dagster persists them together: a tick that raises changes
nothing and is simply redone (storing originals is idempotent).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from dagster import RunRequest, SensorEvaluationContext, SensorResult

from idp_assets.compute import ocr_compute
from idp_assets.partitions import documents_partitions
from idp_assets.retention import is_registered
from resources.storage import DocumentStore, printable

COMPUTE_TAG = "idp/compute"
PROCESS_JOB_NAME = "process_document"
"""Name of the partitioned asset job the sensors target (defined in idp_assets.definitions)."""

SOURCE_URI_TAG = "idp/source_uri"
SOURCE_FILENAME_TAG = "idp/source_filename"
DEFAULT_MAX_PER_TICK = 100
DEFAULT_MAX_READ_ATTEMPTS = 5

_CURSOR_PREFIX = "v1:"


class SkipForNow(Exception):
    """Not readable right now for a benign reason; look again next tick (not counted as a failure)."""


class Rejected(Exception):
    """This version of the object must never be ingested; logged once and remembered in the cursor."""


class SourceUnavailable(Exception):
    """The source itself (bucket, server, folder) cannot be reached: the tick fails, cursor unchanged."""


@dataclass(frozen=True)
class Candidate:
    """One object currently present in a source."""

    key: str
    """Stable identity inside the source (relative path, S3 key); cursor key."""
    version: str
    """Cheap change token ("size:mtime_ns", ETag); a different value means "examine again"."""
    uri: str
    filename: str
    read: Callable[[], bytes] = field(compare=False, repr=False)


@dataclass
class SeenState:
    """What a sensor has already examined; this *is* the sensor cursor.

    ``seen`` maps key -> version of every examined object that is still present
    in the source (entries of objects no longer listed are pruned, so the cursor
    grows with the size of the source, not with its history).  ``failed`` maps
    key -> [version, attempts] for objects whose read failed and will be retried.

    Encoded as ``"v1:" + base64(zlib(json))``: object keys share long prefixes
    and compress well.  Decode a cursor by hand with :meth:`decode`.  An
    unreadable cursor is not fatal: the state restarts empty, which costs one
    re-hash of everything but never a duplicate run (partition check).
    """

    seen: dict[str, str] = field(default_factory=dict)
    failed: dict[str, list] = field(default_factory=dict)

    def encode(self) -> str:
        doc = {"seen": self.seen, "failed": self.failed}
        # surrogatepass: keys of file names that are not UTF-8 round-trip exactly (and never crash a tick)
        raw = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return _CURSOR_PREFIX + base64.b64encode(zlib.compress(raw, 6)).decode("ascii")

    @classmethod
    def decode(cls, cursor: str | None, log=None) -> SeenState:
        if not cursor:
            return cls()
        try:
            if not cursor.startswith(_CURSOR_PREFIX):
                raise ValueError("unknown cursor format")
            raw = zlib.decompress(base64.b64decode(cursor[len(_CURSOR_PREFIX) :], validate=True))
            doc = json.loads(raw.decode("utf-8", "surrogatepass"))
            seen, failed = doc["seen"], doc["failed"]
            if not isinstance(seen, dict) or not isinstance(failed, dict):
                raise ValueError("malformed cursor")
            return cls(seen={str(k): str(v) for k, v in seen.items()}, failed=dict(failed))
        except (ValueError, KeyError, TypeError, zlib.error, binascii.Error, UnicodeDecodeError) as exc:
            if log is not None:
                log.warning(f"ignoring unreadable sensor cursor ({exc}); every object will be re-examined once")
            return cls()

    def prune(self, present_keys: set[str]) -> None:
        """Forget objects that are no longer in the source."""
        self.seen = {k: v for k, v in self.seen.items() if k in present_keys}
        self.failed = {k: v for k, v in self.failed.items() if k in present_keys}

    def is_current(self, candidate: Candidate) -> bool:
        return self.seen.get(candidate.key) == candidate.version

    def mark_done(self, candidate: Candidate) -> None:
        self.seen[candidate.key] = candidate.version
        self.failed.pop(candidate.key, None)

    def record_failure(self, candidate: Candidate) -> int:
        """Count one more failed read of this version; returns the number of attempts so far."""
        prev = self.failed.get(candidate.key)
        attempts = int(prev[1]) + 1 if prev and prev[0] == candidate.version else 1
        self.failed[candidate.key] = [candidate.version, attempts]
        return attempts


def document_id_for(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def ingest(
    context: SensorEvaluationContext,
    store: DocumentStore,
    listing: Iterable[Candidate],
    state: SeenState,
    *,
    max_per_tick: int = DEFAULT_MAX_PER_TICK,
    max_read_attempts: int = DEFAULT_MAX_READ_ATTEMPTS,
    listing_complete: bool = True,
) -> SensorResult:
    """Examine new/changed candidates, store originals, and build the tick's SensorResult.

    ``listing`` is everything currently in the source (already filtered for
    names the source never wants to see).  ``state`` is mutated and encoded
    into the result's cursor.  ``listing_complete=False`` (part of the source
    could not be listed) keeps cursor entries of objects that were not listed.
    """
    log = context.log
    listing = list(listing)
    if listing_complete:
        state.prune({c.key for c in listing})

    pending = sorted((c for c in listing if not state.is_current(c)), key=lambda c: c.key)
    batch = pending[: max(1, max_per_tick)]

    new_ids: list[str] = []
    run_requests: list[RunRequest] = []
    handled_ids: set[str] = set()
    stored = known = failed = 0

    for cand in batch:
        try:
            data = cand.read()
        except SkipForNow as exc:
            log.info(printable(f"skipping {cand.uri} for now: {exc}"))
            continue
        except Rejected as exc:
            log.warning(printable(f"ignoring {cand.uri}: {exc}"))
            state.mark_done(cand)
            continue
        except SourceUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any read error of one object must not stop the others
            failed += 1
            attempts = state.record_failure(cand)
            if attempts >= max_read_attempts:
                log.error(
                    f"giving up on {cand.uri} after {attempts} failed reads ({exc!r}); "
                    "it is examined again only when it changes"
                )
                state.mark_done(cand)
            else:
                log.warning(printable(f"could not read {cand.uri} (attempt {attempts}/{max_read_attempts}): {exc!r}"))
            continue

        doc_id = document_id_for(data)
        # Originals and the sighting are persisted before Dagster hears about the document.
        store.put_original(doc_id, data)
        uri, filename = printable(cand.uri), printable(cand.filename)  # names that are not UTF-8: escaped
        store.put_source_record(doc_id, {"uri": uri, "filename": filename, "seen_at": _now_iso()})
        state.mark_done(cand)
        stored += 1

        if doc_id in handled_ids or is_registered(context.instance, store, doc_id):
            known += 1
            log.info(f"{cand.uri} is already known as document {doc_id}; no new run")
            handled_ids.add(doc_id)
            continue
        handled_ids.add(doc_id)
        new_ids.append(doc_id)
        run_requests.append(
            RunRequest(
                run_key=doc_id,
                partition_key=doc_id,
                # idp/compute lets the run queue bound GPU runs (tag_concurrency_limits in dagster.postgres.yaml)
                tags={SOURCE_URI_TAG: uri, SOURCE_FILENAME_TAG: filename, COMPUTE_TAG: ocr_compute()},
            )
        )

    left = len(pending) - len(batch)
    summary = (
        f"{len(listing)} objects listed, {len(pending)} new/changed, {len(batch)} examined "
        f"({stored} stored, {len(new_ids)} new documents, {known} already known, {failed} failed reads), "
        f"{left} left for later ticks"
    )
    if pending:
        log.info(summary)

    return SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[documents_partitions.build_add_request(new_ids)] if new_ids else None,
        cursor=state.encode(),
        skip_reason=None if run_requests else f"no new documents: {summary}",
    )
