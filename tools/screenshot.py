"""Dev tool: screenshot of the Dagster UI's global asset lineage graph (docs/asset-graph.png).

    .venv/bin/python tools/screenshot.py [--out docs/asset-graph.png] [--path /asset-groups]

A generated sample invoice is processed into a temporary Dagster home (its own
ArcadeDB server on free ports, data under a temp folder), `dagster-webserver` is
started on 127.0.0.1 for that home, and headless Chromium (Debian package
`chromium`) renders the page.  Not part of the test suite: CI does not need a browser.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from idp_assets.runner import default_env  # noqa: E402
from idp_assets.webserver import REPO, free_port, running_webserver  # noqa: E402


def find_browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("no Chromium found: apt-get install -y chromium")


def process_sample(tmp: Path, bolt_uri: str, password: str) -> str:
    from dagster import DagsterInstance

    from idp_assets.exports import ExportTarget
    from idp_assets.runner import DocumentRunner
    from idp_assets.samples import born_digital_pdf
    from idp_assets.settings import build_resources
    from resources.graph import GraphStore

    resources = build_resources(env={}, data_dir=str(tmp / "data"))
    resources["graph_store"] = GraphStore(uri=bolt_uri, user="root", password=password, database="idp",
                                          manage_local_server=False, server_home=str(tmp / "graph"))
    resources["export_target"] = ExportTarget(out_dir=str(tmp / "exports"))
    src = tmp / "sample-invoice.pdf"
    src.write_bytes(born_digital_pdf())
    instance = DagsterInstance.local_temp(str(tmp / "dagster_home"))
    try:
        outcome = DocumentRunner(resources, instance).process(src)
    finally:
        instance.dispose()
    if outcome.status != "ok":
        raise SystemExit(f"sample document failed: {outcome.error}")
    return outcome.document_id


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "asset-graph.png"))
    ap.add_argument("--path", default="/asset-groups", help="UI page (default: global asset lineage)")
    ap.add_argument("--size", default="1600,1000", help="window size W,H")
    ap.add_argument("--budget-ms", type=int, default=15000, help="Chromium virtual time budget")
    args = ap.parse_args(argv)
    default_env()
    browser = find_browser()
    from resources import graph_server

    with tempfile.TemporaryDirectory(prefix="idp-screenshot-") as d:
        tmp = Path(d)
        (tmp / "dagster_home").mkdir()
        bolt_port, http_port = free_port(), free_port()
        password = "idp-screenshot"
        uri = graph_server.ensure_running(tmp / "graph", bolt_port=bolt_port, http_port=http_port,
                                          password=password, database="idp", timeout=120)
        try:
            doc_id = process_sample(tmp, uri, password)
            print(f"processed sample document {doc_id[:12]}", file=sys.stderr)
            env = {"IDP_DATA_DIR": str(tmp / "data"), "IDP_GRAPH_URI": uri, "IDP_GRAPH_MANAGED": "0",
                   "IDP_INBOX": str(tmp / "inbox")}
            with running_webserver(tmp / "dagster_home", env=env) as server:
                server.graphql("mutation { setNuxSeen }")  # no "join the community" dialog over the graph
                out = Path(args.out).resolve()
                out.parent.mkdir(parents=True, exist_ok=True)
                cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                       f"--window-size={args.size}", f"--virtual-time-budget={args.budget_ms}",
                       f"--user-data-dir={tmp / 'chromium'}", f"--screenshot={out}", f"{server.url}{args.path}"]
                subprocess.run(cmd, check=True, timeout=300, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            graph_server.stop(tmp / "graph")
    check_not_blank(out)
    print(out)
    return 0


def check_not_blank(path: Path) -> None:
    """A rendered page has many distinct colours; an empty or error page has few."""
    from PIL import Image

    with Image.open(path) as im:
        colours = im.convert("RGB").resize((400, 250)).getcolors(maxcolors=1 << 16)
    if colours is not None and len(colours) < 16:
        raise SystemExit(f"{path} looks blank ({len(colours)} colours)")


if __name__ == "__main__":
    raise SystemExit(main())
