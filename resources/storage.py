"""Document store: original bytes and derived artefacts, on a local folder or S3.

Keys are always built from validated parts (document id = sha256 hex, fixed
sub-folders), never from user-supplied file names, so nothing can escape the
configured root.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def safe_key(*parts: str) -> str:
    """Join key parts after checking each is a plain name (no '/', '..', empty)."""
    for p in parts:
        if not _KEY_PART.match(p) or p in (".", ".."):
            raise ValueError(f"unsafe storage key part: {p!r}")
    return "/".join(parts)


def s3_client(endpoint_url: str | None = None, region_name: str | None = None,
              aws_access_key_id: str | None = None, aws_secret_access_key: str | None = None):
    """A boto3 S3 client (SigV4); path-style addressing when `endpoint_url` is set (MinIO, SeaweedFS)."""
    import boto3
    from botocore.config import Config

    retries = {"max_attempts": 5, "mode": "standard"}
    # path-style addressing for MinIO/SeaweedFS endpoints without wildcard DNS
    cfg = Config(s3={"addressing_style": "path"}, retries=retries) if endpoint_url else Config(retries=retries)
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region_name or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key=aws_secret_access_key,
        config=cfg,
    )


def printable(text: str) -> str:
    """`text` with lone surrogates (bytes of a file name that are not UTF-8) escaped as ``\\xe9``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def original_key(document_id: str) -> str:
    if not _SHA256.match(document_id):
        raise ValueError(f"not a sha256 document id: {document_id!r}")
    return safe_key("originals", document_id[:2], document_id)


class DocumentStore(ConfigurableResource):
    """Keeps original bytes (before anything else happens) and derived artefacts.

    kind="local" (default) writes below `root`; kind="s3" writes to `bucket` on
    `endpoint_url` (AWS S3, MinIO, SeaweedFS).  Credentials come from the
    standard AWS environment variables or the EnvVar-backed fields.
    """

    kind: Literal["local", "s3"] = "local"
    root: str = Field(default="./.idp_store", description="folder for kind=local")
    bucket: str = Field(default="original", description="bucket for kind=s3")
    prefix: str = Field(default="", description="key prefix inside the bucket (kind=s3)")
    endpoint_url: str | None = None
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    thumbnails_bucket: str | None = Field(
        default=None, description="kind=s3: bucket for page thumbnails (BucketLayout `thumbnails`); None: `bucket`")

    _client: object = PrivateAttr(default=None)

    # -- location helpers -------------------------------------------------
    def _path(self, key: str) -> Path:
        root = Path(self.root).resolve()
        p = (root / key).resolve()
        if root != p and root not in p.parents:
            raise ValueError(f"key escapes the store root: {key!r}")
        return p

    def _s3(self):
        if self._client is None:
            self._client = s3_client(self.endpoint_url, self.region_name, self.aws_access_key_id,
                                     self.aws_secret_access_key)
        return self._client

    def _s3_key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix.strip("/") else key

    def ensure_bucket(self) -> None:
        if self.kind != "s3":
            return
        s3 = self._s3()
        try:
            s3.head_bucket(Bucket=self.bucket)
        except Exception:  # noqa: BLE001 - head_bucket raises ClientError(404) for a missing bucket
            s3.create_bucket(Bucket=self.bucket)

    def uri(self, key: str, *, bucket: str | None = None) -> str:
        if self.kind == "s3":
            return f"s3://{bucket or self.bucket}/{self._s3_key(key)}"
        return self._path(key).as_uri()

    # -- generic byte I/O -------------------------------------------------
    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream", *,
            bucket: str | None = None) -> str:
        """Write `data` under `key`; `bucket` (kind=s3 only) overrides the store bucket."""
        if self.kind == "s3":
            self._s3().put_object(Bucket=bucket or self.bucket, Key=self._s3_key(key), Body=data,
                                  ContentType=content_type)
        else:
            p = self._path(key)
            p.parent.mkdir(parents=True, exist_ok=True)
            # write-then-rename: a crash never leaves a half-written file under the final name
            fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, p)
        return self.uri(key, bucket=bucket)

    def get(self, key: str, *, bucket: str | None = None) -> bytes:
        if self.kind == "s3":
            return self._s3().get_object(Bucket=bucket or self.bucket, Key=self._s3_key(key))["Body"].read()
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        if self.kind == "s3":
            try:
                self._s3().head_object(Bucket=self.bucket, Key=self._s3_key(key))
                return True
            except Exception:  # noqa: BLE001
                return False
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        """Remove one object; a missing key is not an error."""
        if self.kind == "s3":
            self._s3().delete_object(Bucket=self.bucket, Key=self._s3_key(key))
            return
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass

    def list_keys(self, prefix: str):
        """Keys below `prefix` (a folder-like prefix such as ``retired/``), in no guaranteed order."""
        if self.kind == "s3":
            pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._s3_key(prefix))
            strip = len(self._s3_key(""))
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:]
            return
        root = Path(self.root).resolve()
        base = self._path(prefix)
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if not name.startswith(".tmp-"):
                    yield Path(dirpath, name).relative_to(root).as_posix()

    # -- originals ----------------------------------------------------------
    def put_original(self, document_id: str, data: bytes) -> str:
        """Store the original bytes under their hash; idempotent (same bytes, same key)."""
        key = original_key(document_id)
        if not self.exists(key):
            self.put(key, data)
        return self.uri(key)

    def get_original(self, document_id: str) -> bytes:
        return self.get(original_key(document_id))

    def put_source_record(self, document_id: str, record: dict) -> None:
        """Remember where a document was seen (uri, filename); every sighting is kept.

        A file name that is not valid UTF-8 (surrogate escapes from ``os``) is stored escaped
        (``caf\\xe9.pdf``), never a crash."""
        import json

        record = {k: printable(v) if isinstance(v, str) else v for k, v in record.items()}
        key = safe_key("sources", f"{original_key(document_id).rsplit('/', 1)[-1]}.json")
        sightings = self.get_source_records(document_id)
        if record not in sightings:
            sightings.append(record)
            self.put(key, json.dumps(sightings, ensure_ascii=False, indent=1).encode(), "application/json")

    def get_source_records(self, document_id: str) -> list[dict]:
        import json

        key = safe_key("sources", f"{original_key(document_id).rsplit('/', 1)[-1]}.json")
        if not self.exists(key):
            return []
        return json.loads(self.get(key))

    def quarantine(self, document_id: str, reason: str, message: str, filename: str | None = None) -> str:
        """Keep the original bytes and a machine-readable reason under `quarantine/`; returns its URI."""
        import json
        from datetime import datetime, timezone

        original_key(document_id)  # validates the id
        key = safe_key("quarantine", document_id)
        self.put(key, self.get_original(document_id))
        record = {"document_id": document_id, "reason": reason, "message": message,
                  "filename": printable(filename) if isinstance(filename, str) else filename,
                  "quarantined_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self.put(safe_key("quarantine", f"{document_id}.json"),
                 json.dumps(record, ensure_ascii=False, indent=1).encode(), "application/json")
        return self.uri(key)

    def artifact_key(self, document_id: str, *parts: str) -> str:
        original_key(document_id)  # validates the id
        return safe_key("artifacts", document_id, *parts)

    # -- page thumbnails (short-lived; the `thumbnails` bucket has its own expiry rule) --
    def thumbnail_key(self, document_id: str, page_number: int) -> str:
        original_key(document_id)  # validates the id
        return safe_key("thumbnails", document_id, f"p{int(page_number):04d}.png")

    def put_thumbnail(self, document_id: str, page_number: int, png: bytes) -> str:
        """Store one page thumbnail (PNG) in `thumbnails_bucket` (kind=s3) or below `root/thumbnails`; returns its URI."""
        return self.put(self.thumbnail_key(document_id, page_number), png, "image/png", bucket=self.thumbnails_bucket)

    def get_thumbnail(self, document_id: str, page_number: int) -> bytes:
        return self.get(self.thumbnail_key(document_id, page_number), bucket=self.thumbnails_bucket)
