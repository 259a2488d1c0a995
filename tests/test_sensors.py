"""Ingestion sensors against a real Dagster instance, a real folder and a real (moto) S3 server."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path

import pytest
from dagster import (
    AssetSelection,
    Definitions,
    DagsterInstance,
    SensorResult,
    SkipReason,
    asset,
    build_sensor_context,
    define_asset_job,
    instance_for_test,
)

from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME, documents_partitions
from resources.storage import DocumentStore
from sensors.common import PROCESS_JOB_NAME, SOURCE_URI_TAG, SeenState, SourceUnavailable
from sensors.inbox import InboxSettings, inbox_sensor
from sensors.s3 import S3InboxSettings, s3_sensor

OLD = time.time() - 3600  # mtime well past min_age_seconds


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def drop(folder: Path, rel: str, data: bytes, mtime: float = OLD) -> Path:
    p = folder / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.utime(p, (mtime, mtime))
    return p


@pytest.fixture
def instance():
    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def store(tmp_path) -> DocumentStore:
    return DocumentStore(root=str(tmp_path / "store"))


@pytest.fixture
def inbox(tmp_path) -> Path:
    p = tmp_path / "inbox"
    p.mkdir()
    return p


class Ticker:
    """Evaluates a sensor tick after tick like the daemon: carries the cursor, applies partition requests."""

    def __init__(self, sensor_def, instance, resources):
        self.sensor_def = sensor_def
        self.instance = instance
        self.resources = resources
        self.cursor: str | None = None

    def tick(self) -> SensorResult | SkipReason:
        ctx = build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources)
        result = self.sensor_def(ctx)
        if isinstance(result, SensorResult):
            for req in result.dynamic_partitions_requests or []:
                assert req.partitions_def_name == DOCUMENTS_PARTITIONS_NAME
                self.instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, list(req.partition_keys))
            if result.cursor is not None:
                self.cursor = result.cursor
        return result


def added(result) -> list[str]:
    if not isinstance(result, SensorResult):
        return []
    return [k for r in result.dynamic_partitions_requests or [] for k in r.partition_keys]


def runs(result) -> list[str]:
    if not isinstance(result, SensorResult):
        return []
    return [r.partition_key for r in result.run_requests or []]


def inbox_ticker(instance, store, inbox, **settings) -> Ticker:
    return Ticker(
        inbox_sensor,
        instance,
        {"inbox_settings": InboxSettings(path=str(inbox), **settings), "document_store": store},
    )


# ---------------------------------------------------------------- inbox sensor


def test_inbox_sensor_definition():
    assert inbox_sensor.name == "inbox_sensor"
    assert inbox_sensor.default_status.value == "RUNNING"
    assert inbox_sensor.minimum_interval_seconds == 5
    assert s3_sensor.name == "s3_sensor"
    assert s3_sensor.default_status.value == "STOPPED"


def test_new_file_registers_one_partition_and_one_run(instance, store, inbox):
    data = b"%PDF-1.4 invoice 1"
    drop(inbox, "invoice.pdf", data)
    t = inbox_ticker(instance, store, inbox)

    r1 = t.tick()
    doc = sha(data)
    assert added(r1) == [doc]
    assert runs(r1) == [doc]
    req = r1.run_requests[0]
    assert req.run_key == doc
    assert req.tags[SOURCE_URI_TAG] == (inbox / "invoice.pdf").resolve().as_uri()
    assert req.tags["idp/compute"] == "cpu"  # run-queue tag concurrency limits bound GPU runs by it
    assert store.get_original(doc) == data
    (record,) = store.get_source_records(doc)
    assert record["filename"] == "invoice.pdf" and record["uri"].startswith("file://") and record["seen_at"]

    r2 = t.tick()
    assert added(r2) == [] and runs(r2) == []
    assert r2.skip_reason is not None


def test_second_tick_never_reads_seen_files(instance, store, inbox, monkeypatch):
    for i in range(50):
        drop(inbox, f"d/{i:03}.txt", f"doc {i}".encode())
    t = inbox_ticker(instance, store, inbox)
    assert len(runs(t.tick())) == 50

    import sensors.inbox as mod

    opened: list[str] = []
    real = mod._make_reader

    def spy(target, version):
        inner = real(target, version)

        def read():
            opened.append(target)
            return inner()

        return read

    monkeypatch.setattr(mod, "_make_reader", spy)
    r = t.tick()
    assert runs(r) == [] and opened == []


def test_same_bytes_under_another_name_is_not_a_new_document(instance, store, inbox):
    data = b"same content"
    drop(inbox, "a.pdf", data)
    t = inbox_ticker(instance, store, inbox)
    assert runs(t.tick()) == [sha(data)]
    assert instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, sha(data))

    drop(inbox, "copy of a.pdf", data)
    r = t.tick()
    assert added(r) == [] and runs(r) == []
    # the second sighting is recorded though
    assert {rec["filename"] for rec in store.get_source_records(sha(data))} == {"a.pdf", "copy of a.pdf"}


def test_same_bytes_twice_in_one_tick_gives_one_run(instance, store, inbox):
    drop(inbox, "x/1.pdf", b"dup")
    drop(inbox, "y/2.pdf", b"dup")
    r = inbox_ticker(instance, store, inbox).tick()
    assert added(r) == [sha(b"dup")] and runs(r) == [sha(b"dup")]


def test_partition_registered_elsewhere_is_not_run_again(instance, store, inbox):
    data = b"already registered by another sensor"
    instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, [sha(data)])
    drop(inbox, "a.pdf", data)
    r = inbox_ticker(instance, store, inbox).tick()
    assert added(r) == [] and runs(r) == []
    assert store.get_original(sha(data)) == data  # original still kept


def test_modified_file_becomes_a_new_partition(instance, store, inbox):
    p = drop(inbox, "a.pdf", b"version 1")
    t = inbox_ticker(instance, store, inbox)
    assert runs(t.tick()) == [sha(b"version 1")]

    p.write_bytes(b"version 2, longer")
    os.utime(p, (OLD + 10, OLD + 10))
    r = t.tick()
    assert added(r) == [sha(b"version 2, longer")] and runs(r) == [sha(b"version 2, longer")]
    assert runs(t.tick()) == []


def test_per_tick_cap_spreads_work_over_ticks(instance, store, inbox):
    docs = [f"file {i}".encode() for i in range(5)]
    for i, d in enumerate(docs):
        drop(inbox, f"{i}.txt", d)
    t = inbox_ticker(instance, store, inbox, max_per_tick=2)
    seen = []
    for expected in (2, 2, 1, 0):
        r = t.tick()
        assert len(runs(r)) == expected
        seen += runs(r)
    assert sorted(seen) == sorted(sha(d) for d in docs)
    assert len(set(seen)) == 5


def test_young_hidden_and_partial_files_are_ignored(instance, store, inbox):
    drop(inbox, ".hidden.pdf", b"hidden")
    drop(inbox, ".git/objects/x", b"hidden dir")
    drop(inbox, "upload.pdf.part", b"partial")
    drop(inbox, "scan.tmp", b"temp")
    young = drop(inbox, "young.pdf", b"young", mtime=time.time())
    t = inbox_ticker(instance, store, inbox, min_age_seconds=60)
    assert runs(t.tick()) == []
    os.utime(young, (OLD, OLD))  # the writer finished a while ago
    assert runs(t.tick()) == [sha(b"young")]


def test_not_recursive(instance, store, inbox):
    drop(inbox, "top.pdf", b"top")
    drop(inbox, "sub/deep.pdf", b"deep")
    r = inbox_ticker(instance, store, inbox, recursive=False).tick()
    assert runs(r) == [sha(b"top")]


def test_symlink_escaping_inbox_is_skipped(instance, store, inbox, tmp_path):
    secret = drop(tmp_path / "outside", "secret.pdf", b"outside the inbox")
    inside = drop(inbox, "real.pdf", b"inside")
    (inbox / "escape.pdf").symlink_to(secret)
    (inbox / "escape_dir").symlink_to(secret.parent, target_is_directory=True)
    (inbox / "alias.pdf").symlink_to(inside)
    t = inbox_ticker(instance, store, inbox)
    r = t.tick()
    assert runs(r) == [sha(b"inside")]
    assert not store.exists(f"originals/{sha(b'outside the inbox')[:2]}/{sha(b'outside the inbox')}")
    # the rejected link is remembered: not examined (nor logged) again
    assert "escape.pdf" in SeenState.decode(t.cursor).seen
    assert runs(t.tick()) == []


def test_unreadable_file_is_retried_then_given_up(instance, store, inbox, monkeypatch):
    drop(inbox, "ok.pdf", b"ok")
    drop(inbox, "bad.pdf", b"bad")
    import sensors.inbox as mod

    real = mod._make_reader
    broken = {"on": True}

    def flaky(target, version):
        inner = real(target, version)

        def read():
            if target.endswith("bad.pdf") and broken["on"]:
                raise PermissionError("denied")
            return inner()

        return read

    monkeypatch.setattr(mod, "_make_reader", flaky)
    t = inbox_ticker(instance, store, inbox)
    assert runs(t.tick()) == [sha(b"ok")]
    state = SeenState.decode(t.cursor)
    assert "bad.pdf" not in state.seen and state.failed["bad.pdf"][1] == 1
    broken["on"] = False  # transient problem resolved -> picked up on the next tick
    assert runs(t.tick()) == [sha(b"bad")]

    # permanently unreadable: given up after max attempts, not retried forever
    drop(inbox, "bad.pdf", b"bad again", mtime=OLD + 5)
    broken["on"] = True
    for _ in range(5):
        assert runs(t.tick()) == []
    state = SeenState.decode(t.cursor)
    assert "bad.pdf" in state.seen and "bad.pdf" not in state.failed


def test_missing_inbox_folder_skips(instance, store, tmp_path):
    r = inbox_ticker(instance, store, tmp_path / "nope").tick()
    assert isinstance(r, SkipReason)


def test_deleted_files_are_pruned_from_cursor(instance, store, inbox):
    p = drop(inbox, "a.pdf", b"a")
    drop(inbox, "b.pdf", b"b")
    t = inbox_ticker(instance, store, inbox)
    t.tick()
    p.unlink()
    t.tick()
    assert set(SeenState.decode(t.cursor).seen) == {"b.pdf"}


def test_garbage_cursor_does_not_cause_duplicate_runs(instance, store, inbox):
    drop(inbox, "a.pdf", b"a")
    t = inbox_ticker(instance, store, inbox)
    assert len(runs(t.tick())) == 1
    t.cursor = "not a cursor"
    assert runs(t.tick()) == []


def test_sensor_result_is_accepted_by_dagster(store, inbox):
    """evaluate_tick like the daemon does, with a job like the lead's: the partition key of the run
    request must be accepted because the same result adds the partition."""

    @asset(partitions_def=documents_partitions)
    def doc_asset():
        return 1

    job = define_asset_job(PROCESS_JOB_NAME, selection=AssetSelection.all())
    resources = {"inbox_settings": InboxSettings(path=str(inbox)), "document_store": store}
    defs = Definitions(assets=[doc_asset], jobs=[job], sensors=[inbox_sensor], resources=resources)
    drop(inbox, "a.pdf", b"evaluate tick")
    with instance_for_test() as instance:
        ctx = build_sensor_context(
            instance=instance, instance_ref=instance.get_ref(), definitions=defs, resources=resources
        )
        data = inbox_sensor.evaluate_tick(ctx)
    assert [r.partition_key for r in data.run_requests] == [sha(b"evaluate tick")]
    assert [r.partition_keys for r in data.dynamic_partitions_requests] == [[sha(b"evaluate tick")]]
    assert data.run_requests[0].tags["dagster/partition"] == sha(b"evaluate tick")
    assert data.cursor


# ---------------------------------------------------------------- S3 sensor


def s3_ticker(instance, store, s3_client, **overrides) -> Ticker:
    settings = S3InboxSettings(**s3_client.settings(**overrides))
    return Ticker(s3_sensor, instance, {"s3_inbox_settings": settings, "document_store": store})


class S3Calls(list):
    """Keys of every GetObject the sensor's clients send (botocore event hook); ``lists`` counts pages."""

    lists = 0


@pytest.fixture
def get_object_calls(monkeypatch) -> S3Calls:
    calls = S3Calls()
    real = S3InboxSettings.make_client

    def on_list(**kw):
        calls.lists += 1

    def counting(self):
        client = real(self)
        client.meta.events.register("before-parameter-build.s3.GetObject", lambda params, **kw: calls.append(params["Key"]))
        client.meta.events.register("before-parameter-build.s3.ListObjectsV2", on_list)
        return client

    monkeypatch.setattr(S3InboxSettings, "make_client", counting)
    return calls


@pytest.mark.servers
def test_s3_paginated_listing_and_no_rereads(instance, store, s3_client, get_object_calls):
    n = 1005  # more than one ListObjectsV2 page
    for i in range(n):
        s3_client.client.put_object(Bucket=s3_client.bucket, Key=f"drop/{i:05}.txt", Body=f"s3 doc {i}".encode())
    s3_client.client.put_object(Bucket=s3_client.bucket, Key="drop/folder/", Body=b"")
    t = s3_ticker(instance, store, s3_client, max_per_tick=5000)

    r1 = t.tick()
    assert len(runs(r1)) == n and len(set(runs(r1))) == n
    assert len(get_object_calls) == n
    assert get_object_calls.lists == 2  # 1006 keys = two ListObjectsV2 pages
    assert sha(b"s3 doc 1004") in runs(r1)
    assert store.get_original(sha(b"s3 doc 7")) == b"s3 doc 7"
    assert store.get_source_records(sha(b"s3 doc 7"))[0]["uri"] == f"s3://{s3_client.bucket}/drop/00007.txt"

    get_object_calls.clear()
    get_object_calls.lists = 0
    r2 = t.tick()
    assert runs(r2) == [] and added(r2) == []
    assert get_object_calls == [] and get_object_calls.lists == 2
    assert len(t.cursor) < 40_000  # compressed key -> ETag map of ~1000 objects

    # an object whose key sorts before everything already seen is still found
    s3_client.client.put_object(Bucket=s3_client.bucket, Key="aaa-late.txt", Body=b"late arrival")
    # an overwritten object (new ETag) is read again
    s3_client.client.put_object(Bucket=s3_client.bucket, Key="drop/00000.txt", Body=b"s3 doc 0 v2")
    r3 = t.tick()
    assert sorted(runs(r3)) == sorted([sha(b"late arrival"), sha(b"s3 doc 0 v2")])
    assert sorted(get_object_calls) == ["aaa-late.txt", "drop/00000.txt"]


@pytest.mark.servers
def test_s3_prefix_cap_and_duplicates(instance, store, s3_client, get_object_calls):
    c, b = s3_client.client, s3_client.bucket
    for i in range(5):
        c.put_object(Bucket=b, Key=f"in/{i}.pdf", Body=f"pdf {i}".encode())
    c.put_object(Bucket=b, Key="in/dup.pdf", Body=b"pdf 0")
    c.put_object(Bucket=b, Key="other/x.pdf", Body=b"not under prefix")
    t = s3_ticker(instance, store, s3_client, prefix="in/", max_per_tick=2)
    seen = []
    for _ in range(4):
        seen += runs(t.tick())
    assert sorted(seen) == sorted(sha(f"pdf {i}".encode()) for i in range(5))
    assert "other/x.pdf" not in get_object_calls
    assert sorted(get_object_calls) == sorted([f"in/{i}.pdf" for i in range(5)] + ["in/dup.pdf"])


@pytest.mark.servers
def test_s3_key_with_dotdot_is_skipped(instance, store, s3_client, get_object_calls):
    c, b = s3_client.client, s3_client.bucket
    c.put_object(Bucket=b, Key="in/../evil.pdf", Body=b"evil")
    c.put_object(Bucket=b, Key="in/good.pdf", Body=b"good")
    t = s3_ticker(instance, store, s3_client)
    r = t.tick()
    assert runs(r) == [sha(b"good")]
    assert get_object_calls == ["in/good.pdf"]
    assert "in/../evil.pdf" in SeenState.decode(t.cursor).seen  # remembered, not re-examined
    assert runs(t.tick()) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.servers
def test_s3_unreachable_fails_tick_and_keeps_cursor(instance, store, s3_client):
    s3_client.client.put_object(Bucket=s3_client.bucket, Key="a.pdf", Body=b"a")
    t = s3_ticker(instance, store, s3_client)
    assert runs(t.tick()) == [sha(b"a")]
    cursor_before = t.cursor

    t.resources = {
        "s3_inbox_settings": S3InboxSettings(
            **s3_client.settings(
                endpoint_url=f"http://127.0.0.1:{_closed_port()}", max_attempts=1, connect_timeout_seconds=2
            )
        ),
        "document_store": store,
    }
    with pytest.raises(SourceUnavailable, match="cannot list"):
        t.tick()
    assert t.cursor == cursor_before


@pytest.mark.servers
def test_s3_missing_bucket_fails_tick(instance, store, s3_client):
    t = s3_ticker(instance, store, s3_client, bucket="no-such-bucket-here")
    with pytest.raises(SourceUnavailable):
        t.tick()
    assert t.cursor is None


# ---------------------------------------------------------------- hostile entries never block a tick


def test_special_files_and_broken_links_are_rejected_once_and_never_block(instance, store, inbox):
    """A FIFO would block read() forever; a symlink loop used to make every listing incomplete."""
    drop(inbox, "good.pdf", b"good")
    os.mkfifo(inbox / "fifo_pipe.pdf")
    os.utime(inbox / "fifo_pipe.pdf", (OLD, OLD))
    (inbox / "dangling.pdf").symlink_to("nowhere.pdf")
    (inbox / "loop-a.pdf").symlink_to("loop-b.pdf")
    (inbox / "loop-b.pdf").symlink_to("loop-a.pdf")
    (inbox / "to-fifo.pdf").symlink_to("fifo_pipe.pdf")
    drop(inbox, "huge.pdf", b"x" * 5000)
    t = inbox_ticker(instance, store, inbox, max_file_bytes=1000)
    t0 = time.monotonic()
    r = t.tick()
    assert time.monotonic() - t0 < 30
    assert runs(r) == [sha(b"good")]
    state = SeenState.decode(t.cursor)
    # each one logged once and remembered: the next tick examines nothing
    assert {"fifo_pipe.pdf", "dangling.pdf", "loop-a.pdf", "loop-b.pdf", "to-fifo.pdf", "huge.pdf"} <= set(state.seen)
    assert runs(t.tick()) == []
    # the listing stays complete: a deleted file is still pruned from the cursor
    (inbox / "good.pdf").unlink()
    t.tick()
    assert "good.pdf" not in SeenState.decode(t.cursor).seen


def test_file_name_that_is_not_utf8_is_ingested(instance, store, inbox):
    name = os.fsdecode(b"rechnung-caf\xe9.pdf")
    with open(os.path.join(os.fsencode(inbox), os.fsencode(name)), "wb") as f:
        f.write(b"latin-1 name")
    os.utime(os.path.join(os.fsencode(inbox), os.fsencode(name)), (OLD, OLD))
    t = inbox_ticker(instance, store, inbox)
    r = t.tick()
    doc = sha(b"latin-1 name")
    assert runs(r) == [doc]
    assert store.get_source_records(doc)[0]["filename"] == "rechnung-caf\\xe9.pdf"  # escaped, valid UTF-8
    assert name in SeenState.decode(t.cursor).seen  # the cursor round-trips the exact name
    assert runs(t.tick()) == []


@pytest.mark.servers
def test_s3_key_vanishing_between_list_and_get_never_blocks_a_tick(instance, store, s3_client, monkeypatch):
    import sensors.s3 as mod

    c, b = s3_client.client, s3_client.bucket
    c.put_object(Bucket=b, Key="in/gone.pdf", Body=b"gone")
    c.put_object(Bucket=b, Key="in/stays.pdf", Body=b"stays")
    c.put_object(Bucket=b, Key="in/big.pdf", Body=b"b" * 5000)
    real_list = mod.list_s3

    def list_then_delete(settings, client):
        listing = real_list(settings, client)
        c.delete_object(Bucket=b, Key="in/gone.pdf")  # deleted after the listing, before the read
        return listing

    monkeypatch.setattr(mod, "list_s3", list_then_delete)
    t = s3_ticker(instance, store, s3_client, max_object_bytes=1000)
    r = t.tick()
    assert runs(r) == [sha(b"stays")]
    state = SeenState.decode(t.cursor)
    assert "in/gone.pdf" not in state.seen and not state.failed  # skipped for now, not an error
    assert "in/big.pdf" in state.seen  # too large: rejected once, never read
    monkeypatch.setattr(mod, "list_s3", real_list)
    assert runs(t.tick()) == []
