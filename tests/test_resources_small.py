"""Document store (local folder and a real S3 server), supplier master import/export."""

import hashlib

import pytest

from resources.storage import DocumentStore, original_key, safe_key
from resources.suppliers_db import SupplierMaster


def test_local_store_roundtrip_and_idempotent(tmp_path):
    store = DocumentStore(root=str(tmp_path / "store"))
    data = b"%PDF-1.4 hello"
    doc = hashlib.sha256(data).hexdigest()
    uri1 = store.put_original(doc, data)
    uri2 = store.put_original(doc, data)
    assert uri1 == uri2 and store.get_original(doc) == data
    store.put_source_record(doc, {"uri": "file:///a.pdf", "filename": "a.pdf"})
    store.put_source_record(doc, {"uri": "file:///a.pdf", "filename": "a.pdf"})
    store.put_source_record(doc, {"uri": "file:///b.pdf", "filename": "b.pdf"})
    assert [r["filename"] for r in store.get_source_records(doc)] == ["a.pdf", "b.pdf"]
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert all(".tmp-" not in p.name for p in files)


def _listing_and_delete(store):
    store.put("retired/ab/one.json", b"1")
    store.put("retired/cd/two.json", b"2")
    store.put("other/three.json", b"3")
    assert sorted(store.list_keys("retired/")) == ["retired/ab/one.json", "retired/cd/two.json"]
    assert list(store.list_keys("retired/ab/")) == ["retired/ab/one.json"]
    assert list(store.list_keys("nothing/")) == []
    store.delete("retired/ab/one.json")
    store.delete("retired/ab/one.json")  # gone already: no error
    assert not store.exists("retired/ab/one.json") and store.exists("retired/cd/two.json")
    assert list(store.list_keys("retired/")) == ["retired/cd/two.json"]


def test_local_store_lists_and_deletes(tmp_path):
    _listing_and_delete(DocumentStore(root=str(tmp_path / "store")))


def test_s3_store_lists_and_deletes(s3_client):
    store = DocumentStore(kind="s3", **s3_client.settings(), prefix="listed")
    store.ensure_bucket()
    _listing_and_delete(store)


@pytest.mark.parametrize("bad", ["..", "a/b", "", ".hidden", "x\ny"])
def test_unsafe_keys_rejected(bad):
    with pytest.raises(ValueError):
        safe_key("artifacts", bad)


def test_original_key_needs_sha256():
    with pytest.raises(ValueError):
        original_key("../../etc/passwd")


def test_s3_store_on_real_server(s3_client):
    store = DocumentStore(kind="s3", **s3_client.settings(), prefix="docs")
    store.ensure_bucket()
    data = b"bytes in s3"
    doc = hashlib.sha256(data).hexdigest()
    uri = store.put_original(doc, data)
    assert uri == f"s3://{s3_client.bucket}/docs/originals/{doc[:2]}/{doc}"
    assert store.get_original(doc) == data and store.exists(original_key(doc))
    keys = [o["Key"] for o in s3_client.client.list_objects_v2(Bucket=s3_client.bucket)["Contents"]]
    assert keys == [f"docs/originals/{doc[:2]}/{doc}"]


def test_supplier_import_reports_bad_rows_and_upserts(tmp_path):
    m = SupplierMaster(path=str(tmp_path / "s.sqlite"))
    csv1 = (
        "supplier_id,name,vat_id,tax_number,iban,street,postal_code,city,country,aliases\n"
        "S1,Muster GmbH,DE 123 456 789,,DE89 3704 0044 0532 0130 00,Hauptstr. 1,10115,Berlin,DE,Muster|MGB\n"
        ",no id,,,,,,,,\n"
        "S2,Beispiel AG,,,,,,Muenchen,DE,\n"
    )
    rep = m.import_csv(csv1)
    assert rep.imported == 2 and [(r.line, r.message) for r in rep.rejected] == [(3, "supplier_id and name are required")]
    v1 = m.version()
    m.import_csv("supplier_id,name\nS2,Beispiel Aktiengesellschaft\n")
    assert m.version() != v1
    hits = m.by_identifiers({"DE123456789"}, set())
    assert [(s.supplier_id, how) for s, how in hits] == [("S1", "vat_id")]
    assert hits[0][0].aliases == ["Muster", "MGB"]
    out = m.export_csv().splitlines()
    assert out[0].startswith("supplier_id,name") and any("Beispiel Aktiengesellschaft" in line for line in out)
