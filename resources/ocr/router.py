"""Which engine reads which page, with fallbacks; the `OcrRouter` Dagster resource.

`route_page` is a pure function: born-digital pages whose text layer is
complete go to the text layer, everything else to the first healthy image
engine (Tesseract by default), office documents to docling's text.
`OcrRouter.ocr_document` runs the chosen engine, records every attempt with
its timing, and falls back to the next engine when one fails or reports a
confidence below `min_confidence`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from dagster import ConfigurableResource
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from idp_assets.logic.pages import text_layer_is_complete, text_validity
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


class OcrRouter(ConfigurableResource):
    """Routes every page to an engine, runs it, falls back on failure or low confidence."""

    languages: str = Field(default="deu+eng", description="Tesseract languages, '+'-joined")
    dpi: int = Field(default=300, description="resolution PDF pages are rendered at when a fallback needs an image")
    min_confidence: float = Field(default=0.6, description="below this an engine's page result triggers the fallback")
    tesseract_psm: int = Field(default=3, description="Tesseract page segmentation mode")
    detect_orientation: bool = True
    image_engines: list[str] = Field(default=["tesseract"], description="image engines in order of preference")
    force_engine: str | None = Field(default=None, description="use this engine for every page (if healthy)")

    _engines: dict = PrivateAttr(default_factory=dict)
    _health: dict | None = PrivateAttr(default=None)

    # -- engines ---------------------------------------------------------------
    def prefs(self) -> RoutePrefs:
        return RoutePrefs(image_engines=tuple(self.image_engines), force_engine=self.force_engine)

    def engine_options(self, name: str) -> dict:
        if name == "tesseract":
            return {"lang": self.languages, "psm": self.tesseract_psm, "detect_orientation": self.detect_orientation}
        return {}

    def engine(self, name: str) -> OcrEngine:
        if name not in self._engines:
            self._engines[name] = get_engine(name, **self.engine_options(name))
        return self._engines[name]

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
    def ocr_page(
        self,
        raw_page: RawPage,
        image,
        *,
        kind: str = "pdf",
        render: Callable[[int], object] | None = None,
    ) -> OcrPage:
        health = self.engines_health()
        prefs = self.prefs()
        first, reason = route_page(raw_page, health, prefs, kind=kind)
        chain = engine_chain(first, raw_page, health, prefs, kind=kind)
        attempts: list[EngineAttempt] = []
        notes: list[str] = []
        best: tuple[str, EngineOutput] | None = None
        accepted = False
        for name in chain:
            engine = self.engine(name)
            t0 = time.perf_counter()
            try:
                page_image = image
                if "image" in engine.inputs and page_image is None and render is not None:
                    page_image = render(raw_page.number)
                out = engine.read(page_image, raw_page)
            except Exception as exc:  # noqa: BLE001 - record and fall back
                attempts.append(
                    EngineAttempt(
                        engine=name, seconds=round(time.perf_counter() - t0, 4), ok=False, error=f"{type(exc).__name__}: {exc}"
                    )
                )
                notes.append(f"{name} failed ({type(exc).__name__})")
                continue
            seconds = round(time.perf_counter() - t0, 4)
            if out.confidence is not None and out.confidence >= self.min_confidence:
                attempts.append(EngineAttempt(engine=name, seconds=seconds, confidence=out.confidence, ok=True))
                best, accepted = (name, out), True
                break
            why = "no text found" if out.confidence is None else f"confidence {out.confidence:.2f} < {self.min_confidence:.2f}"
            attempts.append(EngineAttempt(engine=name, seconds=seconds, confidence=out.confidence, ok=True, error=why))
            notes.append(f"{name}: {why}")
            if best is None or (out.confidence or -1.0) > (best[1].confidence or -1.0):
                best = (name, out)

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

    def _compute(self, name: str | None) -> str:
        if not name:
            return "cpu"
        try:
            return self.engine(name).compute
        except Exception:  # noqa: BLE001
            return "cpu"

    def ocr_document(
        self,
        raw: RawPages,
        images: Sequence | None = None,
        *,
        render: Callable[[int], object] | None = None,
    ) -> OcrPages:
        """Read every page of `raw`; `images[i]` is the image of `raw.pages[i]` (or None).

        `render(page_number)` (e.g. `pages.page_image_loader(data, raw)`) supplies an
        image when a page without one must fall back to an image engine.
        """
        images = list(images) if images is not None else [None] * len(raw.pages)
        if len(images) != len(raw.pages):
            raise ValueError(f"{len(images)} images for {len(raw.pages)} pages")
        if raw.kind == "office" and raw.pages:
            page = raw.pages[0]
            if raw.office_text is not None and page.text_layer != raw.office_text:
                page = page.model_copy(update={"text_layer": raw.office_text})
            return OcrPages(document_id=raw.document_id, pages=[self.ocr_page(page, None, kind="office")])
        return OcrPages(
            document_id=raw.document_id,
            pages=[self.ocr_page(p, img, kind=raw.kind, render=render) for p, img in zip(raw.pages, images)],
        )


__all__ = ["OcrRouter", "RoutePrefs", "route_page", "engine_chain", "text_layer_verdict"]
