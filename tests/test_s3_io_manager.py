"""S3 IO manager and bucket layout against a real S3 server with SigV4 auth (SeaweedFS `weed mini`)."""

from __future__ import annotations

import json
import uuid

import pytest
from botocore.exceptions import ClientError
from dagster import AssetKey, DagsterInstance, EnvVar, asset, build_input_context, materialize

from idp_assets.documents import raw_pages, source_documents
from idp_assets.models import RawPages, SourceDocument
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME, documents_partitions
from idp_assets.settings import build_resources
from resources.buckets import BucketLayout
from resources.io_manager import S3IOError, S3PydanticIOManager, decode, encode
from resources.storage import DocumentStore
from tests.fixtures.documents import materialize_document
from tests.fixtures.seaweed import seaweed_s3  # noqa: F401 - session fixture (SeaweedFS server)
from tests.test_pages import make_pdf

pytestmark = pytest.mark.servers


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def buckets(seaweed_s3):  # noqa: F811
    """original / processed / thumbnails buckets (unique names) created through BucketLayout on SeaweedFS."""
    s = _suffix()
    layout = BucketLayout(**seaweed_s3.settings(), original_bucket=f"original-{s}", processed_bucket=f"processed-{s}",
                          thumbnails_bucket=f"thumbnails-{s}", original_storage_class=None)
    assert set(layout.ensure_buckets().values()) == {"created"}
    return layout


# ----------------------------------------------------------------------------- serialization (no server)


def test_envelope_round_trip_and_type_guard():
    doc = SourceDocument(document_id="a" * 64, uri="file:///x.pdf", filename="x.pdf", media_type="application/pdf",
                         bytes=3, store_uri="file:///store/x")
    data = encode(doc)
    assert json.loads(data)["type"] == "idp_assets.models.SourceDocument"
    assert decode(data, SourceDocument) == doc  # input annotation
    assert decode(data, None, ["idp_assets"]) == doc  # stored class path
    with pytest.raises(ValueError, match="outside the allowed model modules"):
        decode(data, None, ["resources"])
    forged = json.dumps({"type": "os.system", "value": "true"}).encode()
    with pytest.raises(ValueError, match="outside the allowed"):
        decode(forged, None, ["idp_assets"])
    assert decode(encode({"n": [1, 2]}), None, []) == {"n": [1, 2]}
    with pytest.raises(TypeError, match="pydantic models or JSON values"):
        encode(object())


def test_keys_follow_prefix_asset_path_partition():
    io = S3PydanticIOManager(bucket="processed", prefix="/idp/dagster/")
    assert io.object_key(["raw_pages"], "ab" * 32) == f"idp/dagster/raw_pages/{'ab' * 32}.json"
    assert io.object_key(["grp", "thing"]) == "idp/dagster/grp/thing.json"
    with pytest.raises(ValueError, match="partition key"):
        io.object_key(["raw_pages"], "../escape")


def test_settings_select_the_s3_io_manager():
    assert "io_manager" not in build_resources(env={}, data_dir="/tmp/idp-x")
    env = {"IDP_IO_MANAGER": "s3", "IDP_S3_ENDPOINT_URL": "http://127.0.0.1:8333", "AWS_ACCESS_KEY_ID": "k",
           "AWS_SECRET_ACCESS_KEY": "s3cr3t-value", "IDP_IO_BUCKET": "proc"}
    io = build_resources(env=env, data_dir="/tmp/idp-x")["io_manager"]
    assert isinstance(io, S3PydanticIOManager) and io.bucket == "proc" and io.prefix == "dagster"
    assert io.aws_secret_access_key == EnvVar("AWS_SECRET_ACCESS_KEY")  # resolved at run time, never inlined
    assert "io_manager" in build_resources(env={"IDP_STORE_KIND": "s3"}, data_dir="/tmp/idp-x")
    assert "io_manager" not in build_resources(env={"IDP_STORE_KIND": "s3", "IDP_IO_MANAGER": "fs"},
                                               data_dir="/tmp/idp-x")
    resolved = S3PydanticIOManager(aws_secret_access_key="s3cr3t-value")
    assert "s3cr3t-value" not in repr(resolved)


# ----------------------------------------------------------------------------- SeaweedFS


def test_unsigned_and_wrongly_signed_requests_are_refused(seaweed_s3, buckets):  # noqa: F811
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as anon:
        urllib.request.urlopen(f"{seaweed_s3.endpoint_url}/{buckets.processed_bucket}/")
    assert anon.value.code == 403
    with pytest.raises(ClientError) as bad:
        seaweed_s3.client(aws_secret_access_key="not-the-secret").list_objects_v2(Bucket=buckets.processed_bucket)
    assert bad.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_raw_pages_round_trip_through_s3(seaweed_s3, buckets):  # noqa: F811
    store = DocumentStore(kind="s3", bucket=buckets.original_bucket, **seaweed_s3.settings())
    io = S3PydanticIOManager(bucket=buckets.processed_bucket, prefix="idp/dagster", **seaweed_s3.settings())
    pdf = make_pdf(["Rechnung 4711 page one", "page two"])
    instance = DagsterInstance.ephemeral()
    result, doc_id = materialize_document([source_documents, raw_pages], {"document_store": store, "io_manager": io},
                                          pdf, "rechnung.pdf", instance=instance)
    assert result.success
    s3 = seaweed_s3.client()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=buckets.processed_bucket)["Contents"])
    assert keys == [f"idp/dagster/raw_pages/{doc_id}.json", f"idp/dagster/source_documents/{doc_id}.json"]
    stored = json.loads(s3.get_object(Bucket=buckets.processed_bucket, Key=keys[0])["Body"].read())
    assert stored["type"] == "idp_assets.models.RawPages" and len(stored["value"]["pages"]) == 2

    # raw_pages read source_documents back through the IO manager (a SourceDocument, not a dict)
    expected = result.output_for_node("raw_pages")
    for annotation in (RawPages, None):  # typed input, and an untyped one (stored class path)
        ctx = build_input_context(asset_key=AssetKey("raw_pages"), partition_key=doc_id, instance=instance,
                                  asset_partitions_def=documents_partitions,
                                  dagster_type=None if annotation is None else _dagster_type(annotation))
        loaded = io.load_input(ctx)
        assert isinstance(loaded, RawPages) and loaded == expected
    assert "Rechnung 4711" in loaded.pages[0].text_layer
    # with no importable model modules only the annotation can rebuild the model
    strict = S3PydanticIOManager(bucket=buckets.processed_bucket, prefix="idp/dagster", model_modules=[],
                                 **seaweed_s3.settings())
    ctx = build_input_context(asset_key=AssetKey("raw_pages"), partition_key=doc_id, instance=instance,
                              asset_partitions_def=documents_partitions, dagster_type=_dagster_type(RawPages))
    assert strict.load_input(ctx) == expected
    with pytest.raises(ValueError, match="outside the allowed model modules"):
        strict.load_input(build_input_context(asset_key=AssetKey("raw_pages"), partition_key=doc_id, instance=instance,
                                              asset_partitions_def=documents_partitions))
    mats = {m.asset_key: m.step_materialization_data.materialization.metadata
            for m in result.get_asset_materialization_events()}
    assert mats[AssetKey("raw_pages")]["s3_uri"].value == f"s3://{buckets.processed_bucket}/{keys[0]}"


def _dagster_type(py_type):
    from dagster._core.types.dagster_type import resolve_dagster_type

    return resolve_dagster_type(py_type)


@asset(partitions_def=documents_partitions)
def tiny() -> SourceDocument:
    return SourceDocument(document_id="b" * 64, uri="u", filename="f", media_type="application/pdf", bytes=1,
                          store_uri="s")


def _materialize_tiny(io: S3PydanticIOManager):
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, ["b" * 64])
    return materialize([tiny], resources={"io_manager": io}, instance=instance, partition_key="b" * 64,
                       raise_on_error=False)


def _failure_message(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    err = failures[0].event_specific_data.error
    parts = []
    while err is not None:
        parts.append(err.message)
        err = err.cause
    return "\n".join(parts)


def test_wrong_secret_fails_loudly_without_leaking_it(seaweed_s3, buckets):  # noqa: F811
    bad_secret = "WRONG-secret-" + uuid.uuid4().hex
    io = S3PydanticIOManager(bucket=buckets.processed_bucket, **seaweed_s3.settings(aws_secret_access_key=bad_secret))
    result = _materialize_tiny(io)
    assert not result.success
    msg = _failure_message(result)
    assert "S3IOError" in msg or "S3 IO manager could not write" in msg
    assert seaweed_s3.endpoint_url in msg and f"s3://{buckets.processed_bucket}/dagster/tiny/" in msg
    assert "SignatureDoesNotMatch" in msg and "access denied / signature mismatch" in msg
    assert bad_secret not in msg and seaweed_s3.aws_secret_access_key not in msg
    assert not seaweed_s3.client().list_objects_v2(Bucket=buckets.processed_bucket).get("Contents")

    # an unknown access key id is refused the same way
    io = S3PydanticIOManager(bucket=buckets.processed_bucket,
                             **seaweed_s3.settings(aws_access_key_id="nobody", aws_secret_access_key=bad_secret))
    with pytest.raises(S3IOError, match="InvalidAccessKeyId") as exc:
        io.put("dagster/x.json", b"{}")
    assert bad_secret not in str(exc.value)


def test_missing_bucket_is_named(seaweed_s3):  # noqa: F811
    io = S3PydanticIOManager(bucket=f"absent-{_suffix()}", create_bucket=False, **seaweed_s3.settings())
    with pytest.raises(S3IOError, match=r"NoSuchBucket.*BucketLayout.ensure_buckets") as exc:
        io.put("dagster/x.json", b"{}")
    assert io.bucket in str(exc.value)
    with pytest.raises(S3IOError, match="NoSuchBucket"):
        io.get("dagster/x.json")


def test_missing_bucket_is_created_on_first_write(seaweed_s3):  # noqa: F811
    io = S3PydanticIOManager(bucket=f"fresh-{_suffix()}", **seaweed_s3.settings())
    io.put("dagster/x.json", b'{"a": 1}')
    assert io.get("dagster/x.json") == b'{"a": 1}'



def test_bucket_layout_lifecycle_on_seaweedfs(seaweed_s3, buckets):  # noqa: F811
    """What SeaweedFS 4.x does with the layout's lifecycle rules (recorded in the README)."""
    s3 = buckets.client()
    assert set(buckets.ensure_buckets().values()) == {"exists"}  # idempotent
    processed = s3.get_bucket_lifecycle_configuration(Bucket=buckets.processed_bucket)["Rules"]
    assert processed[0]["Expiration"]["Days"] == 30
    assert processed[0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    assert s3.get_bucket_lifecycle_configuration(Bucket=buckets.thumbnails_bucket)["Rules"][0]["Expiration"] == {"Days": 7}

    # expiry of originals (opt-in) is accepted too
    s = _suffix()
    expiring = BucketLayout(**seaweed_s3.settings(), original_bucket=f"original-{s}", processed_bucket=f"processed-{s}",
                            thumbnails_bucket=f"thumbnails-{s}", original_expire_days=365)
    expiring.ensure_buckets()
    assert s3.get_bucket_lifecycle_configuration(Bucket=f"original-{s}")["Rules"][0]["Expiration"]["Days"] == 365

    # the default layout transitions originals to GLACIER_IR: SeaweedFS has no storage tiers and refuses
    # the rule loudly (NotImplemented) instead of storing it; set IDP original_storage_class=None there
    s = _suffix()
    default = BucketLayout(**seaweed_s3.settings(), original_bucket=f"original-{s}", processed_bucket=f"processed-{s}",
                           thumbnails_bucket=f"thumbnails-{s}")
    with pytest.raises(ClientError) as exc:
        default.ensure_buckets()
    assert exc.value.response["Error"]["Code"] == "NotImplemented"
    assert exc.value.operation_name == "PutBucketLifecycleConfiguration"
