"""Settings of the API service, from environment variables (the README's table lists them).

Secrets (API key hashes, the JWT secret, the session secret) may be given inline or as a file
(`*_FILE`, e.g. a mounted Kubernetes / Docker secret); their values are never logged or shown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

DEFAULT_TYPES = (
    "application/pdf", "image/png", "image/jpeg", "image/tiff", "image/bmp", "image/gif", "image/webp",
    "image/heic", "image/heif",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "text/csv", "text/html", "text/markdown", "text/plain", "application/xml",
)


class ApiConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="IDP_API_HOST: bind address (loopback unless configured)")
    port: int = Field(default=8000, description="IDP_API_PORT")
    data_dir: Path = Field(default=Path("./.idp"), description="IDP_DATA_DIR: where the API database lives")
    db_path: Path = Field(default=Path("./.idp/api.sqlite"), description="IDP_API_DB: run queue, catalog, reviews")
    api_keys_json: SecretStr | None = Field(default=None, description="IDP_API_KEYS / IDP_API_KEYS_FILE (JSON list)")
    jwt_secret: SecretStr | None = Field(default=None, description="IDP_API_JWT_SECRET / _FILE: HS256 key")
    jwt_public_key: SecretStr | None = Field(default=None, description="IDP_API_JWT_PUBLIC_KEY_FILE: RS256/ES256 key")
    jwt_audience: str | None = Field(default=None, description="IDP_API_JWT_AUDIENCE: required `aud` when set")
    jwt_issuer: str | None = Field(default=None, description="IDP_API_JWT_ISSUER: required `iss` when set")
    session_secret: SecretStr | None = Field(default=None, description="IDP_API_SESSION_SECRET / _FILE (review page "
                                             "cookies); unset: a random one per process (sessions end on restart)")
    session_minutes: int = Field(default=480, ge=1, description="IDP_API_SESSION_MINUTES")
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1, description="IDP_API_MAX_UPLOAD_BYTES (413)")
    allowed_types: tuple[str, ...] = Field(default=DEFAULT_TYPES, description="IDP_API_ALLOWED_TYPES (415)")
    uploads_per_minute: int = Field(default=30, ge=1, description="IDP_API_UPLOADS_PER_MINUTE per key (429)")
    s3_buckets: tuple[str, ...] = Field(default=(), description="IDP_API_S3_BUCKETS: buckets an s3:// upload may "
                                        "name (default: the S3 inbox bucket)")
    cors_origins: tuple[str, ...] = Field(default=(), description="IDP_API_CORS_ORIGINS: empty = CORS off")
    workers: int = Field(default=1, ge=0, le=8, description="IDP_API_WORKERS: documents processed at once (0: none)")
    search_max_k: int = Field(default=50, ge=1, le=100, description="IDP_API_SEARCH_MAX_K")
    warm: bool = Field(default=True, description="IDP_API_WARM: load the search models at start-up")


def _secret(env: Mapping[str, str], name: str) -> SecretStr | None:
    """`NAME` inline, or the contents of the file `NAME_FILE`."""
    path = env.get(f"{name}_FILE")
    if path:
        return SecretStr(Path(path).read_text(encoding="utf-8").strip())
    value = env.get(name)
    return SecretStr(value) if value else None


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None:
        return None
    return tuple(x.strip() for x in raw.split(",") if x.strip())


def load_config(env: Mapping[str, str] | None = None) -> ApiConfig:
    env = os.environ if env is None else env
    data = Path(env.get("IDP_DATA_DIR", "./.idp"))
    kw: dict = {
        "host": env.get("IDP_API_HOST", "127.0.0.1"),
        "port": int(env.get("IDP_API_PORT", "8000")),
        "data_dir": data,
        "db_path": Path(env.get("IDP_API_DB") or data / "api.sqlite"),
        "api_keys_json": _secret(env, "IDP_API_KEYS"),
        "jwt_secret": _secret(env, "IDP_API_JWT_SECRET"),
        "jwt_public_key": _secret(env, "IDP_API_JWT_PUBLIC_KEY"),
        "jwt_audience": env.get("IDP_API_JWT_AUDIENCE") or None,
        "jwt_issuer": env.get("IDP_API_JWT_ISSUER") or None,
        "session_secret": _secret(env, "IDP_API_SESSION_SECRET"),
        "session_minutes": int(env.get("IDP_API_SESSION_MINUTES", "480")),
        "max_upload_bytes": int(env.get("IDP_API_MAX_UPLOAD_BYTES", str(25 * 1024 * 1024))),
        "uploads_per_minute": int(env.get("IDP_API_UPLOADS_PER_MINUTE", "30")),
        "workers": int(env.get("IDP_API_WORKERS", "1")),
        "search_max_k": int(env.get("IDP_API_SEARCH_MAX_K", "50")),
        "warm": env.get("IDP_API_WARM", "1") != "0",
    }
    for key, name in (("allowed_types", "IDP_API_ALLOWED_TYPES"), ("cors_origins", "IDP_API_CORS_ORIGINS")):
        v = _list(env, name)
        if v is not None:
            kw[key] = v
    buckets = _list(env, "IDP_API_S3_BUCKETS")
    kw["s3_buckets"] = buckets if buckets is not None else (env.get("IDP_S3_INBOX_BUCKET", "inbox"),)
    return ApiConfig(**kw)
