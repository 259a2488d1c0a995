"""`idp api serve` / `python -m idp_api.serve`: run the API with uvicorn (127.0.0.1:8000 by default)."""

from __future__ import annotations

import json
import logging

import click


def serve(host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from idp_api.app import create_app
    from idp_api.config import load_config

    cfg = load_config()
    if host is not None or port is not None:
        cfg = cfg.model_copy(update={k: v for k, v in (("host", host), ("port", port)) if v is not None})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("alembic", "sentence_transformers", "httpx", "chromadb", "neo4j"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # uvicorn's own access log would print query strings; ours prints route templates (idp_api.access)
    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, access_log=False, log_level="info",
                timeout_graceful_shutdown=10)


@click.group("api")
def api_cli() -> None:
    """The HTTP API and review page."""


@api_cli.command("serve")
@click.option("--host", default=None, help="bind address (default $IDP_API_HOST or 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port (default $IDP_API_PORT or 8000)")
def serve_cmd(host: str | None, port: int | None) -> None:
    """Serve the API and the review page (reads IDP_API_* and the pipeline's variables)."""
    serve(host, port)


@api_cli.command("new-key")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["viewer", "uploader", "reviewer", "admin"]), help="repeatable")
@click.option("--append-to", "keys_file", type=click.Path(dir_okay=False), default=None,
              help="add the entry to this IDP_API_KEYS_FILE (a JSON list; created when missing)")
@click.option("--key-out", type=click.Path(dir_okay=False), default=None,
              help="write the key itself to this file (mode 600) instead of showing it")
def new_key_cmd(name: str, roles: tuple[str, ...], keys_file: str | None, key_out: str | None) -> None:
    """A new API key and its IDP_API_KEYS entry (only the key's SHA-256 digest is kept there)."""
    import os
    from pathlib import Path

    from idp_api.security import key_entry, new_key

    key = new_key()
    entry = key_entry(name, list(roles), key)
    if key_out:
        fd = os.open(key_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        click.echo(f"API key for {name} written to {key_out}", err=True)
    else:
        click.echo(f"API key for {name} (shown once, keep it secret): {key}", err=True)
    if keys_file:
        path = Path(keys_file)
        entries = json.loads(path.read_text()) if path.exists() and path.read_text().strip() else []
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([e for e in entries if e.get("name") != name] + [entry], indent=1) + "\n")
        click.echo(f"entry {name} ({', '.join(roles)}) added to {keys_file}", err=True)
    else:
        click.echo(json.dumps(entry))


if __name__ == "__main__":
    serve()
