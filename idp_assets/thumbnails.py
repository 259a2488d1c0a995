"""`page_thumbnails`: a small PNG per page (long side <= 256 px) in the thumbnails bucket, previewed in the UI."""


import base64
import io
from collections.abc import Callable

from dagster import AssetExecutionContext, MetadataValue, Output, asset
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from idp_assets.common import ASSET_GROUP, DOCUMENT_BACKFILL_POLICY, PARTITIONS, check_result, check_spec, timed
from idp_assets.budget import budgeted
from idp_assets.documents import page_source
from idp_assets.logic.pages import normalize_image_mode, page_image_loader
from idp_assets.models import RawPages
from resources.storage import DocumentStore

MAX_SIDE = 256
PREVIEW_PAGES = 3  # inline previews in the asset metadata (first pages)
PREVIEW_MAX_BYTES = 120_000  # upper bound on the inline base64 in one materialization event


class PageThumbnail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=1)
    uri: str
    width: int
    height: int
    bytes: int


class PageThumbnails(BaseModel):
    model_config = ConfigDict(extra="forbid")
    document_id: str
    thumbnails: list[PageThumbnail]
    missing: dict[int, str] = Field(default_factory=dict, description="page number -> why it has no thumbnail")


def thumbnail_png(image: Image.Image, max_side: int = MAX_SIDE) -> tuple[bytes, int, int]:
    """PNG bytes of `image` scaled down (aspect kept) so its long side is at most `max_side`; (png, width, height)."""
    im = normalize_image_mode(image)
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")
    im = im.copy()
    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue(), im.width, im.height


def thumbnail_dpi(page_width_pt: float | None, page_height_pt: float | None, max_side: int = MAX_SIDE) -> float:
    """Render resolution for a PDF page: twice the thumbnail size (for a clean downscale), at most 72 dpi."""
    long_pt = max(page_width_pt or 0.0, page_height_pt or 0.0) or 842.0  # A4 height when unknown
    return min(72.0, 2 * max_side * 72.0 / long_pt)


def page_sources(raw: RawPages, store: DocumentStore) -> dict[int, Callable[[], Image.Image | None]]:
    """page number -> loader of a page image: the stored page PNG, else the PDF page rendered at thumbnail size."""
    original: list[bytes] = []

    def stored(key: str):
        def load():
            with Image.open(io.BytesIO(store.get(key))) as im:
                im.load()
                return im.copy()
        return load

    def rendered(page):
        def load():
            if not original:
                original.append(page_source(store, raw))
            dpi = thumbnail_dpi(page.page_width_pt, page.page_height_pt)
            return page_image_loader(original[0], raw, dpi=dpi)(page.number)
        return load

    out: dict[int, Callable[[], Image.Image | None]] = {}
    for page in raw.pages:
        if page.image_key:
            out[page.number] = stored(page.image_key)
        elif raw.kind == "pdf":
            out[page.number] = rendered(page)
        else:
            out[page.number] = lambda: None  # office documents have no page image
    return out


def preview_markdown(pngs: list[tuple[int, bytes]], uris: dict[int, str], total_pages: int) -> str:
    lines, used = [], 0
    for number, png in pngs[:PREVIEW_PAGES]:
        b64 = base64.b64encode(png).decode("ascii")
        if used and used + len(b64) > PREVIEW_MAX_BYTES:
            break
        used += len(b64)
        lines.append(f"**page {number}** `{uris[number]}`\n\n![page {number}](data:image/png;base64,{b64})\n")
    shown = len(lines)
    if total_pages > shown:
        lines.append(f"_{total_pages - shown} more page(s): see `paths`_")
    return "\n".join(lines)


@asset(
    partitions_def=PARTITIONS,
    group_name=ASSET_GROUP,
    code_version="1",
    backfill_policy=DOCUMENT_BACKFILL_POLICY,
    description=f"Page thumbnails (PNG, long side <= {MAX_SIDE} px) in the thumbnails bucket; first pages previewed here.",
    check_specs=[check_spec("page_thumbnails", "one_per_page", "every page with an image has a thumbnail"),
                 check_spec("page_thumbnails", "max_side", f"no thumbnail is larger than {MAX_SIDE} px")],
)
@budgeted("page_thumbnails")
def page_thumbnails(context: AssetExecutionContext, raw_pages: RawPages, document_store: DocumentStore):
    doc_id = raw_pages.document_id
    thumbs: list[PageThumbnail] = []
    pngs: list[tuple[int, bytes]] = []
    missing: dict[int, str] = {}
    with timed() as t:
        for number, load in page_sources(raw_pages, document_store).items():
            try:
                image = load()
            except Exception as exc:  # noqa: BLE001 - one unreadable page must not hide the others
                missing[number] = f"{type(exc).__name__}: {exc}"[:300]
                context.log.warning(f"document {doc_id[:12]} page {number}: no thumbnail ({missing[number]})")
                continue
            if image is None:
                missing[number] = f"no page image for kind {raw_pages.kind!r}"
                continue
            png, w, h = thumbnail_png(image)
            uri = document_store.put_thumbnail(doc_id, number, png)
            thumbs.append(PageThumbnail(number=number, uri=uri, width=w, height=h, bytes=len(png)))
            pngs.append((number, png))
    result = PageThumbnails(document_id=doc_id, thumbnails=thumbs, missing=missing)
    uris = {th.number: th.uri for th in thumbs}
    metadata = {
        "page_count": len(raw_pages.pages),
        "thumbnails": len(thumbs),
        "paths": MetadataValue.json(uris),
        "seconds": t["seconds"],
    }
    if pngs:
        metadata["preview"] = MetadataValue.md(preview_markdown(pngs, uris, len(thumbs)))
    if missing:
        metadata["missing"] = MetadataValue.json({str(k): v for k, v in missing.items()})
    yield Output(result, metadata=metadata)
    failed = {k: v for k, v in missing.items() if not v.startswith("no page image")}
    yield check_result("page_thumbnails", "one_per_page", not failed, pages_without_thumbnail=failed)
    too_big = [th.number for th in thumbs if max(th.width, th.height) > MAX_SIDE]
    yield check_result("page_thumbnails", "max_side", not too_big, pages_too_big=too_big)
