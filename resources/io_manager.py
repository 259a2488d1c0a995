"""S3 IO manager: asset outputs as JSON objects in the `processed` bucket.

Every output is written as one JSON document::

    s3://<bucket>/<prefix>/<asset key path>/<partition key>.json
    s3://<bucket>/<prefix>/<asset key path>.json            (unpartitioned assets)

with a small envelope ``{"type": "<module>.<Class>", "value": {...}}`` so a
downstream step (in another process, pod or machine) gets the pydantic model
back.  On load the model class is the input's type annotation when it is a
pydantic model; otherwise the stored class path is imported, only from the
modules in ``model_modules`` (never arbitrary code named by an object in a
bucket).  Plain JSON values (dict, list, str, numbers, None) are stored as
``{"type": "json", ...}``.

Works with AWS S3, MinIO and SeaweedFS (SigV4, path-style addressing when
``endpoint_url`` is set).  Credentials come from ``EnvVar`` (see
``idp_assets.settings``); every S3 error is re-raised as :class:`S3IOError`
naming the operation, the ``s3://`` location and the endpoint, never the
secret.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

from dagster import ConfigurableIOManager, DagsterInvariantViolationError, InputContext, OutputContext
from pydantic import BaseModel, Field, PrivateAttr

from resources.storage import s3_client

JSON_TYPE = "json"
_KEY_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,200}$")
_AUTH_CODES = {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken",
               "AuthorizationHeaderMalformed", "InvalidSecurity", "403"}
_MISSING_BUCKET = {"NoSuchBucket"}


class S3IOError(RuntimeError):
    """An S3 call of the IO manager failed; the message says what, where and why (no secrets)."""


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code")) if isinstance(response, dict) else None


def _part(p: str, what: str) -> str:
    if not _KEY_PART.match(p) or p in (".", ".."):
        raise ValueError(f"{what} {p!r} cannot be used in an S3 key (allowed: letters, digits, '._=-')")
    return p


def model_path(model: type) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def encode(value: Any) -> bytes:
    """The stored JSON envelope of an output value."""
    if isinstance(value, BaseModel):
        body = {"type": model_path(type(value)), "value": value.model_dump(mode="json")}
    else:
        body = {"type": JSON_TYPE, "value": value}
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except TypeError as exc:
        raise TypeError(f"S3 IO manager stores pydantic models or JSON values, not {type(value).__name__}: {exc}") from exc


def _import_model(path: str, allowed: list[str]) -> type[BaseModel]:
    module, _, name = path.rpartition(".")
    if not any(module == m or module.startswith(m + ".") for m in allowed):
        raise ValueError(f"stored type {path!r} is outside the allowed model modules {allowed}")
    obj: Any = importlib.import_module(module)
    for attr in name.split("."):
        obj = getattr(obj, attr)
    if not (isinstance(obj, type) and issubclass(obj, BaseModel)):
        raise ValueError(f"stored type {path!r} is not a pydantic model")
    return obj


def decode(data: bytes, annotation: Any = None, allowed_modules: list[str] | None = None) -> Any:
    """Inverse of :func:`encode`: the annotated model if given, else the stored model class."""
    body = json.loads(data)
    stored, value = body["type"], body["value"]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.model_validate(value)
    if stored == JSON_TYPE:
        return value
    return _import_model(stored, allowed_modules or []).model_validate(value)


class S3PydanticIOManager(ConfigurableIOManager):
    """Stores asset outputs (pydantic models -> JSON) in an S3 bucket; see the module docstring."""

    bucket: str = Field(default="processed", description="bucket for step outputs (BucketLayout `processed`)")
    prefix: str = Field(default="dagster", description="key prefix inside the bucket")
    endpoint_url: str | None = Field(default=None, description="MinIO / SeaweedFS endpoint; None: AWS S3")
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    model_modules: list[str] = Field(
        default_factory=lambda: ["idp_assets", "resources"],
        description="packages a stored model class may be imported from when the input has no model annotation",
    )

    create_bucket: bool = Field(default=True, description="create the bucket on the first write that finds it missing")

    _client: Any = PrivateAttr(default=None)

    # -- keys ------------------------------------------------------------------
    def _base(self, asset_path: list[str]) -> str:
        parts = [p for p in self.prefix.strip("/").split("/") if p]
        return "/".join([*(_part(p, "prefix part") for p in parts), *(_part(p, "asset key part") for p in asset_path)])

    def object_key(self, asset_path: list[str], partition_key: str | None = None) -> str:
        base = self._base(asset_path)
        return f"{base}/{_part(partition_key, 'partition key')}.json" if partition_key is not None else f"{base}.json"

    def _output_key(self, context: OutputContext) -> str:
        if context.has_asset_key:
            pk = context.asset_partition_key if context.has_asset_partitions else None
            return self.object_key(list(context.asset_key.path), pk)
        return self.object_key(["_ops", *context.get_identifier()])  # op outputs: run id / step / output name

    def _input_keys(self, context: InputContext) -> list[tuple[str | None, str]]:
        if context.has_asset_key:
            path = list(context.asset_key.path)
            if context.has_asset_partitions:
                return [(pk, self.object_key(path, pk)) for pk in context.asset_partition_keys]
            return [(None, self.object_key(path))]
        up = context.upstream_output
        return [(None, self.object_key(["_ops", *up.get_identifier()]))]

    # -- S3 --------------------------------------------------------------------
    def _s3(self):
        if self._client is None:
            self._client = s3_client(self.endpoint_url, self.region_name, self.aws_access_key_id,
                                     self.aws_secret_access_key)
        return self._client

    def _fail(self, verb: str, key: str, exc: Exception) -> S3IOError:
        from botocore.exceptions import ClientError

        where = f"s3://{self.bucket}/{key} at {self.endpoint_url or 'AWS S3'}"
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
            msg = f"S3 IO manager could not {verb} {where}: {code}: {err.get('Message') or exc}"
            if code in _AUTH_CODES:
                msg += (" (access denied / signature mismatch: check the access key id and secret key"
                        " configured for this endpoint and the bucket policy)")
            elif code in _MISSING_BUCKET:
                msg += f" (create bucket {self.bucket!r}, e.g. with BucketLayout.ensure_buckets(), or set create_bucket)"
        else:
            msg = f"S3 IO manager could not {verb} {where}: {type(exc).__name__}: {exc}"
        return S3IOError(msg)

    def put(self, key: str, data: bytes) -> None:
        for attempt in (1, 2):
            try:
                self._s3().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")
                return
            except Exception as exc:  # noqa: BLE001 - every failure is re-raised with its location
                if attempt == 1 and self.create_bucket and _error_code(exc) in _MISSING_BUCKET:
                    try:
                        self._s3().create_bucket(Bucket=self.bucket)
                        continue
                    except Exception:  # noqa: BLE001 - e.g. no permission to create: report the original error
                        pass
                raise self._fail("write", key, exc) from None

    def get(self, key: str) -> bytes:
        try:
            return self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:  # noqa: BLE001
            raise self._fail("read", key, exc) from None

    # -- IO manager ------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        key = self._output_key(context)
        data = encode(obj)
        self.put(key, data)
        context.add_output_metadata({"s3_uri": f"s3://{self.bucket}/{key}", "json_bytes": len(data)})

    def load_input(self, context: InputContext) -> Any:
        try:
            annotation = getattr(context.dagster_type, "typing_type", None)
        except DagsterInvariantViolationError:  # a context built without a type (tests, tools)
            annotation = None
        values = {pk: decode(self.get(key), annotation, self.model_modules) for pk, key in self._input_keys(context)}
        if len(values) == 1:
            return next(iter(values.values()))
        return values  # several upstream partitions: {partition key: value}
