"""Bucket layout and lifecycle rules against a real S3 server (moto server)."""

import boto3
import pytest
from botocore.exceptions import ClientError

from resources.buckets import BucketLayout


def _layout(s3_server, suffix, **kw):
    return BucketLayout(
        endpoint_url=s3_server["endpoint_url"], region_name=s3_server["region_name"],
        aws_access_key_id=s3_server["aws_access_key_id"], aws_secret_access_key=s3_server["aws_secret_access_key"],
        original_bucket=f"original-{suffix}", processed_bucket=f"processed-{suffix}",
        thumbnails_bucket=f"thumbnails-{suffix}", **kw)


def test_buckets_created_with_lifecycle(s3_server):
    layout = _layout(s3_server, "a")
    assert set(layout.ensure_buckets().values()) == {"created"}
    assert set(layout.ensure_buckets().values()) == {"exists"}  # idempotent
    s3 = layout.client()
    rules = {b: s3.get_bucket_lifecycle_configuration(Bucket=b)["Rules"] for b in layout.desired()}
    assert rules["processed-a"][0]["Expiration"]["Days"] == 30
    assert rules["processed-a"][0]["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    assert rules["thumbnails-a"][0]["Expiration"]["Days"] == 7
    assert rules["original-a"][0]["Transitions"][0] == {"Days": 90, "StorageClass": "GLACIER_IR"}


def test_configurable_expiry_of_originals(s3_server):
    layout = _layout(s3_server, "b", original_expire_days=365, thumbnails_expire_days=3)
    layout.ensure_buckets()
    s3 = layout.client()
    assert s3.get_bucket_lifecycle_configuration(Bucket="original-b")["Rules"][0]["Expiration"]["Days"] == 365
    assert s3.get_bucket_lifecycle_configuration(Bucket="thumbnails-b")["Rules"][0]["Expiration"]["Days"] == 3


def test_unreachable_endpoint_fails_loudly():
    layout = BucketLayout(endpoint_url="http://127.0.0.1:9", aws_access_key_id="x", aws_secret_access_key="y",
                          original_bucket="o", processed_bucket="p", thumbnails_bucket="t")
    with pytest.raises(Exception) as exc:
        layout.ensure_buckets()
    assert "127.0.0.1:9" in str(exc.value) or "Connect" in type(exc.value).__name__
