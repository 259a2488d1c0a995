"""Parallel page reading: engine instance pools and the router's page workers."""

from __future__ import annotations

import os
import threading
import time
from typing import Literal

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from idp_assets.models import RawPage, RawPages  # noqa: E402
from resources.ocr import EngineOptions, EngineOutput, OcrEngine, register_engine, unregister_engine  # noqa: E402
from resources.ocr.pool import InstancePool, pool_for  # noqa: E402
from resources.ocr.router import OcrRouter  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def test_pool_reuses_idle_instances_and_grows_only_under_concurrency():
    made = []
    pool = InstancePool(lambda: made.append(object()) or made[-1])
    for _ in range(5):
        with pool.lease() as a:
            pass
    assert pool.created == 1 and pool.size == 1
    with pool.lease() as a, pool.lease() as b:
        assert a is not b
    assert pool.created == 2 and pool.size == 2 and pool.in_use == 0


def test_pool_factory_failure_is_not_counted():
    def boom():
        raise RuntimeError("no model")

    pool = InstancePool(boom)
    try:
        with pool.lease():
            pass
    except RuntimeError:
        pass
    assert pool.created == 0 and pool.in_use == 0 and pool.size == 0


def test_pool_for_is_per_key():
    assert pool_for(("t", 1), object) is pool_for(("t", 1), object)
    assert pool_for(("t", 1), object) is not pool_for(("t", 2), object)


def _raw(n: int) -> RawPages:
    return RawPages(
        document_id="2" * 64,
        kind="image",
        pages=[RawPage(number=i + 1, width=40, height=20, dpi=200.0) for i in range(n)],
    )


def test_router_reads_image_pages_concurrently_and_keeps_order():
    barrier = threading.Barrier(2, timeout=10)

    class RendezvousOptions(EngineOptions):
        kind: Literal["rendezvous_test"] = "rendezvous_test"

    class Rendezvous(OcrEngine):
        """Every read waits for a second concurrent read: sequential reading would break the barrier."""

        name = "rendezvous_test"
        options_class = RendezvousOptions

        def read(self, page_image, raw_page):
            barrier.wait()
            return EngineOutput(text=f"page {raw_page.number}", confidence=0.9 + raw_page.number / 100)

    register_engine(Rendezvous)
    try:
        r = OcrRouter(image_engines=["rendezvous_test"], page_workers=2)
        images = [Image.new("L", (40, 20), 255) for _ in range(4)]
        out = r.ocr_document(_raw(4), images)
        assert [p.number for p in out.pages] == [1, 2, 3, 4]
        assert [p.text for p in out.pages] == ["page 1", "page 2", "page 3", "page 4"]
        assert all(p.engine == "rendezvous_test" and len(p.attempts) == 1 for p in out.pages)
        # one worker: the first read waits for a partner that never comes and times out
        barrier.reset()
        r1 = OcrRouter(image_engines=["rendezvous_test"], page_workers=1, page_timeout_s=1)
        t0 = time.perf_counter()
        page = r1.ocr_document(_raw(1), images[:1]).pages[0]
        assert page.text == "" and "timed out" in page.route_reason
        assert time.perf_counter() - t0 < 10
    finally:
        barrier.abort()
        unregister_engine("rendezvous_test")


def test_tesseract_pages_in_parallel_read_like_sequential():
    font = ImageFont.truetype(FONT, 36)
    images = []
    for i in range(4):
        im = Image.new("L", (1200, 300), 255)
        ImageDraw.Draw(im).text((40, 100), f"Rechnung Nummer {1000 + i} Summe {i},50 EUR", font=font, fill=0)
        images.append(im)
    raw = _raw(4)
    seq = OcrRouter(image_engines=["tesseract"], page_workers=1).ocr_document(raw, images)
    par = OcrRouter(image_engines=["tesseract"], page_workers=3).ocr_document(raw, images)
    assert [p.text for p in par.pages] == [p.text for p in seq.pages]
    assert [p.confidence for p in par.pages] == [p.confidence for p in seq.pages]
    assert all(f"{1000 + i}" in p.text for i, p in enumerate(par.pages))


class _BatchLog:
    calls: list[int] = []
    fail = False


def _register_batching(name: str = "batching_test", batch: int = 3):
    class BatchingOptions(EngineOptions):
        kind: Literal["batching_test"] = "batching_test"

    class Batching(OcrEngine):
        """A GPU-style engine: one read_batch call for several pages (like one generate() call)."""

        compute = "gpu"
        options_class = BatchingOptions

        @property
        def batch_size(self) -> int:
            return batch

        def read_batch(self, page_images, raw_pages):
            _BatchLog.calls.append(len(page_images))
            if _BatchLog.fail:
                raise RuntimeError("CUDA out of memory")
            return [EngineOutput(text=f"batched page {p.number}", confidence=0.9) for p in raw_pages]

        def read(self, page_image, raw_page):
            return self.read_batch([page_image], [raw_page])[0]

    Batching.name = name
    register_engine(Batching)


def test_router_batches_pages_for_batching_engines():
    _BatchLog.calls, _BatchLog.fail = [], False
    _register_batching()
    try:
        r = OcrRouter(image_engines=["batching_test"], page_workers=2)
        out = r.ocr_document(_raw(5), [Image.new("L", (40, 20), 255) for _ in range(5)])
        assert _BatchLog.calls == [3, 2]  # two generate() calls for five pages
        assert [p.text for p in out.pages] == [f"batched page {i}" for i in range(1, 6)]
        assert all("read it in a batch of" in p.route_reason for p in out.pages)
        assert all(p.attempts[0].seconds >= 0 and p.compute == "gpu" for p in out.pages)
        # one page alone is read like any other (no batch note)
        _BatchLog.calls = []
        single = r.ocr_document(_raw(1), [Image.new("L", (40, 20), 255)])
        assert _BatchLog.calls == [1] and "batch" not in single.pages[0].route_reason
    finally:
        unregister_engine("batching_test")


def test_failed_batch_sends_every_page_to_the_fallback():
    _BatchLog.calls, _BatchLog.fail = [], True
    _register_batching()
    font = ImageFont.truetype(FONT, 36)
    images = []
    for i in range(2):
        im = Image.new("L", (1000, 200), 255)
        ImageDraw.Draw(im).text((40, 70), f"Lieferschein {500 + i}", font=font, fill=0)
        images.append(im)
    try:
        r = OcrRouter(image_engines=["batching_test", "tesseract"])
        out = r.ocr_document(_raw(2), images)
        assert _BatchLog.calls == [2]
        for i, p in enumerate(out.pages):
            assert [a.engine for a in p.attempts] == ["batching_test", "tesseract"]
            assert "CUDA out of memory" in p.attempts[0].error and p.engine == "tesseract"
            assert f"{500 + i}" in p.text
    finally:
        _BatchLog.fail = False
        unregister_engine("batching_test")
