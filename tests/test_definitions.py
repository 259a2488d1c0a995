"""The code location loads, and its shape (assets, deps, partitions, checks, tags) is what the docs say."""

from dagster import AssetKey, Definitions

from idp_assets.definitions import DOCUMENT_ASSETS, defs
from idp_assets.partitions import DOCUMENTS_PARTITIONS_NAME

CHAIN = ["source_documents", "raw_pages", "ocr_pages", "normalized_tables", "extracted_fields",
         "supplier_matches", "embeddings", "graph_nodes", "document_exports"]
SIDE_BRANCHES = {"page_thumbnails": "raw_pages"}  # per-document assets off the chain: name -> its parent


def test_definitions_load_and_resolve():
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} == set(CHAIN) | set(SIDE_BRANCHES) | {"supplier_master"}
    assert set(repo.sensor_defs and [s.name for s in repo.sensor_defs]) == {"inbox_sensor", "s3_sensor",
                                                                           "document_backfill_sensor",
                                                                           "partition_retention_sensor"}
    assert [s.name for s in repo.schedule_defs] == ["document_backfill_schedule"]
    assert repo.get_job("process_document") is not None


def test_every_asset_is_partitioned_by_document_and_has_checks():
    for a in DOCUMENT_ASSETS:
        assert a.partitions_def.name == DOCUMENTS_PARTITIONS_NAME, a.key
        assert a.check_specs, f"{a.key} has no asset checks"


def test_lineage_follows_the_stages():
    graph = defs.get_repository_def().asset_graph
    deps = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys() if k.to_user_string() in CHAIN}
    for upstream, downstream in zip(CHAIN, CHAIN[1:]):
        # every stage depends (directly or through its predecessor chain) on the previous one
        seen, todo = set(), [downstream]
        while todo:
            cur = todo.pop()
            for p in deps.get(cur, ()):
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        assert upstream in seen, (upstream, downstream)
    for name, parent in SIDE_BRANCHES.items():
        assert {p.to_user_string() for p in graph.get(AssetKey(name)).parent_keys} == {parent}, name


def test_ocr_step_names_its_compute_class():
    ocr = next(a for a in DOCUMENT_ASSETS if a.key == AssetKey("ocr_pages"))
    spec = ocr.specs_by_key[AssetKey("ocr_pages")]
    node = ocr.node_def
    assert node.pool == "cpu"
    tags = node.tags
    assert tags["idp/compute"] == "cpu" and tags["dagster-celery/queue"] == "cpu"
    assert "container_config" in tags["dagster-k8s/config"] or "dagster-k8s/config" in tags
    assert spec.key == AssetKey("ocr_pages")
