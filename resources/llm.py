"""LLM access through one LiteLLM router config of task-profile aliases.

The pipeline never names a provider model: it asks for a *task alias* (``idp-fields`` for
invoice field extraction, ``idp-entities`` for entity extraction in the ``embeddings`` /
``graph_nodes`` assets) and the router config maps each alias to one or more deployments
(``litellm_params``: model, api_base, api_key, ...), with LiteLLM's fallbacks, retries and
load balancing.  The config is a YAML or JSON file in LiteLLM's proxy format::

    model_list:
      - model_name: idp-fields                 # task alias
        litellm_params:
          model: openai/gpt-4o-mini
          api_key: os.environ/OPENAI_API_KEY   # secrets are read from the environment
      - model_name: idp-fields
        litellm_params: {model: ollama/qwen2.5:7b, api_base: "http://127.0.0.1:11434"}
      - model_name: idp-entities               # entities for the knowledge graph (optional)
        litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY}
    router_settings: {num_retries: 2, timeout: 60}

Disabled by default (``enabled=False``): nothing is called and extraction uses the rules
only.  A task whose alias is not in ``model_list`` is not called either (entity extraction
runs only when ``idp-entities`` is configured).  ``IDP_LLM_CONFIG`` (path of the config) turns it on in :mod:`idp_assets.settings`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

FIELDS_TASK = "idp-fields"
ENTITIES_TASK = "idp-entities"


def _resolve_env(value: Any) -> Any:
    """``"os.environ/NAME"`` -> the variable's value (LiteLLM proxy convention)."""
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value.split("/", 1)[1]
        if name not in os.environ:
            raise RuntimeError(f"LLM router config refers to unset environment variable {name}")
        return os.environ[name]
    if isinstance(value, dict):
        return {k: _resolve_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v) for v in value]
    return value


def load_router_config(path: str | Path) -> dict:
    """The router config (YAML or JSON) with ``os.environ/`` references resolved."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"LLM router config not found: {p}")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        cfg = json.loads(text)
    else:
        import yaml

        cfg = yaml.safe_load(text)
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_list"), list) or not cfg["model_list"]:
        raise ValueError(f"LLM router config {p} has no model_list")
    for i, m in enumerate(cfg["model_list"]):
        if not isinstance(m, dict) or not m.get("model_name") or not isinstance(m.get("litellm_params"), dict):
            raise ValueError(f"LLM router config {p}: model_list[{i}] needs model_name and litellm_params")
    return _resolve_env(cfg)


class LlmRouter(ConfigurableResource):
    """Task-alias completions through a LiteLLM ``Router`` (see module doc)."""

    enabled: bool = Field(default=False, description="call the LLM at all (off: rules only)")
    config_path: str | None = Field(default=None, description="LiteLLM router config (YAML/JSON) of task aliases")
    model_list: list[dict] | None = Field(default=None, description="inline model_list instead of a config file")
    timeout_s: float = Field(default=60.0, description="per-request timeout")

    def _config(self) -> dict:
        if self.model_list:
            return {"model_list": _resolve_env(self.model_list)}
        if not self.config_path:
            raise RuntimeError("LlmRouter is enabled but has neither config_path nor model_list")
        return load_router_config(self.config_path)

    def tasks(self) -> list[str]:
        return sorted({m["model_name"] for m in self._config()["model_list"]})

    def complete_json(self, task: str, messages: list[dict], schema: dict, **kwargs) -> str:
        """The message content of a completion for ``task`` constrained to the JSON ``schema``
        (``response_format`` json_schema; providers without it get the schema in the prompt)."""
        if not self.enabled:
            raise RuntimeError("LlmRouter is disabled")
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
        from litellm import Router

        cfg = self._config()
        if task not in {m["model_name"] for m in cfg["model_list"]}:
            raise KeyError(f"task alias {task!r} not in the LLM router config")
        settings = dict(cfg.get("router_settings") or {})
        settings.setdefault("timeout", self.timeout_s)
        router = Router(model_list=cfg["model_list"], **settings)
        resp = router.completion(
            model=task,
            messages=messages,
            response_format={"type": "json_schema",
                             "json_schema": {"name": task.replace("-", "_"), "schema": schema, "strict": False}},
            temperature=0,
            **kwargs,
        )
        return resp.choices[0].message.content or ""
