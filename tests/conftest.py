import os
from pathlib import Path

import pytest

# tests bring their own Dagster instances; never write into a developer's DAGSTER_HOME
os.environ.pop("DAGSTER_HOME", None)
os.environ.setdefault("OMP_THREAD_LIMIT", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

# Each fixture module owns one real component (S3 server, Bolt server, ...).
pytest_plugins = [
    "tests.fixtures.bolt",
    "tests.fixtures.s3",
    "tests.fixtures.servers",
]

REPO = Path(__file__).resolve().parent.parent
CORPUS = (REPO.parent / "shared" / "corpus").resolve()


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "manifest.jsonl").exists():
        pytest.fail(f"evaluation corpus not found at {CORPUS} (expected ../shared/corpus)")
    return CORPUS
