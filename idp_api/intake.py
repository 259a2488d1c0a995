"""Uploads become documents exactly as the sensors make them (`sensors.common.ingest`,
`DocumentRunner.register_bytes`): sha256 of the bytes = document id, the original kept in the document
store, the sighting recorded with `put_source_record`, the id added as a `documents` dynamic partition -
then the run is queued.  The same bytes twice give the same id and no second run."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from urllib.parse import urlparse

from pydantic import BaseModel

from idp_api.limits import LimitError, check_media_type
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME
from idp_assets.retention import is_registered
from resources.storage import printable, s3_client


class Registered(BaseModel):
    document_id: str
    created: bool
    filename: str
    media_type: str
    bytes: int


class S3Error(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def register(svc, data: bytes, filename: str, uri: str, by: str) -> Registered:
    media = check_media_type(data, filename, svc.config.allowed_types)
    doc_id = hashlib.sha256(data).hexdigest()
    filename = printable(filename)[:250] or "upload"
    # the original and the sighting are kept before Dagster hears about the document
    svc.store.put_original(doc_id, data)
    svc.store.put_source_record(doc_id, {"uri": printable(uri), "filename": filename,
                                         "seen_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                         "submitted_by": by})
    created = False
    if not is_registered(svc.instance, svc.store, doc_id):  # live partition or retired: same bytes, no new run
        # the job first: a crash before the partition exists leaves a queued job, and the worker adds it
        created = svc.queue.enqueue(doc_id, filename, uri, by)
        if created:
            ensure_partition(svc.instance, doc_id)
    return Registered(document_id=doc_id, created=created, filename=filename, media_type=media, bytes=len(data))


def ensure_partition(instance, doc_id: str) -> None:
    if not instance.has_dynamic_partition(DOCUMENTS_PARTITIONS_NAME, doc_id):
        instance.add_dynamic_partitions(DOCUMENTS_PARTITIONS_NAME, [doc_id])


def parse_s3_uri(uri: str, allowed_buckets: tuple[str, ...]) -> tuple[str, str]:
    p = urlparse(uri)
    if p.scheme != "s3" or not p.netloc or not p.path.strip("/"):
        raise S3Error(422, "uri must be s3://bucket/key")
    bucket, key = p.netloc, p.path.lstrip("/")
    if bucket not in allowed_buckets:
        raise S3Error(403, f"bucket {bucket!r} is not one this service reads (IDP_API_S3_BUCKETS)")
    return bucket, key


def fetch_s3(svc, uri: str) -> tuple[bytes, str]:
    """(bytes, file name) of an allowed s3:// object, with the store's endpoint and credentials."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri, svc.config.s3_buckets)
    st = svc.store
    client = s3_client(st.endpoint_url, st.region_name, st.aws_access_key_id, st.aws_secret_access_key)
    limit = svc.config.max_upload_bytes
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if int(head.get("ContentLength") or 0) > limit:
            raise LimitError(413, f"object larger than {limit} bytes")
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read(limit + 1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
            raise S3Error(404, f"{uri} does not exist") from None
        if code in ("403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
            raise S3Error(403, f"{uri}: access denied") from None
        raise S3Error(502, f"{uri}: S3 error {code}") from None
    except BotoCoreError as exc:
        raise S3Error(502, f"{uri}: S3 not reachable ({type(exc).__name__})") from None
    if len(body) > limit:
        raise LimitError(413, f"object larger than {limit} bytes")
    return body, key.rsplit("/", 1)[-1]
