"""The benchmark commands as `idp` offers them: the `idp bench` group and `idp bench-fields`."""

from __future__ import annotations

import click

from idp_assets.bench.api_search import bench_api_search
from idp_assets.bench.fields import bench_fields, calibrate_fields, ocr_cache_command
from idp_assets.bench.ocr import bench_ocr
from idp_assets.bench.pipeline import bench_pipeline
from idp_assets.bench.registry import bench_registry
from idp_assets.bench.suppliers import bench_suppliers


@click.group(name="bench")
def bench() -> None:
    """Benchmarks that write JSON reports."""


bench.add_command(bench_ocr, name="ocr")
bench.add_command(bench_pipeline, name="pipeline")
bench.add_command(bench_suppliers, name="suppliers")
bench.add_command(calibrate_fields, name="fields-calibrate")
bench.add_command(bench_registry, name="registry")
bench.add_command(ocr_cache_command, name="fields-ocr-cache")
bench.add_command(bench_api_search, name="api-search")

__all__ = ["bench", "bench_fields"]
