"""Executor choice for the document job (IDP_EXECUTOR) and a preview of the k8s step pod.

- `in_process` (default): every stage of a document in the run's own process (one Python
  start-up and model load per document).
- `multiprocess`: one subprocess per step on the run's machine; pools (`cpu` / `gpu`,
  idp_assets/compute.py) bound how many OCR steps hold a slot at once across all runs.
- `celery`: each step is a Celery task on the queue named by the step's
  `dagster-celery/queue` tag (`cpu` / `gpu`, with IDP_CELERY_QUEUE_PREFIX), consumed by
  `dagster-celery worker start -q gpu` / `-q cpu` workers. Broker from IDP_CELERY_BROKER
  (default: the local RabbitMQ), results backend from IDP_CELERY_BACKEND (default `rpc://`).
- `k8s`: each step is a Kubernetes Job; the step's `dagster-k8s/config` tag adds the
  `nvidia.com/gpu` limit, node selector and toleration for GPU steps. Image, namespace etc.
  come from the K8sRunLauncher / run config (`execution: config: job_image, job_namespace`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal, get_args

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

ExecutorName = Literal["in_process", "multiprocess", "celery", "k8s"]
EXECUTOR_NAMES: tuple[str, ...] = get_args(ExecutorName)

DEFAULT_CELERY_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
DEFAULT_CELERY_BACKEND = "rpc://"


def executor_name_from_env(env: Mapping[str, str] | None = None) -> ExecutorName:
    """IDP_EXECUTOR, validated; `in_process` when unset or empty."""
    env = os.environ if env is None else env
    name = (env.get("IDP_EXECUTOR") or "in_process").strip().lower().replace("-", "_")
    if name not in EXECUTOR_NAMES:
        raise ValueError(f"IDP_EXECUTOR={name!r}: expected one of {', '.join(EXECUTOR_NAMES)}")
    return name  # type: ignore[return-value]


def celery_executor_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Broker and backend of the celery executor; set through env vars so that credentials stay
    out of the job definition (`{"env": ...}` is resolved when the run starts)."""
    env = os.environ if env is None else env
    from idp_assets.compute import celery_queue

    return {
        "broker": {"env": "IDP_CELERY_BROKER"} if env.get("IDP_CELERY_BROKER") else DEFAULT_CELERY_BROKER,
        "backend": {"env": "IDP_CELERY_BACKEND"} if env.get("IDP_CELERY_BACKEND") else DEFAULT_CELERY_BACKEND,
        # steps without a `dagster-celery/queue` tag (every stage but OCR) go to the CPU queue, not to
        # dagster-celery's own default 'dagster' queue that no worker of this deployment consumes
        "config_source": {"task_default_queue": celery_queue("cpu", env.get("IDP_CELERY_QUEUE_PREFIX", ""))},
    }


def build_executor(name: str | None = None, env: Mapping[str, str] | None = None) -> ExecutorDefinition:
    """The executor definition for `name` (default: IDP_EXECUTOR)."""
    env = os.environ if env is None else env
    chosen = executor_name_from_env({"IDP_EXECUTOR": name} if name else env)
    if chosen == "in_process":
        return in_process_executor
    if chosen == "multiprocess":
        return multiprocess_executor
    if chosen == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_executor_config(env), name="celery")
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor


def _tag_strings(tags: Mapping[str, Any]) -> dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()}


def render_k8s_step_job(
    op_tags: Mapping[str, Any],
    *,
    step_key: str,
    image: str,
    namespace: str = "default",
    job_name: str | None = None,
) -> dict[str, Any]:
    """The Kubernetes Job manifest the k8s executor creates for a step with these op tags
    (without a cluster): same merge of the `dagster-k8s/config` tag and same
    `construct_dagster_k8s_job` call as `dagster_k8s.executor.K8sStepHandler.launch_step`."""
    import kubernetes
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_k8s_job_name, get_user_defined_k8s_config

    context = K8sContainerContext(namespace=namespace).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(_tag_strings(op_tags)))
    )
    name = job_name or f"dagster-step-{get_k8s_job_name('preview', step_key)}"
    job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(job_image=image, dagster_home="/opt/dagster/dagster_home"),
        args=["dagster", "api", "execute_step"],
        job_name=name,
        pod_name=name,
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/op": step_key},
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)
