"""One embedded Chroma store, written by several processes: the owner serves it, the others relay.

Chroma's embedded ``PersistentClient`` keeps its HNSW index in the memory of the process that
opened it; two processes writing one folder would each persist their own view and lose the
other's entries.  When `idp process --workers N` runs documents in N worker processes, the
batch process keeps the only client and serves the store's document-level operations over
a Unix socket (``multiprocessing.managers``, a random 32-byte key); each worker's
``vector_store`` resource is a :class:`RelayedVectorStore` that forwards those calls.  The
keyword index beside Chroma (SQLite FTS5) is written by the owner too, as before.

Only whole-document operations travel (replace, add, delete, query, find, count): what the
`embeddings` asset, `idp search` and the API use.  A Chroma server (``mode="http"``) needs
no relay: every process talks to the server itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from multiprocessing.managers import BaseManager

from pydantic import Field, PrivateAttr

from resources.vectors import CHUNKS_COLLECTION, VectorStore

# the VectorStore methods a worker may call through the relay (whole-document operations)
RELAYED_METHODS = ("replace_document_chunks", "add_many", "delete_document", "query", "find_text",
                   "find_words", "count")
# address -> key, set in a worker process by `use_relay` (kept out of the resource's config so
# that the key never appears in run config, logs or the UI)
_KEYS: dict[str, bytes] = {}


class _Dispatcher:
    """The owner's side: runs a relayed call on the real store (one call at a time per store:
    Chroma's client and the keyword index are used as from a single process)."""

    def __init__(self, store: VectorStore):
        self._store = store
        self._lock = threading.Lock()

    def call(self, method: str, args: tuple, kwargs: dict):
        if method not in RELAYED_METHODS:
            raise ValueError(f"{method!r} is not a relayed VectorStore method ({', '.join(RELAYED_METHODS)})")
        with self._lock:
            return getattr(self._store, method)(*args, **kwargs)


class _ServerManager(BaseManager):
    pass


class _ClientManager(BaseManager):
    pass


_ClientManager.register("vectors")


class VectorRelay:
    """Serves `store` to other processes of this machine until closed (a context manager).

    ``address`` (a Unix socket in a private temporary folder) and ``authkey`` are what a
    worker needs (:func:`use_relay`)."""

    def __init__(self, store: VectorStore):
        self.authkey = os.urandom(32)
        self._dir = tempfile.mkdtemp(prefix="idp-vectors-")
        self.address = os.path.join(self._dir, "relay.sock")
        dispatcher = _Dispatcher(store)
        manager = _ServerManager(address=self.address, authkey=self.authkey)
        manager.register("vectors", callable=lambda: dispatcher, exposed=("call",))
        self._server = manager.get_server()
        os.chmod(self.address, 0o600)
        self._closed = False
        self._server.stop_event = threading.Event()  # what serve_forever would set: client loops watch it
        # our own accept loop, not Server.serve_forever: that one resets sys.stdout/sys.stderr of the
        # whole process when it ends, and its accepter thread dies on the first client with a wrong key
        self._thread = threading.Thread(target=self._accept, name="idp-vector-relay", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        listener = self._server.listener
        while not self._closed:
            try:
                conn = listener.accept()  # the key handshake happens here
            except Exception:  # noqa: BLE001 - a refused handshake, or the listener closed
                continue
            threading.Thread(target=self._server.handle_request, args=(conn,), name="idp-vector-relay-client",
                             daemon=True).start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._server.stop_event.set()
        sock = getattr(getattr(self._server.listener, "_listener", None), "_socket", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept loop (closing alone does not on Linux)
        except OSError:
            pass
        try:
            self._server.listener.close()
        except OSError:
            pass
        self._thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> VectorRelay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def use_relay(address: str, authkey: bytes) -> None:
    """In a worker process: the key for the relay at `address` (before its first call)."""
    _KEYS[address] = authkey


class RelayedVectorStore(VectorStore):
    """The `vector_store` resource of a worker process: document-level calls go to the owner."""

    relay_address: str = Field(description="Unix socket of the owner's VectorRelay")

    _proxy: object = PrivateAttr(default=None)
    _proxy_lock: object = PrivateAttr(default_factory=threading.Lock)

    def _call(self, method: str, *args, **kwargs):
        if self._proxy is None:
            with self._proxy_lock:
                if self._proxy is None:
                    key = _KEYS.get(self.relay_address)
                    if key is None:
                        raise RuntimeError(f"no key for the vector relay at {self.relay_address} (use_relay first)")
                    manager = _ClientManager(address=self.relay_address, authkey=key)
                    manager.connect()
                    self._proxy = manager.vectors()
        return self._proxy.call(method, args, kwargs)

    def client(self):
        raise RuntimeError("a relayed vector store has no Chroma client in this process; "
                           f"use one of {', '.join(RELAYED_METHODS)}")

    def collection(self, name: str = CHUNKS_COLLECTION):
        return self.client()

    def keywords(self):
        return None  # the owner keeps the keyword index


def _forwarder(name: str):
    def method(self, *args, **kwargs):
        return self._call(name, *args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"`VectorStore.{name}`, run by the store's owner."
    return method


for _name in RELAYED_METHODS:  # every relayed method forwards its arguments unchanged
    setattr(RelayedVectorStore, _name, _forwarder(_name))
