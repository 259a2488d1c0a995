"""Compute classes: op tags and pools that route an asset's step to CPU or GPU workers.

- Dagster concurrency pools `cpu` / `gpu` (limits in dagster.yaml / `dagster instance
  concurrency set`) bound how many steps of a class run at once on any executor.
- `dagster-celery/queue` sends the step to the celery queue of that name (`cpu` / `gpu`,
  prefixed with IDP_CELERY_QUEUE_PREFIX when several deployments share one broker).
- `dagster-k8s/config` gives the step's pod GPU limits and a node selector.
"""

from __future__ import annotations

import os
from typing import Literal

Compute = Literal["cpu", "gpu"]


def celery_queue(compute: Compute, prefix: str | None = None) -> str:
    """Celery queue of a compute class: `gpu` / `cpu`, after IDP_CELERY_QUEUE_PREFIX (e.g. `staging-gpu`)."""
    if prefix is None:
        prefix = os.environ.get("IDP_CELERY_QUEUE_PREFIX", "")
    return f"{prefix}{compute}"


def compute_op_tags(compute: Compute, queue_prefix: str | None = None) -> dict:
    k8s = {
        "cpu": {"container_config": {"resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "6Gi"}}}},
        "gpu": {
            "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1", "memory": "24Gi"}}},
            "pod_spec_config": {
                "node_selector": {"idp.compute": "gpu"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    }[compute]
    return {"idp/compute": compute, "dagster-celery/queue": celery_queue(compute, queue_prefix), "dagster-k8s/config": k8s}


def ocr_compute(env=None) -> str:
    """'gpu' when GPU engines are configured (IDP_OCR_GPU_ENGINES), else 'cpu'.

    The class picks the Dagster pool (`gpu` / `cpu`, limits in dagster.yaml) and the op
    tags (`dagster-celery/queue`, `dagster-k8s/config` with nvidia.com/gpu limits and a
    GPU node selector), so the step runs where its engines can.
    """
    env = os.environ if env is None else env
    return "gpu" if any(e for e in env.get("IDP_OCR_GPU_ENGINES", "").split(",")) else "cpu"
