"""Benchmarks and evaluations (`idp bench …`, `idp bench-fields`, `python -m idp_assets.bench.search`).

They may import any product code; product code (assets, `logic`, `resources`, `sensors`) never
imports them - only `idp_assets.cli`, lazily, to offer the commands (`[tool.importlinter]` in
pyproject.toml checks it).

* `fields` - table and field extraction per page type (`idp bench-fields`)
* `ocr` - pages/s per OCR engine and for the routed `ocr_pages` path (`idp bench ocr`)
* `pipeline` - documents/s of the whole Dagster pipeline per stage (`idp bench pipeline`)
* `search` - Recall@5 and indexing/query speed of hybrid search (`python -m idp_assets.bench.search`)
* `suppliers` - supplier recognition quality, calibration, Postgres speed (`idp bench suppliers`)
* `commands` - the click commands above, as `idp_assets.cli` adds them
"""
