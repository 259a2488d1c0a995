"""Page images and field boxes for the review page, from the asset outputs of a document.

`raw_pages` and `ocr_pages` are loaded through the IO manager of the configured resources (as any
downstream step loads them); a PDF page is rendered at review size from the original (or the
e-invoice's view PDF), an image page is the stored page image scaled down; the stored thumbnail
(`page_thumbnails`) is the fallback.  Loaded outputs are cached per materialization run.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from dagster import AssetKey, AssetRecordsFilter, Definitions

from idp_api.boxes import Box, locate, ocr_words, pdf_words
from idp_assets.definitions import ALL_ASSETS
from idp_assets.documents import page_source
from idp_assets.logic.pages import page_image_loader

REVIEW_LONG_SIDE = 1100
TEXT_LAYER_ENGINE = "text_layer"


class PageViews:
    def __init__(self, instance, resources: dict, store, cache_size: int = 16):
        self.instance = instance
        self.store = store
        self.defs = Definitions(assets=ALL_ASSETS, resources=resources)
        self._cache: OrderedDict = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()

    def _run_of(self, asset: str, doc_id: str) -> str | None:
        recs = self.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey(asset), asset_partitions=[doc_id]), limit=1).records
        return recs[0].run_id if recs else None

    def output(self, asset: str, doc_id: str):
        """The latest materialized output of a document asset (None when there is none)."""
        run_id = self._run_of(asset, doc_id)
        if run_id is None:
            return None
        key = (asset, doc_id, run_id)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        with self.defs.get_asset_value_loader(instance=self.instance) as loader:
            value = loader.load_asset_value(AssetKey(asset), partition_key=doc_id)
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return value

    def page_png(self, doc_id: str, number: int) -> bytes | None:
        from PIL import Image

        raw = self.output("raw_pages", doc_id)
        if raw is None or not 1 <= number <= len(raw.pages):
            return None
        page = raw.pages[number - 1]
        image = None
        if raw.kind == "pdf":
            long_pt = max(page.page_width_pt or 0.0, page.page_height_pt or 0.0) or 842.0
            image = page_image_loader(page_source(self.store, raw), raw, dpi=REVIEW_LONG_SIDE * 72.0 / long_pt)(number)
        elif page.image_key:
            with Image.open(io.BytesIO(self.store.get(page.image_key))) as im:
                im.load()
                image = im.copy()
        if image is None:
            try:
                return self.store.get_thumbnail(doc_id, number)
            except (OSError, ValueError):
                return None
            except Exception:  # noqa: BLE001 - S3 NoSuchKey: no thumbnail for this page
                return None
        image.thumbnail((REVIEW_LONG_SIDE, REVIEW_LONG_SIDE))
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    def page_count(self, doc_id: str) -> int:
        raw = self.output("raw_pages", doc_id)
        return len(raw.pages) if raw is not None else 0

    def field_boxes(self, doc_id: str, fields: dict[str, dict]) -> dict[str, tuple[int, Box]]:
        """field name -> (page, box) for the fields whose printed text is found on their page."""
        ocr = self.output("ocr_pages", doc_id)
        raw = self.output("raw_pages", doc_id)
        if ocr is None or raw is None:
            return {}
        pdf: list[bytes] = []
        words_of: dict[int, tuple] = {}
        out: dict[str, tuple[int, Box]] = {}
        for name, f in fields.items():
            n = f.get("page")
            if not isinstance(n, int) or not 1 <= n <= len(ocr.pages):
                continue
            if n not in words_of:
                p = ocr.pages[n - 1]
                if p.words and not p.rotation:
                    words_of[n] = ocr_words(p)
                elif raw.kind == "pdf" and p.engine == TEXT_LAYER_ENGINE:
                    if not pdf:
                        pdf.append(page_source(self.store, raw))
                    words_of[n] = pdf_words(pdf[0], n)
                else:
                    words_of[n] = ([], 0.0, 0.0)
            words, w, h = words_of[n]
            previous = (f.get("review") or {}).get("previous") or {}
            needles = [x for x in (f.get("raw"), f.get("value"), previous.get("value")) if isinstance(x, str)]
            box = locate(needles, words, w, h)
            if box is not None:
                out[name] = (n, box)
        return out
