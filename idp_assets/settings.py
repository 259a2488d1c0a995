"""Deployment settings: the one place that maps environment variables to resources.

Embedded default (nothing set): everything lives under `IDP_DATA_DIR` (./.idp):
document store folder, Chroma PersistentClient, SQLite supplier master, and an
ArcadeDB Bolt server that the graph resource starts itself.  Production sets the
variables in the README's table; secrets are passed as `EnvVar`, so their values
never appear in run config, logs or the UI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from dagster import EnvVar

from idp_assets.exports import ExportTarget
from resources.embedder import Embedder
from resources.graph import GraphStore
from resources.io_manager import S3PydanticIOManager
from resources.llm import LlmRouter
from resources.ocr.router import OcrRouter
from resources.storage import DocumentStore
from resources.suppliers_db import SupplierMaster
from resources.vectors import VectorStore
from sensors.inbox import InboxSettings
from sensors.s3 import S3InboxSettings

LOCAL_GRAPH_PASSWORD = "idp-local-dev"  # only for the embedded ArcadeDB server bound to 127.0.0.1


def _secret(env: Mapping[str, str], name: str, default: str | None = None):
    """EnvVar when the variable is set (value resolved at run time, never shown), else the default."""
    return EnvVar(name) if env.get(name) else default


def build_resources(env: Mapping[str, str] | None = None, data_dir: str | None = None) -> dict:
    env = os.environ if env is None else env
    data = Path(data_dir or env.get("IDP_DATA_DIR", "./.idp"))
    graph_uri = env.get("IDP_GRAPH_URI", "bolt://127.0.0.1:7687")
    local_graph = graph_uri.split("://", 1)[-1].split(":")[0] in ("127.0.0.1", "localhost")
    # one S3 endpoint and credentials (secrets as EnvVar) for the store, the S3 inbox and the IO manager
    s3 = {
        "endpoint_url": env.get("IDP_S3_ENDPOINT_URL") or None,
        "region_name": env.get("AWS_DEFAULT_REGION") or None,
        "aws_access_key_id": _secret(env, "AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": _secret(env, "AWS_SECRET_ACCESS_KEY"),
    }
    resources = {
        "document_store": DocumentStore(
            kind=env.get("IDP_STORE_KIND", "local"),
            root=str(data / "store"),
            bucket=env.get("IDP_STORE_BUCKET", "original"),
            prefix=env.get("IDP_STORE_PREFIX", ""),
            **s3,
            thumbnails_bucket=env.get("IDP_THUMBNAILS_BUCKET") or None,
        ),
        "inbox_settings": InboxSettings(path=env.get("IDP_INBOX", "./inbox")),
        "s3_inbox_settings": S3InboxSettings(
            bucket=env.get("IDP_S3_INBOX_BUCKET", "inbox"),
            prefix=env.get("IDP_S3_INBOX_PREFIX", ""),
            **s3,
        ),
        "ocr_router": OcrRouter(
            languages=env.get("IDP_OCR_LANGUAGES", "deu+eng"),
            gpu_engines=[e for e in env.get("IDP_OCR_GPU_ENGINES", "").split(",") if e],
            engine_settings=json.loads(env.get("IDP_OCR_ENGINE_SETTINGS") or "{}"),
        ),
        "embedder": Embedder(
            provider=env.get("IDP_EMBED_PROVIDER", "local"),
            model_path=env.get("IDP_EMBED_MODEL_PATH") or None,
            litellm_model=env.get("IDP_EMBED_MODEL", "idp-embed"),
            model_version=env.get("IDP_EMBED_MODEL_VERSION") or None,
            api_base=env.get("IDP_EMBED_API_BASE") or None,
            api_key=_secret(env, "IDP_EMBED_API_KEY"),
        ),
        "vector_store": VectorStore(
            mode=env.get("IDP_CHROMA_MODE", "persistent"),
            path=str(data / "chroma"),
            host=env.get("IDP_CHROMA_HOST", "127.0.0.1"),
            port=int(env.get("IDP_CHROMA_PORT", "8001")),  # 8000 is the API's
        ),
        "graph_store": GraphStore(
            uri=graph_uri,
            user=env.get("IDP_GRAPH_USER", "root"),
            password=_secret(env, "IDP_GRAPH_PASSWORD", LOCAL_GRAPH_PASSWORD if local_graph else None),
            database=env.get("IDP_GRAPH_DATABASE") or ("idp" if local_graph else None),
            manage_local_server=local_graph and env.get("IDP_GRAPH_MANAGED", "1") != "0",
            server_home=str(data / "graph"),
            server_http_port=int(env.get("IDP_GRAPH_HTTP_PORT", "2480")),
        ),
        "supplier_master": SupplierMaster(
            path=env.get("IDP_SUPPLIERS_DB", str(data / "suppliers.sqlite")),
            dsn=_secret(env, "IDP_SUPPLIERS_DSN"),  # PostgreSQL master when set (pg_trgm), else SQLite
            pg_schema=env.get("IDP_SUPPLIERS_SCHEMA", "idp_suppliers"),
        ),
        "export_target": ExportTarget(
            out_dir=env.get("IDP_EXPORT_DIR", "./exports"),
            csv_delimiter=env.get("IDP_EXPORT_CSV_DELIMITER", ","),  # ';' for German Excel
            decimal_comma=env.get("IDP_EXPORT_DECIMAL_COMMA", "0") == "1",
        ),
        # optional LLM field extraction: a LiteLLM router config of task aliases (idp-fields)
        "llm_router": LlmRouter(enabled=bool(env.get("IDP_LLM_CONFIG")), config_path=env.get("IDP_LLM_CONFIG") or None),
    }
    # step outputs: Dagster's default (pickles below DAGSTER_HOME) unless S3 is chosen; with the
    # document store on S3 the outputs follow it (IDP_IO_MANAGER=fs keeps the default)
    if env.get("IDP_IO_MANAGER", "s3" if env.get("IDP_STORE_KIND") == "s3" else "fs") == "s3":
        resources["io_manager"] = S3PydanticIOManager(
            bucket=env.get("IDP_IO_BUCKET", "processed"),
            prefix=env.get("IDP_IO_PREFIX", "dagster"),
            **s3,
        )
    return resources
