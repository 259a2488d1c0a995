"""`ocr_pages`: every page read by the engine the router picks (thin: the router does the work)."""


import io
import statistics

from dagster import AssetExecutionContext, MetadataValue, Output, asset
from PIL import Image

from idp_assets.common import ASSET_GROUP, DOCUMENT_BACKFILL_POLICY, PARTITIONS, check_result, check_spec, timed
from idp_assets.budget import budgeted
from idp_assets.compute import compute_op_tags, ocr_compute
from idp_assets.versions import configured_ocr_code_version
from idp_assets.documents import page_source
from idp_assets.logic.pages import page_image_loader
from idp_assets.models import OcrPages, RawPages
from resources.ocr.router import OcrRouter
from resources.storage import DocumentStore


OCR_COMPUTE = ocr_compute()


def pool_occupancy(instance, pools=("cpu", "gpu")) -> dict[str, float]:
    """Share of each Dagster pool in use or queued for ((active + pending) / limit); pools without a limit are left out."""
    out: dict[str, float] = {}
    storage = getattr(instance, "event_log_storage", None)
    for pool in pools:
        try:
            info = storage.get_concurrency_info(pool)
        except Exception:  # noqa: BLE001 - storages without pool support: occupancy unknown
            continue
        limit = info.limit or info.slot_count
        if not limit:
            continue
        active = info.active_slot_count
        pending = info.pending_step_count
        active = active() if callable(active) else active
        pending = pending() if callable(pending) else pending
        out[pool] = round((active + pending) / limit, 3)
    return out


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version=configured_ocr_code_version(),
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    pool=OCR_COMPUTE,
    op_tags=compute_op_tags(OCR_COMPUTE),
    description="Routed OCR per page: the born-digital text layer where complete, image OCR otherwise.",
    check_specs=[
        check_spec("ocr_pages", "text_or_reason", "every page has text or an explicit reason why not"),
        check_spec("ocr_pages", "confidence_in_range", "every page confidence is in [0, 1]"),
    ],
)
@budgeted("ocr_pages")
def ocr_pages(context: AssetExecutionContext, raw_pages: RawPages, ocr_router: OcrRouter, document_store: DocumentStore):
    images = []
    for p in raw_pages.pages:
        if p.image_key:
            with Image.open(io.BytesIO(document_store.get(p.image_key))) as im:
                im.load()
                images.append(im.copy())
        else:
            images.append(None)
    # pages without a stored image (complete text layer) are rendered only if a fallback needs them
    render = page_image_loader(page_source(document_store, raw_pages), raw_pages, dpi=ocr_router.dpi) \
        if raw_pages.kind == "pdf" else None
    with timed() as t:
        occupancy = pool_occupancy(context.instance) if ocr_router.gpu_engines else {}
        result = ocr_router.ocr_document(raw_pages, images, render=render, occupancy=occupancy)
    confs = [p.confidence for p in result.pages if p.confidence is not None]
    engines = sorted({p.engine for p in result.pages})
    per_engine = {e: sum(1 for p in result.pages if p.engine == e) for e in engines}
    fallbacks = sum(1 for p in result.pages if len(p.attempts) > 1)
    yield Output(
        result,
        metadata={
            "page_count": len(result.pages),
            "engines": ", ".join(engines),
            "pages_per_engine": MetadataValue.json(per_engine),
            "pages_with_fallback": fallbacks,
            "compute": OCR_COMPUTE,
            "mean_confidence": round(statistics.fmean(confs), 4) if confs else None,
            "seconds": t["seconds"],
            "pages_per_second": round(len(result.pages) / t["seconds"], 3) if t["seconds"] else None,
            "routes": MetadataValue.json({str(p.number): f"{p.engine}: {p.route_reason}" for p in result.pages}),
            # one entry per page (engine, seconds spent on it, confidence): feeds the Prometheus exporter
            "page_stats": MetadataValue.json([
                {"engine": p.engine, "seconds": round(sum(a.seconds for a in p.attempts), 4), "confidence": p.confidence}
                for p in result.pages
            ]),
        },
    )
    missing = [p.number for p in result.pages if not p.text.strip() and not p.empty_reason]
    yield check_result("ocr_pages", "text_or_reason", not missing, pages_without_text_or_reason=missing)
    bad = [p.number for p in result.pages if p.confidence is not None and not 0.0 <= p.confidence <= 1.0]
    yield check_result("ocr_pages", "confidence_in_range", not bad, pages_out_of_range=bad)
