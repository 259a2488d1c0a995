"""S3 sensor: every object below ``s3://bucket/prefix`` becomes a document.

Works with AWS S3 and S3-compatible servers (MinIO, SeaweedFS): only
``ListObjectsV2`` (through the paginator, 1000 keys per page) and ``GetObject``
are used.  With a custom ``endpoint_url`` path-style addressing is used unless
``addressing_style`` says otherwise.

Cursor design
-------------
The cursor is a :class:`sensors.common.SeenState`: a map *key -> ETag* of every
object already read (or rejected) that is still listed, stored as
``"v1:" + base64(zlib(json))``.  Each tick lists the whole prefix and reads
(``GetObject``) only objects whose key is missing from the map or whose ETag
differs; everything else costs a dictionary look-up.  So a tick over N known
objects is ceil(N/1000) LIST requests and zero GET requests.

Guarantees:

* every object visible in a complete listing is read and hashed at least once
  per (key, ETag); an overwritten object (new ETag) is read again - new bytes
  give a new partition, identical bytes no new run;
* keys are found wherever they sort - unlike a ``StartAfter`` high-water mark,
  the map does not require keys to be uploaded in lexicographic order (uploads
  of ``a.pdf`` after ``z.pdf`` are not missed) and it does not depend on
  ``LastModified`` clocks;
* deleted objects are pruned from the map, so its size follows the bucket
  content, not its history (an object deleted and re-uploaded is read again,
  which at worst re-stores identical bytes; it never starts a second run);
* if listing fails (server unreachable, bucket missing, access denied) the
  tick raises :class:`~sensors.common.SourceUnavailable` and the cursor is not
  advanced; a lost connection during ``GetObject`` does the same;
* keys ending in ``/`` (folder markers) are ignored; keys with a ``..`` path
  segment are never read (logged once, remembered until the ETag changes).

Not guaranteed: an object that is created and deleted between two ticks may
never be seen; objects are read in key order, at most ``max_per_tick`` per tick.
"""

from __future__ import annotations

from typing import Literal

from dagster import (
    ConfigurableResource,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from pydantic import Field

from resources.storage import DocumentStore

from .common import (
    DEFAULT_MAX_PER_TICK,
    PROCESS_JOB_NAME,
    Candidate,
    Rejected,
    SeenState,
    SkipForNow,
    SourceUnavailable,
    ingest,
)


class S3InboxSettings(ConfigurableResource):
    """Which bucket/prefix the S3 sensor watches and how to reach it."""

    bucket: str = Field(default="inbox", description="bucket watched for new documents")
    prefix: str = Field(default="", description="only keys starting with this prefix are taken")
    endpoint_url: str | None = Field(default=None, description="e.g. http://minio:9000; None = AWS S3")
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", description="'auto' = path-style when endpoint_url is set, AWS default otherwise"
    )
    max_per_tick: int = Field(default=DEFAULT_MAX_PER_TICK, ge=1)
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 60.0
    max_attempts: int = Field(default=3, ge=1, description="botocore attempts per request (incl. the first)")
    max_object_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="larger objects are not read (logged once, remembered)"
    )

    def make_client(self):
        import boto3
        from botocore.config import Config

        style = self.addressing_style
        if style == "auto" and self.endpoint_url:
            style = "path"
        config = Config(
            connect_timeout=self.connect_timeout_seconds,
            read_timeout=self.read_timeout_seconds,
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            s3={"addressing_style": style},
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name or "us-east-1",
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            config=config,
        )

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


def is_unsafe_key(key: str) -> bool:
    return ".." in key.replace("\\", "/").split("/")


def _make_reader(client, bucket: str, key: str):
    from botocore.exceptions import ClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    def read() -> bytes:
        try:
            resp = client.get_object(Bucket=bucket, Key=key)
            return resp["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise SkipForNow("object was deleted") from exc
            raise
        except BotoConnectionError as exc:
            raise SourceUnavailable(f"lost connection to S3 while reading s3://{bucket}/{key}: {exc}") from exc

    return read


def _rejecter(reason: str):
    def read() -> bytes:
        raise Rejected(reason)

    return read


def list_s3(settings: S3InboxSettings, client) -> list[Candidate]:
    """All candidates under the prefix; raises SourceUnavailable if the listing cannot be completed."""
    from botocore.exceptions import BotoCoreError, ClientError

    candidates: list[Candidate] = []
    try:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=settings.bucket, Prefix=settings.prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue  # folder marker
                etag = str(obj.get("ETag", "")).strip('"')
                version = etag or f"{obj.get('Size')}:{obj.get('LastModified')}"
                filename = key.rsplit("/", 1)[-1]
                if is_unsafe_key(key):
                    read = _rejecter("key contains a '..' path segment; not read")
                elif int(obj.get("Size") or 0) > settings.max_object_bytes:
                    read = _rejecter(f"{obj.get('Size')} bytes, more than max_object_bytes="
                                     f"{settings.max_object_bytes}; not read")
                else:
                    read = _make_reader(client, settings.bucket, key)
                candidates.append(
                    Candidate(key=key, version=version, uri=settings.uri(key), filename=filename, read=read)
                )
    except (BotoCoreError, ClientError) as exc:
        raise SourceUnavailable(
            f"cannot list s3://{settings.bucket}/{settings.prefix} at {settings.endpoint_url or 'AWS'}: {exc}"
        ) from exc
    return candidates


def make_s3_sensor(
    *,
    name: str = "s3_sensor",
    job_name: str | None = PROCESS_JOB_NAME,
    job=None,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> SensorDefinition:
    """Build the S3 sensor (module-level ``s3_sensor`` uses the defaults; STOPPED until configured).

    Resources (by key): ``s3_inbox_settings`` (:class:`S3InboxSettings`) and ``document_store``.
    """

    @sensor(
        name=name,
        job_name=None if job is not None else job_name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Registers every object below the configured S3 bucket/prefix as a document and runs it.",
    )
    def _s3_sensor(
        context: SensorEvaluationContext, s3_inbox_settings: S3InboxSettings, document_store: DocumentStore
    ) -> SensorResult:
        settings, store = s3_inbox_settings, document_store
        state = SeenState.decode(context.cursor, context.log)
        client = settings.make_client()
        listing = list_s3(settings, client)  # raises SourceUnavailable -> failed tick, cursor untouched
        return ingest(context, store, listing, state, max_per_tick=settings.max_per_tick)

    return _s3_sensor


s3_sensor = make_s3_sensor()
