"""Which engine reads which page, with fallbacks; the `OcrRouter` Dagster resource.

`route_page` is a pure function: born-digital pages whose text layer is
complete go to the text layer, everything else to image OCR, office documents
to docling's text.  For image OCR the router measures the page's features and
complexity (`idp_assets.logic.routing`, formula there) and `choose_engines`
orders the healthy engines: clean pages (complexity < `fast_below`) to the
fast engine (Tesseract), harder ones to the accurate one (RapidOCR), the
hardest to a configured, healthy GPU engine.  A fixed `image_engines` list
turns the complexity routing off.

`OcrRouter.ocr_document` reads a document's image pages in parallel
(`page_workers` threads; Tesseract and onnxruntime release the GIL, and every
thread leases its own engine instance from `resources.ocr.pool`) and runs the
chain for each page: each engine runs in a worker thread cut off after
`page_timeout_s`; an engine that fails, times out
or reports a confidence below `min_confidence` passes the page on to the next.
Every attempt is kept (engine, seconds, confidence, error) and the
`route_reason` says why the kept engine was chosen (complexity, fallbacks, and
the agreement with another engine's reading where two engines produced text).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from dagster import ConfigurableResource
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from idp_assets.logic.pages import deskew, text_layer_is_complete, text_validity
from idp_assets.logic.routing import choose_engines, complexity_score, page_features
from idp_assets.models import EngineAttempt, OcrPage, OcrPages, RawPage, RawPages
from resources.ocr.base import EngineOutput, OcrEngine
from resources.ocr.registry import UnknownEngineError, get_engine

Health = Mapping[str, tuple[bool, str]]


class RoutePrefs(BaseModel):
    """Routing preferences (engine names and the text-layer completeness thresholds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    text_engine: str = "text_layer"
    image_engines: tuple[str, ...] = ("tesseract",)
    office_engine: str = "docling"
    force_engine: str | None = None
    min_chars: int = 16
    min_valid_ratio: float = 0.9
    scan_coverage: float = 0.25
    min_chars_on_scan: int = 200


def _healthy(health: Health, name: str) -> bool:
    return bool(health.get(name, (False, "not available"))[0])


def text_layer_verdict(raw_page: RawPage, prefs: RoutePrefs | None = None) -> tuple[bool, str]:
    """(complete, human-readable why) for the page's PDF text layer."""
    prefs = prefs or RoutePrefs()
    chars, coverage = raw_page.text_layer_chars, raw_page.image_coverage
    valid = text_validity(raw_page.text_layer) if chars else 0.0
    complete = text_layer_is_complete(
        chars,
        coverage,
        valid,
        min_chars=prefs.min_chars,
        min_valid_ratio=prefs.min_valid_ratio,
        scan_coverage=prefs.scan_coverage,
        min_chars_on_scan=prefs.min_chars_on_scan,
    )
    if complete:
        return True, f"text layer complete ({chars} chars, {valid:.0%} mapped, images cover {coverage:.0%})"
    if chars == 0:
        return False, "no text layer" + (f" (images cover {coverage:.0%})" if coverage else "")
    if chars < prefs.min_chars:
        return False, f"text layer too short ({chars} chars)"
    if valid < prefs.min_valid_ratio:
        return False, f"text layer garbled (only {valid:.0%} of {chars} chars mapped)"
    return False, f"scanned page (images cover {coverage:.0%}, text layer only {chars} chars)"


def route_page(
    raw_page: RawPage,
    engines_health: Health,
    prefs: RoutePrefs | None = None,
    *,
    kind: str = "pdf",
) -> tuple[str | None, str]:
    """(engine name, reason) for one page; engine None when no healthy engine can read it.

    `engines_health` maps engine name -> (ok, reason) as returned by `OcrEngine.health()`;
    `kind` is RawPages.kind ("pdf", "image", "office").
    """
    prefs = prefs or RoutePrefs()
    forced_note = ""
    if prefs.force_engine:
        if _healthy(engines_health, prefs.force_engine):
            return prefs.force_engine, "forced by configuration"
        why = engines_health.get(prefs.force_engine, (False, "not registered"))[1]
        forced_note = f"forced engine {prefs.force_engine} unavailable ({why}); "
    if kind == "office":
        if _healthy(engines_health, prefs.office_engine):
            return prefs.office_engine, forced_note + "office document converted by docling"
        return None, forced_note + f"office engine {prefs.office_engine} unavailable"
    if kind == "image":
        complete, why = False, "image document"
    else:
        complete, why = text_layer_verdict(raw_page, prefs)
    if complete and _healthy(engines_health, prefs.text_engine):
        return prefs.text_engine, forced_note + why
    for name in prefs.image_engines:
        if _healthy(engines_health, name):
            return name, forced_note + why
    if raw_page.text_layer_chars and _healthy(engines_health, prefs.text_engine):
        return prefs.text_engine, forced_note + why + "; no healthy image engine, using the text layer as it is"
    down = ", ".join(f"{n}: {engines_health.get(n, (False, 'not registered'))[1]}" for n in prefs.image_engines)
    return None, forced_note + why + f"; no healthy engine ({down})"


def engine_chain(
    first: str | None, raw_page: RawPage, engines_health: Health, prefs: RoutePrefs | None = None, *, kind: str = "pdf"
) -> list[str]:
    """`first`, then the fallbacks: other healthy image engines, then the text layer if it has text."""
    prefs = prefs or RoutePrefs()
    if first is None:
        return []
    chain = [first]
    if kind == "office":
        return chain
    for name in prefs.image_engines:
        if name not in chain and _healthy(engines_health, name):
            chain.append(name)
    if (
        kind == "pdf"
        and raw_page.text_layer_chars
        and prefs.text_engine not in chain
        and _healthy(engines_health, prefs.text_engine)
    ):
        chain.append(prefs.text_engine)
    return chain


@dataclass
class PagePlan:
    """What the router decided for a page: engines in order, why, and the image they read."""

    chain: list[str]
    reason: str
    first: str | None
    image: object = None


@dataclass
class Prefetched:
    """A page's first attempt, already read in a batch: its output (or the batch's error) and time share."""

    engine: str
    result: EngineOutput | BaseException
    seconds: float
    batch: int


class EngineTimeout(TimeoutError):
    """An engine did not finish a page within the per-page timeout."""


def run_with_timeout(fn: Callable[[], EngineOutput], timeout_s: float | None) -> EngineOutput:
    """Run `fn` in a daemon worker thread; raise EngineTimeout after `timeout_s` seconds.

    The worker cannot be killed: it finishes in the background and its result is
    dropped, while the router goes on with the next engine.
    """
    if not timeout_s:
        return fn()
    box: dict = {}
    done = threading.Event()

    def work():
        try:
            box["out"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["exc"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="ocr-engine", daemon=True).start()
    if not done.wait(timeout_s):
        raise EngineTimeout(f"no result within {timeout_s:g} s")
    if "exc" in box:
        raise box["exc"]
    return box["out"]


def word_agreement(a: str, b: str) -> float | None:
    """F1 of the two texts' bags of lower-cased words (None when both are empty)."""
    wa = Counter(w.strip(".,:;()[]{}'\"").casefold() for w in a.split())
    wb = Counter(w.strip(".,:;()[]{}'\"").casefold() for w in b.split())
    wa.pop("", None)
    wb.pop("", None)
    na, nb = sum(wa.values()), sum(wb.values())
    if not na and not nb:
        return None
    common = sum((wa & wb).values())
    return 2 * common / (na + nb) if na + nb else 0.0


def _serialised(fn: Callable) -> Callable:
    lock = threading.Lock()

    def call(*args, **kwargs):
        with lock:
            return fn(*args, **kwargs)

    return call


class OcrRouter(ConfigurableResource):
    """Routes every page to an engine, runs it, falls back on failure or low confidence."""

    languages: str = Field(default="deu+eng", description="Tesseract languages, '+'-joined")
    dpi: int = Field(default=300, description="resolution PDF pages are rendered at when a fallback needs an image")
    min_confidence: float = Field(default=0.6, description="below this an engine's page result triggers the fallback")
    tesseract_psm: int = Field(default=3, description="Tesseract page segmentation mode")
    detect_orientation: bool = True
    image_engines: list[str] = Field(
        default=[], description="fixed image engine order; empty: order by page complexity (fast/accurate/gpu engines)"
    )
    fast_engines: list[str] = Field(default=["tesseract"], description="engines for clean pages (low complexity)")
    accurate_engines: list[str] = Field(default=["rapidocr"], description="engines for harder pages")
    gpu_engines: list[str] = Field(
        default=[], description="GPU engines for the hardest pages (used only when configured here and healthy)"
    )
    fast_below: float = Field(default=0.2, ge=0.0, le=1.0, description="complexity below which the fast engine leads")
    gpu_above: float = Field(default=0.5, ge=0.0, le=1.0, description="complexity from which a GPU engine leads")
    page_timeout_s: float = Field(default=120.0, gt=0, description="an engine still reading a page after this is cut off")
    deskew_min_deg: float = Field(default=1.0, ge=0.0, description="pages skewed at least this much are deskewed")
    max_attempts: int = Field(default=3, ge=1, description="engines tried per page at most")
    engine_min_confidence: dict[str, float] = Field(
        default={"tesseract": 0.9},
        description="per-engine acceptance thresholds (raise min_confidence for that engine). Tesseract's page confidence "
        "tracks word F1 closely on the corpus (r=0.92 on receipts), and below 0.9 RapidOCR reads those pages better",
    )
    force_engine: str | None = Field(default=None, description="use this engine for every page (if healthy)")
    page_workers: int = Field(
        default=0,
        ge=0,
        description="image pages of one document read at once (threads; engines release the GIL while reading); "
        "0 = the machine's CPU count, at most 4",
    )
    engine_settings: dict[str, dict] = Field(
        default_factory=dict, description="extra options per engine name (e.g. model paths of GPU engines)"
    )

    _engines: dict = PrivateAttr(default_factory=dict)
    _engines_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _health: dict | None = PrivateAttr(default=None)
    _prefs: RoutePrefs | None = PrivateAttr(default=None)

    # -- engines ---------------------------------------------------------------
    def all_image_engines(self) -> list[str]:
        if self.image_engines:
            return list(self.image_engines)
        return list(dict.fromkeys([*self.fast_engines, *self.accurate_engines, *self.gpu_engines]))

    def prefs(self) -> RoutePrefs:
        if self._prefs is None:  # the resource's configuration does not change: build it once
            self._prefs = RoutePrefs(image_engines=tuple(self.all_image_engines()), force_engine=self.force_engine)
        return self._prefs

    def engine_options(self, name: str) -> dict:
        opts = dict(self.engine_settings.get(name, {}))
        if name == "tesseract":
            opts = {"lang": self.languages, "psm": self.tesseract_psm, "detect_orientation": self.detect_orientation, **opts}
        elif name == "rapidocr":
            opts = {"detect_orientation": self.detect_orientation, **opts}
        return opts

    def engine(self, name: str) -> OcrEngine:
        engine = self._engines.get(name)
        if engine is None:
            with self._engines_lock:
                if name not in self._engines:
                    self._engines[name] = get_engine(name, **self.engine_options(name))
                engine = self._engines[name]
        return engine

    def workers(self) -> int:
        """Threads reading the image pages of one document (`page_workers`, 0 = CPU count, at most 4)."""
        return self.page_workers or max(1, min(4, os.cpu_count() or 1))

    def engines_health(self, refresh: bool = False) -> dict[str, tuple[bool, str]]:
        if self._health is None or refresh:
            prefs = self.prefs()
            names = {prefs.text_engine, prefs.office_engine, *prefs.image_engines}
            if prefs.force_engine:
                names.add(prefs.force_engine)
            health = {}
            for name in sorted(names):
                try:
                    health[name] = self.engine(name).health()
                except UnknownEngineError as exc:
                    health[name] = (False, str(exc))
                except Exception as exc:  # noqa: BLE001 - a broken engine is unhealthy, not fatal
                    health[name] = (False, f"{type(exc).__name__}: {exc}")
            self._health = health
        return self._health

    # -- reading -----------------------------------------------------------------
    def plan_page(
        self,
        raw_page: RawPage,
        image,
        *,
        kind: str = "pdf",
        render: Callable[[int], object] | None = None,
        occupancy: Mapping[str, float] | None = None,
    ) -> PagePlan:
        """The engine chain for one page, why, and the (rendered, deskewed) image to read."""
        health = self.engines_health()
        prefs = self.prefs()
        first, reason = route_page(raw_page, health, prefs, kind=kind)
        chain = engine_chain(first, raw_page, health, prefs, kind=kind)
        image_names = set(prefs.image_engines)
        if first in image_names and not self.image_engines and not (prefs.force_engine and first == prefs.force_engine):
            if image is None and render is not None:
                image = render(raw_page.number)
            chain, why, features = self.complexity_chain(raw_page, image, health, occupancy=occupancy)
            if chain:
                reason += "; " + why
                if features is not None and abs(features.skew_angle) >= self.deskew_min_deg:
                    image = deskew(image, features.skew_angle)
                    reason += f"; deskewed {features.skew_angle:+.1f} deg"
                if kind == "pdf" and raw_page.text_layer_chars and _healthy(health, prefs.text_engine):
                    chain.append(prefs.text_engine)
                first = chain[0]
        return PagePlan(chain=chain[: self.max_attempts], reason=reason, first=first, image=image)

    def ocr_page(
        self,
        raw_page: RawPage,
        image,
        *,
        kind: str = "pdf",
        render: Callable[[int], object] | None = None,
        occupancy: Mapping[str, float] | None = None,
        plan: PagePlan | None = None,
        prefetched: Prefetched | None = None,
    ) -> OcrPage:
        """Read one page along its plan's chain; `prefetched` is the first engine's result from a batch."""
        prefs = self.prefs()
        if plan is None:
            plan = self.plan_page(raw_page, image, kind=kind, render=render, occupancy=occupancy)
        chain, reason, first, image = plan.chain, plan.reason, plan.first, plan.image
        if prefetched is not None and chain and prefetched.engine == chain[0]:
            reason += f"; {prefetched.engine} read it in a batch of {prefetched.batch} pages"
        attempts: list[EngineAttempt] = []
        notes: list[str] = []
        best: tuple[str, EngineOutput] | None = None
        accepted = False
        readings: list[tuple[str, EngineOutput]] = []
        for i, name in enumerate(chain):
            engine = self.engine(name)
            t0 = time.perf_counter()
            try:
                if i == 0 and prefetched is not None and prefetched.engine == name:
                    # read in a batch with other pages; its share of the batch's time
                    t0 -= prefetched.seconds
                    if isinstance(prefetched.result, BaseException):
                        raise prefetched.result
                    out = prefetched.result
                else:
                    page_image = image
                    if "image" in engine.inputs and page_image is None and render is not None:
                        page_image = image = render(raw_page.number)
                    # image engines run in a worker thread that is cut off after page_timeout_s; text
                    # engines (text layer, office text) are bounded by the text size and run inline
                    timeout = self.page_timeout_s if "image" in engine.inputs else None
                    out = run_with_timeout(lambda e=engine, im=page_image: e.read(im, raw_page), timeout)
            except Exception as exc:  # noqa: BLE001 - record and fall back
                attempts.append(
                    EngineAttempt(
                        engine=name, seconds=round(time.perf_counter() - t0, 4), ok=False, error=f"{type(exc).__name__}: {exc}"
                    )
                )
                notes.append(f"{name} {'timed out' if isinstance(exc, EngineTimeout) else 'failed'} ({type(exc).__name__})")
                continue
            seconds = round(time.perf_counter() - t0, 4)
            if out.text.strip():
                readings.append((name, out))
            threshold = self._min_confidence_of(name)
            if out.confidence is not None and out.confidence >= threshold:
                attempts.append(EngineAttempt(engine=name, seconds=seconds, confidence=out.confidence, ok=True))
                best, accepted = (name, out), True
                break
            why = "no text found" if out.confidence is None else f"confidence {out.confidence:.2f} < {threshold:.2f}"
            attempts.append(EngineAttempt(engine=name, seconds=seconds, confidence=out.confidence, ok=True, error=why))
            notes.append(f"{name}: {why}")
            if best is None or (out.confidence or -1.0) > (best[1].confidence or -1.0):
                best = (name, out)
        if best is not None and len(readings) > 1:
            others = [(n, o) for n, o in readings if n != best[0]]
            if others:
                agreement = word_agreement(best[1].text, others[-1][1].text)
                if agreement is not None:
                    notes.append(f"agreement with {others[-1][0]} {agreement:.2f}")

        if best is None:
            empty = reason if first is None else "all engines failed: " + "; ".join(a.error or "" for a in attempts)
            return OcrPage(
                number=raw_page.number,
                width=raw_page.width,
                height=raw_page.height,
                dpi=raw_page.dpi,
                rotation=0,
                engine=first or "none",
                compute=self._compute(first),
                route_reason=reason + ("; " + "; ".join(notes) if notes else ""),
                confidence=None,
                text="",
                attempts=attempts,
                empty_reason=empty,
            )

        name, out = best
        route_reason = reason
        if notes:
            route_reason += "; " + "; ".join(notes)
            if name != first or not accepted:
                route_reason += f"; kept {name}" + ("" if accepted else " (best confidence)")
        text = out.text.strip()
        if name == prefs.text_engine and kind == "pdf" and raw_page.image_regions:
            extra, region_attempts, region_note = self._read_image_regions(raw_page, render)
            attempts.extend(region_attempts)
            route_reason += "; " + region_note
            if extra:
                text = "\n\n".join([text, *extra]) if text else "\n\n".join(extra)
        empty_reason = None
        if not text:
            if kind == "office":
                empty_reason = "the office document has no text"
            elif name == prefs.text_engine:
                empty_reason = "the text layer is empty"
            else:
                empty_reason = f"{name} recognised no text (blank page or no readable text)"
        return OcrPage(
            number=raw_page.number,
            width=out.width or raw_page.width,
            height=out.height or raw_page.height,
            dpi=out.dpi or raw_page.dpi,
            rotation=out.rotation,
            engine=name,
            compute=self._compute(name),
            route_reason=route_reason,
            confidence=out.confidence if text else None,
            text=text,
            words=out.words,
            attempts=attempts,
            empty_reason=empty_reason,
        )

    def _min_confidence_of(self, name: str) -> float:
        """The confidence an engine's reading needs to be kept: the router's floor or the engine's own."""
        return max(self.min_confidence, self.engine_min_confidence.get(name, 0.0))

    def _read_image_regions(self, raw_page: RawPage, render) -> tuple[list[str], list[EngineAttempt], str]:
        """OCR of the text-free pictures of a born-digital page (``RawPage.image_regions``: a
        letterhead or address block pasted in as an image): (their texts, the attempts, a note
        for the route reason). The first healthy image engine reads each region under the page
        time limit; a region read below the engine's confidence threshold adds nothing."""
        prefs = self.prefs()
        health = self.engines_health()
        engine_name = next((n for n in prefs.image_engines if _healthy(health, n)), None)
        n = len(raw_page.image_regions)
        if engine_name is None:
            return [], [], f"{n} picture(s) without text layer not read (no healthy image engine)"
        image = render(raw_page.number) if render is not None else None
        if image is None:
            return [], [], f"{n} picture(s) without text layer not read (page not renderable)"
        engine = self.engine(engine_name)
        threshold = self._min_confidence_of(engine_name)
        width_pt = raw_page.page_width_pt or 0.0
        dpi = image.width / (width_pt / 72.0) if width_pt else float(raw_page.dpi or 0.0)
        texts: list[str] = []
        attempts: list[EngineAttempt] = []
        for x0, y0, x1, y1 in raw_page.image_regions:
            box = (int(x0 * image.width), int(y0 * image.height), int(x1 * image.width) + 1, int(y1 * image.height) + 1)
            crop = image.crop(box)
            region = RawPage(number=raw_page.number, width=crop.width, height=crop.height, dpi=round(dpi, 3))
            t0 = time.perf_counter()
            try:
                out = run_with_timeout(lambda c=crop, r=region: engine.read(c, r), self.page_timeout_s)
            except Exception as exc:  # noqa: BLE001 - a picture that cannot be read adds nothing
                attempts.append(EngineAttempt(engine=engine_name, seconds=round(time.perf_counter() - t0, 4), ok=False,
                                              error=f"picture {box}: {type(exc).__name__}: {exc}"))
                continue
            seconds = round(time.perf_counter() - t0, 4)
            kept = bool(out.text.strip()) and out.confidence is not None and out.confidence >= threshold
            attempts.append(EngineAttempt(engine=engine_name, seconds=seconds, confidence=out.confidence, ok=True,
                                          error=None if kept else f"picture {box}: nothing kept"))
            if kept:
                texts.append(out.text.strip())
        return texts, attempts, f"{len(texts)} of {n} picture(s) without text layer read by {engine_name}"

    def complexity_chain(self, raw_page: RawPage, image, health: Health, *, occupancy: Mapping[str, float] | None = None):
        """(engines for an image page ordered by its measured complexity, reason, features or None)."""
        if image is None:
            chain, why = choose_engines(
                1.0, health, fast=self.fast_engines, accurate=self.accurate_engines, gpu=self.gpu_engines,
                fast_below=self.fast_below, gpu_above=self.gpu_above,
            )
            return chain, why + " (no page image to measure)", None
        features = page_features(
            image,
            dpi=raw_page.dpi,
            text_layer_chars=raw_page.text_layer_chars,
            image_coverage=raw_page.image_coverage,
        )
        score = complexity_score(features)
        compute_of = {}
        for name in self.gpu_engines:
            try:
                compute_of[name] = self.engine(name).compute
            except Exception:  # noqa: BLE001 - unknown engines are unhealthy anyway
                compute_of[name] = "gpu"
        chain, why = choose_engines(
            score,
            health,
            fast=self.fast_engines,
            accurate=self.accurate_engines,
            gpu=self.gpu_engines,
            fast_below=self.fast_below,
            gpu_above=self.gpu_above,
            occupancy=occupancy,
            compute_of=compute_of,
        )
        return chain, why, features

    def _compute(self, name: str | None) -> str:
        if not name:
            return "cpu"
        try:
            return self.engine(name).compute
        except Exception:  # noqa: BLE001
            return "cpu"

    def read_batches(self, pages: Sequence[RawPage], plans: Sequence[PagePlan]) -> dict[int, Prefetched]:
        """First attempts of pages whose lead engine reads batches (GPU engines: one `generate` call for
        up to `batch_size` pages), read batch by batch; page index -> its result or the batch's error.

        A batch gets `page_timeout_s` per page in it; a batch that fails or times out is recorded
        for each of its pages, which then go on to their fallback engines one by one.
        """
        groups: dict[str, list[int]] = {}
        for i, plan in enumerate(plans):
            if not plan.chain or plan.image is None:
                continue
            name = plan.chain[0]
            try:
                engine = self.engine(name)
            except Exception:  # noqa: BLE001 - unknown engines fail in ocr_page, with the reason recorded
                continue
            if engine.batch_size > 1 and callable(getattr(engine, "read_batch", None)) and "image" in engine.inputs:
                groups.setdefault(name, []).append(i)
        out: dict[int, Prefetched] = {}
        for name, idx in groups.items():
            if len(idx) < 2:
                continue  # a single page is read like any other
            engine = self.engine(name)
            for k in range(0, len(idx), engine.batch_size):
                chunk = idx[k : k + engine.batch_size]
                t0 = time.perf_counter()
                try:
                    results: list | BaseException = run_with_timeout(
                        lambda e=engine, c=chunk: e.read_batch([plans[j].image for j in c], [pages[j] for j in c]),
                        self.page_timeout_s * len(chunk),
                    )
                    if len(results) != len(chunk):
                        raise RuntimeError(f"{name} returned {len(results)} results for {len(chunk)} pages")
                except Exception as exc:  # noqa: BLE001 - every page of the batch falls back
                    results = exc
                share = (time.perf_counter() - t0) / len(chunk)
                for n, j in enumerate(chunk):
                    result = results if isinstance(results, BaseException) else results[n]
                    out[j] = Prefetched(engine=name, result=result, seconds=share, batch=len(chunk))
        return out

    def ocr_document(
        self,
        raw: RawPages,
        images: Sequence | None = None,
        *,
        render: Callable[[int], object] | None = None,
        occupancy: Mapping[str, float] | None = None,
    ) -> OcrPages:
        """Read every page of `raw`; `images[i]` is the image of `raw.pages[i]` (or None).

        `render(page_number)` (e.g. `pages.page_image_loader(data, raw)`) supplies an
        image when a page without one must fall back to an image engine.  `occupancy`
        maps a Dagster pool ('gpu', 'cpu') to its share in use (1 = full): a full GPU
        pool sends hard pages to the CPU engines first.
        """
        images = list(images) if images is not None else [None] * len(raw.pages)
        if len(images) != len(raw.pages):
            raise ValueError(f"{len(images)} images for {len(raw.pages)} pages")
        if raw.kind == "office" and raw.pages:
            page = raw.pages[0]
            if raw.office_text is not None and page.text_layer != raw.office_text:
                page = page.model_copy(update={"text_layer": raw.office_text})
            return OcrPages(document_id=raw.document_id, pages=[self.ocr_page(page, None, kind="office")])
        self.engines_health()  # once, before any worker thread needs it
        if render is not None:
            render = _serialised(render)  # pdfium is not thread-safe
        plans = [
            self.plan_page(p, img, kind=raw.kind, render=render, occupancy=occupancy)
            for p, img in zip(raw.pages, images)
        ]
        prefetched = self.read_batches(raw.pages, plans)

        def read(i: int) -> OcrPage:
            return self.ocr_page(raw.pages[i], plans[i].image, kind=raw.kind, render=render, plan=plans[i],
                                 prefetched=prefetched.get(i))

        # pages that need image OCR are read in parallel (page order is kept); text-layer
        # pages cost microseconds and are read inline
        image_pages = [i for i, plan in enumerate(plans) if plan.image is not None and i not in prefetched]
        workers = min(self.workers(), len(image_pages))
        if workers <= 1:
            pages = [read(i) for i in range(len(raw.pages))]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr-page") as pool:
                pages = list(pool.map(read, range(len(raw.pages))))
        return OcrPages(document_id=raw.document_id, pages=pages)


__all__ = [
    "OcrRouter",
    "RoutePrefs",
    "EngineTimeout",
    "route_page",
    "engine_chain",
    "text_layer_verdict",
    "run_with_timeout",
    "word_agreement",
]
