"""Time budget of every document stage: a stage that runs past it is cut off, the document fails
with reason ``stage_timeout`` (stage named), and the batch or the run queue goes on.

Every per-document asset is wrapped by :func:`budgeted`.  The budget of a stage for one
document is ``base + per_page x pages`` seconds (pages known from a ``RawPages`` /
``OcrPages`` input), from :data:`STAGE_BUDGETS`, scaled by ``IDP_STAGE_TIMEOUT_SCALE``
(``0`` switches budgets off) and overridden per stage by ``IDP_STAGE_TIMEOUT_<STAGE>`` =
``SECONDS`` or ``SECONDS+PER_PAGE`` (``idp process --stage-timeout STAGE=SECONDS[+PER_PAGE]``).

Enforcement works on CPU-bound pure-Python code and on regular expressions (CPython's
``re`` engine checks for signals while it backtracks):

* in the main thread (``idp process``, a run worker, a multiprocess step) a ``SIGALRM``
  timer (``setitimer``) raises :class:`StageTimeout` in the stage's own frame;
* in any other thread a watchdog injects the exception asynchronously
  (``PyThreadState_SetAsyncExc``), which a pure-Python loop cannot ignore either.

Native code that never returns to the interpreter is not interruptible in-process; the
one such risk (pdfium drawing a hostile page) is isolated in a child process with its own
time and memory limits (``idp_assets.logic.pdf_guard``).  ``StageTimeout`` derives from
``BaseException`` so that a stage's ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

import ctypes
import functools
import inspect
import os
import signal
import threading
import time
from contextlib import contextmanager

from idp_assets.common import document_failure

# stage -> (base seconds, seconds per page); generous: a budget is a backstop against a stuck
# parser, not a performance target.  OCR has its own per-page engine timeout (OcrRouter.page_timeout_s).
STAGE_BUDGETS: dict[str, tuple[float, float]] = {
    "source_documents": (120.0, 0.0),
    "raw_pages": (600.0, 0.0),  # pages unknown before the document is opened; MAX_PAGES bounds the work
    "page_thumbnails": (120.0, 2.0),
    "ocr_pages": (300.0, 400.0),
    "normalized_tables": (180.0, 10.0),
    "extracted_fields": (180.0, 5.0),
    "supplier_matches": (120.0, 1.0),
    "embeddings": (300.0, 10.0),
    "graph_nodes": (300.0, 5.0),
    "document_exports": (120.0, 2.0),
}
DEFAULT_BUDGET = (300.0, 10.0)
STAGE_TIMEOUT_REASON = "stage_timeout"


class StageTimeout(BaseException):
    """Raised in a stage that ran past its budget (BaseException: `except Exception` does not catch it)."""

    def __init__(self, stage: str = "", seconds: float = 0.0):
        super().__init__(f"{stage or 'stage'} ran past its time budget of {seconds:g} s")
        self.stage = stage
        self.seconds = seconds


def _parse(value: str) -> tuple[float, float]:
    base, _, per_page = value.strip().partition("+")
    return float(base), float(per_page) if per_page else 0.0


def stage_budget(stage: str, pages: int = 0, env=None) -> float | None:
    """Seconds `stage` may take for a document of `pages` pages; None: no budget."""
    env = os.environ if env is None else env
    base, per_page = STAGE_BUDGETS.get(stage, DEFAULT_BUDGET)
    override = env.get(f"IDP_STAGE_TIMEOUT_{stage.upper()}")
    if override:
        base, per_page = _parse(override)
    scale = float(env.get("IDP_STAGE_TIMEOUT_SCALE") or 1.0)
    seconds = (base + per_page * max(0, pages)) * scale
    return seconds if seconds > 0 else None


# --------------------------------------------------------------------------- deadlines

_alarm = {"active": None}  # (deadline monotonic, stage, seconds) of the armed timer


def _on_alarm(signum, frame):
    active = _alarm["active"]
    if active is None:
        return  # a late alarm of a finished deadline
    deadline, stage, seconds = active
    if time.monotonic() + 0.005 < deadline:  # early (re-armed): wait for the rest
        signal.setitimer(signal.ITIMER_REAL, deadline - time.monotonic())
        return
    _alarm["active"] = None
    raise StageTimeout(stage, seconds)


def _signal_deadline_possible() -> bool:
    return (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
            and _alarm["active"] is None)


@contextmanager
def deadline(seconds: float | None, stage: str = ""):
    """Raise StageTimeout(stage) in this thread once `seconds` have passed inside the block."""
    if not seconds:
        yield
        return
    if _signal_deadline_possible():
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        _alarm["active"] = (time.monotonic() + seconds, stage, seconds)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)  # disarmed first: no alarm can reach the old handler
            _alarm["active"] = None
            signal.signal(signal.SIGALRM, previous if previous is not None else signal.SIG_DFL)
        return
    # another thread (or a deadline already armed): a watchdog injects the exception
    target = threading.get_ident()
    done = threading.Event()
    fired = {"yes": False}

    class _Timeout(StageTimeout):  # raised by class (no arguments) from the watchdog
        def __init__(self):
            super().__init__(stage, seconds)

    def watch():
        if not done.wait(seconds):
            fired["yes"] = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(_Timeout))

    watchdog = threading.Thread(target=watch, name=f"deadline-{stage}", daemon=True)
    watchdog.start()
    try:
        yield
    finally:
        done.set()
        watchdog.join()
        if fired["yes"]:  # fired just as the block ended: clear a still pending injection
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)


# --------------------------------------------------------------------------- asset wrapper


def _pages(args, kwargs) -> int:
    n = 0
    for v in (*args, *kwargs.values()):
        pages = getattr(v, "pages", None)
        if isinstance(pages, list):
            n = max(n, len(pages))
    return n


def _timeout_failure(stage: str, seconds: float, args, kwargs):
    message = f"{stage} ran past its time budget of {seconds:g} s and was cut off"
    extra = {"stage": stage, "budget_seconds": seconds}
    store = kwargs.get("document_store")
    context = args[0] if args else kwargs.get("context")
    doc_id = getattr(context, "partition_key", None) if context is not None else None
    if store is not None and doc_id:
        try:
            extra["quarantine_uri"] = store.quarantine(doc_id, STAGE_TIMEOUT_REASON, message)
        except Exception:  # noqa: BLE001 - the failure itself matters more than the quarantine copy
            pass
    if context is not None:
        try:
            context.log.error(f"document {str(doc_id)[:12]}: {message}")
        except Exception:  # noqa: BLE001
            pass
    return document_failure(STAGE_TIMEOUT_REASON, message, **extra)


def budgeted(stage: str):
    """Decorator (under ``@asset``) that puts the stage on its time budget; the signature is kept."""

    def wrap(fn):
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen_wrapper(*args, **kwargs):
                seconds = stage_budget(stage, _pages(args, kwargs))
                end = time.monotonic() + seconds if seconds else None
                gen = fn(*args, **kwargs)
                try:
                    while True:
                        left = None if end is None else end - time.monotonic()
                        if left is not None and left <= 0:
                            raise StageTimeout(stage, seconds)
                        with deadline(left, stage):
                            try:
                                item = next(gen)
                            except StopIteration:
                                return
                        yield item  # Dagster handles the output outside the armed timer
                except StageTimeout:
                    gen.close()
                    raise _timeout_failure(stage, seconds or 0.0, args, kwargs) from None

            return gen_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            seconds = stage_budget(stage, _pages(args, kwargs))
            try:
                with deadline(seconds, stage):
                    return fn(*args, **kwargs)
            except StageTimeout:
                raise _timeout_failure(stage, seconds or 0.0, args, kwargs) from None

        return wrapper

    return wrap
