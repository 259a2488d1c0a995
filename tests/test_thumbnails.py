"""`page_thumbnails`: one PNG (long side <= 256 px) per page in the document store, previewed in the metadata."""

from __future__ import annotations

import base64
import io
import re

from dagster import AssetKey
from PIL import Image

from idp_assets.documents import raw_pages, source_documents
from idp_assets.thumbnails import MAX_SIDE, PageThumbnails, page_thumbnails, thumbnail_dpi, thumbnail_png
from resources.storage import DocumentStore
from tests.fixtures.documents import materialize_document
from tests.test_pages import encode, make_pdf, text_image

ASSETS = [source_documents, raw_pages, page_thumbnails]
KEY = AssetKey("page_thumbnails")


def _png_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        return im.size


def _thumbs(result) -> PageThumbnails:
    return result.output_for_node("page_thumbnails")


def _metadata(result) -> dict:
    mats = [m for m in result.get_asset_materialization_events() if m.asset_key == KEY]
    assert len(mats) == 1
    return mats[0].step_materialization_data.materialization.metadata


def _checks(result) -> dict[str, bool]:
    return {e.event_specific_data.check_name: e.event_specific_data.passed
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.event_specific_data.asset_key == KEY}


def test_thumbnail_png_keeps_aspect_and_caps_long_side():
    png, w, h = thumbnail_png(Image.new("RGB", (2480, 3508), "white"))
    assert (w, h) == _png_size(png) and h == MAX_SIDE and w == round(2480 * MAX_SIDE / 3508)
    png, w, h = thumbnail_png(Image.new("L", (100, 40), 0))  # small images are not blown up
    assert (w, h) == (100, 40)
    assert thumbnail_dpi(595, 842) == 2 * MAX_SIDE * 72 / 842 and thumbnail_dpi(100, 100) == 72


def test_pdf_pages_get_thumbnails_in_local_store(tmp_path):
    store = DocumentStore(root=str(tmp_path / "store"))
    pdf = make_pdf(["first page of the invoice", "second page", "third page", "fourth page"])
    result, doc_id = materialize_document(ASSETS, {"document_store": store}, pdf, "four.pdf")
    assert result.success
    thumbs = _thumbs(result)
    assert [t.number for t in thumbs.thumbnails] == [1, 2, 3, 4] and not thumbs.missing
    for t in thumbs.thumbnails:
        png = store.get_thumbnail(doc_id, t.number)
        assert _png_size(png) == (t.width, t.height) and len(png) == t.bytes
        assert max(t.width, t.height) == MAX_SIDE  # A4 portrait, rendered at thumbnail size
        assert t.uri == (tmp_path / "store" / "thumbnails" / doc_id / f"p{t.number:04d}.png").resolve().as_uri()
    # the page text is visible: the thumbnail is not blank
    with Image.open(io.BytesIO(store.get_thumbnail(doc_id, 1))) as im:
        assert min(im.convert("L").getdata()) < 128

    md = _metadata(result)
    assert md["thumbnails"].value == 4 and md["page_count"].value == 4
    assert md["paths"].value == {str(t.number): t.uri for t in thumbs.thumbnails}
    preview = md["preview"].value
    images = re.findall(r"!\[page (\d+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", preview)
    assert [n for n, _ in images] == ["1", "2", "3"]
    assert base64.b64decode(images[0][1]) == store.get_thumbnail(doc_id, 1)
    assert "1 more page(s)" in preview
    assert _checks(result) == {"one_per_page": True, "max_side": True}


def test_scanned_image_uses_stored_page_image(tmp_path):
    store = DocumentStore(root=str(tmp_path / "store"))
    scan = encode(text_image(["Rechnung 4711", "Summe 12,50 EUR"], size=(1700, 1100)), "PNG")
    result, doc_id = materialize_document(ASSETS, {"document_store": store}, scan, "scan.png")
    assert result.success
    raw = result.output_for_node("raw_pages")
    assert raw.kind == "image" and raw.pages[0].image_key
    (t,) = _thumbs(result).thumbnails
    assert (t.width, t.height) == (MAX_SIDE, round(1100 * MAX_SIDE / 1700)) == _png_size(store.get_thumbnail(doc_id, 1))
    assert _checks(result)["one_per_page"]


def test_thumbnails_bucket_on_s3(s3_client):
    thumbs_bucket = f"{s3_client.bucket}-thumbs"
    s3_client.client.create_bucket(Bucket=thumbs_bucket)
    store = DocumentStore(kind="s3", prefix="idp", thumbnails_bucket=thumbs_bucket, **s3_client.settings())
    result, doc_id = materialize_document(ASSETS, {"document_store": store}, make_pdf(["a", "b"]), "two.pdf")
    assert result.success
    thumbs = _thumbs(result)
    assert [t.uri for t in thumbs.thumbnails] == [
        f"s3://{thumbs_bucket}/idp/thumbnails/{doc_id}/p{n:04d}.png" for n in (1, 2)]
    listed = s3_client.client.list_objects_v2(Bucket=thumbs_bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == [f"idp/thumbnails/{doc_id}/p0001.png", f"idp/thumbnails/{doc_id}/p0002.png"]
    head = s3_client.client.head_object(Bucket=thumbs_bucket, Key=f"idp/thumbnails/{doc_id}/p0002.png")
    assert head["ContentType"] == "image/png"
    assert max(_png_size(store.get_thumbnail(doc_id, 2))) == MAX_SIDE
    # the originals stay in the store bucket; no thumbnail lands there
    keys = [o["Key"] for o in s3_client.client.list_objects_v2(Bucket=s3_client.bucket)["Contents"]]
    assert not [k for k in keys if "/thumbnails/" in k] and any("/originals/" in k for k in keys)
