"""Pools of engine instances that are not thread-safe (a Tesseract API, an onnxruntime pipeline).

Pages of one document and documents of one process are read by several threads
at once (`OcrRouter.page_workers`; the per-page timeout runs every read in its
own worker thread), so a process-wide instance behind a lock would serialise
them.  A pool hands each reader an instance of its own: idle instances are
reused, a new one is created only when every existing one is busy, so the pool
never holds more instances than there were concurrent readers.  A reader cut
off by the page timeout keeps its instance until it finishes and then gives it
back.  Pools are per process (`os.getpid()` in the key): instances never cross
a fork.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class InstancePool(Generic[T]):
    """Lease instances made by `factory`; at most as many exist as were ever leased at once."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._free: list[T] = []
        self._lock = threading.Lock()
        self.created = 0
        self.in_use = 0

    @contextmanager
    def lease(self) -> Iterator[T]:
        with self._lock:
            instance = self._free.pop() if self._free else None
            self.in_use += 1
        if instance is None:
            try:
                instance = self._factory()
            except BaseException:
                with self._lock:
                    self.in_use -= 1
                raise
            with self._lock:
                self.created += 1
        try:
            yield instance
        finally:
            with self._lock:
                self.in_use -= 1
                self._free.append(instance)

    @property
    def size(self) -> int:
        with self._lock:
            return len(self._free) + self.in_use


_POOLS: dict[tuple, InstancePool] = {}
_POOLS_LOCK = threading.Lock()


def pool_for(key: Hashable, factory: Callable[[], T]) -> InstancePool[T]:
    """The process's pool for `key` (engine name + configuration), created on first use."""
    full = (os.getpid(), key)
    with _POOLS_LOCK:
        pool = _POOLS.get(full)
        if pool is None:
            pool = _POOLS[full] = InstancePool(factory)
        return pool


__all__ = ["InstancePool", "pool_for"]
