"""`idp search "QUERY" [--k 10] [--supplier ID] [--after DATE]`: hybrid search from the command line."""

from __future__ import annotations

import contextlib
import json

import click


@click.command("search")
@click.argument("query")
@click.option("--k", "k", default=10, show_default=True, type=click.IntRange(1, 100), help="number of documents")
@click.option("--supplier", default=None, help="only documents of this supplier (master id or supplier name)")
@click.option("--after", default=None, help="only documents dated on or after this ISO date (YYYY-MM-DD)")
@click.option("--mode", type=click.Choice(["hybrid", "vector"]), default="hybrid", show_default=True,
              help="vector: Chroma similarity only (no graph, no exact matches)")
@click.option("--json", "as_json", is_flag=True, help="print the hits as JSON")
@click.option("--data-dir", default=None, help="IDP_DATA_DIR of the index (default: env / ./.idp)")
def search_cmd(query, k, supplier, after, mode, as_json, data_dir):
    """Find documents by meaning and by their connections (supplier, shared entities, duplicates)."""
    from idp_assets.hybrid_search import search
    from idp_assets.settings import build_resources

    # outside a Dagster run EnvVar secrets (IDP_GRAPH_PASSWORD, IDP_EMBED_API_KEY) are resolved here
    configured = build_resources(data_dir=data_dir)
    with contextlib.ExitStack() as stack:
        res = {k: stack.enter_context(configured[k].process_config_and_initialize_cm())
               for k in ("embedder", "vector_store", "graph_store")}
        graph = res["graph_store"] if mode == "hybrid" else None
        timings: dict = {}
        try:
            hits = search(query, res["embedder"], res["vector_store"], graph, k=k, supplier=supplier, after=after,
                          mode=mode, timings=timings)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"query": query, "hits": [h.to_dict() for h in hits],
                               "ms": round(timings.get("total_ms", 0.0), 1)}, indent=2, ensure_ascii=False))
        return
    if not hits:
        click.echo("no documents found")
        return
    for i, h in enumerate(hits, 1):
        meta = " · ".join(x for x in (h.doc_type, h.supplier_name, h.date) if x)
        click.echo(f"{i:2d}. {h.score:.3f}  {h.filename or h.document_id[:12]}  p.{h.page or '-'}  {meta}")
        click.echo(f"     {h.snippet}")
        click.echo(f"     why: {'; '.join(h.reasons)}")
