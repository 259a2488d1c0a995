"""One embedded Chroma store written from other processes through the owner (resources/vector_relay.py).

A real child process (spawn) writes, queries and counts through a RelayedVectorStore; the owner's
store holds what it wrote, and a wrong key or an unrelayed method is refused."""

from __future__ import annotations

import multiprocessing

import pytest

from resources.vector_relay import RELAYED_METHODS, RelayedVectorStore, VectorRelay, use_relay
from resources.vectors import ENTITIES_COLLECTION, VectorStore


def _unit(i: int, dims: int = 8) -> list[float]:
    v = [0.0] * dims
    v[i % dims] = 1.0
    return v


def _child(address: str, key: bytes, doc: str, queue) -> None:
    use_relay(address, key)
    store = RelayedVectorStore(relay_address=address)
    try:
        store.replace_document_chunks(doc, [f"{doc}-0", f"{doc}-1"], [_unit(0), _unit(1)], ["Alpha Rechnung", "Beta"],
                                      [{"document_id": doc}, {"document_id": doc}])
        store.replace_document_chunks(doc, [f"{doc}-e"], [_unit(2)], ["Gamma GmbH"], [{"document_id": doc}],
                                      collection=ENTITIES_COLLECTION)
        hit = store.query(_unit(1), k=1)["ids"][0]
        words = store.find_words("rechnung")["ids"]
        queue.put(("ok", store.count(doc), store.count(doc, collection=ENTITIES_COLLECTION), hit, words))
    except Exception as exc:  # noqa: BLE001
        queue.put(("error", repr(exc)))


def _run_child(relay: VectorRelay, key: bytes, doc: str):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(relay.address, key, doc, queue))
    proc.start()
    try:
        return queue.get(timeout=120)
    finally:
        proc.join(30)


def test_a_child_process_writes_the_owners_store(tmp_path):
    store = VectorStore(path=str(tmp_path / "chroma"))
    with VectorRelay(store) as relay:
        got = _run_child(relay, relay.authkey, "doc-a")
        assert got == ("ok", 2, 1, ["doc-a-1"], ["doc-a-0"]), got
        # the owner sees the child's entries (one client: nothing written twice or lost)
        assert store.count("doc-a") == 2 and store.count("doc-a", collection=ENTITIES_COLLECTION) == 1
        assert store.find_words("rechnung")["ids"] == ["doc-a-0"]  # the owner's keyword index too
        # a wrong key is refused
        bad = _run_child(relay, b"x" * 32, "doc-b")
        assert bad[0] == "error" and "AuthenticationError" in bad[1], bad
        assert store.count("doc-b") == 0
    assert store.count("doc-a") == 2


def test_only_document_operations_are_relayed(tmp_path):
    from resources.vector_relay import _Dispatcher

    with pytest.raises(ValueError, match="not a relayed"):
        _Dispatcher(VectorStore(path=str(tmp_path / "c"))).call("client", (), {})
    relayed = RelayedVectorStore(relay_address=str(tmp_path / "none.sock"))
    with pytest.raises(RuntimeError, match="no Chroma client"):
        relayed.collection()
    with pytest.raises(RuntimeError, match="use_relay first"):
        relayed.count("x")
    assert {"replace_document_chunks", "query", "count"} <= set(RELAYED_METHODS)


def test_closing_the_relay_leaves_the_process_streams_and_ends_its_thread(tmp_path, capsys):
    import sys
    import threading

    out, err = sys.stdout, sys.stderr
    relay = VectorRelay(VectorStore(path=str(tmp_path / "chroma")))
    relay.close()
    assert sys.stdout is out and sys.stderr is err  # (multiprocessing's serve_forever resets them)
    assert not any(t.name == "idp-vector-relay" and t.is_alive() for t in threading.enumerate())
