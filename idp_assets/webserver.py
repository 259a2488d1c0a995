"""Start `dagster-webserver` on a given Dagster home and talk to its GraphQL API.

Used by the webserver smoke test and by `tools/screenshot.py`; the webserver is
always bound to 127.0.0.1 (multi-user access goes through an authenticating
proxy, see README "Configuration").
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Webserver:
    process: subprocess.Popen
    host: str
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def graphql(self, query: str, variables: Mapping | None = None, timeout: float = 60) -> dict:
        """POST /graphql; returns `data`, raises on transport or GraphQL errors."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            doc = json.loads(resp.read())
        if doc.get("errors"):
            raise RuntimeError(f"GraphQL errors: {doc['errors']}")
        return doc["data"]


def wait_ready(server: Webserver, timeout: float = 120.0) -> dict:
    """Poll /server_info until it answers (and the process is alive); returns its JSON."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=5) as resp:
                return json.loads(resp.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as exc:
            last = exc
            time.sleep(0.5)
    raise TimeoutError(f"webserver not ready after {timeout}s ({last}):\n{server.log_tail()}")


def wait_code_location(server: Webserver, timeout: float = 180.0) -> None:
    """Wait until the workspace's code location has loaded (asset nodes answer)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            data = server.graphql("{ workspaceOrError { __typename ... on Workspace { locationEntries {"
                                  " name loadStatus locationOrLoadError { __typename"
                                  " ... on PythonError { message } } } } } }")
            entries = data["workspaceOrError"].get("locationEntries", [])
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors}")
                return
            last = entries
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        time.sleep(1)
    raise TimeoutError(f"code location not loaded after {timeout}s ({last}):\n{server.log_tail()}")


@contextmanager
def running_webserver(
    dagster_home: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    workspace: Path = REPO / "workspace.yaml",
    ready_timeout: float = 180.0,
) -> Iterator[Webserver]:
    """`dagster-webserver -h 127.0.0.1 -p PORT -w workspace.yaml` with DAGSTER_HOME set; stopped on exit."""
    port = port or free_port()
    log_path = log_path or Path(dagster_home) / "webserver.log"
    full_env = {**os.environ, **(env or {}), "DAGSTER_HOME": str(dagster_home)}
    full_env.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    exe = Path(sys.executable).with_name("dagster-webserver")
    cmd = [str(exe) if exe.exists() else "dagster-webserver", "-h", HOST, "-p", str(port), "-w", str(workspace)]
    with open(log_path, "ab") as log:
        # own process group: the webserver's code-server child is stopped with it
        proc = subprocess.Popen(cmd, cwd=str(workspace.parent), env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Webserver(process=proc, host=HOST, port=port, log_path=log_path)
    try:
        wait_ready(server, ready_timeout)
        wait_code_location(server, ready_timeout)
        yield server
    finally:
        stop(server)


def stop(server: Webserver, grace: float = 20.0) -> int | None:
    """SIGTERM to the webserver's process group, SIGKILL after `grace` seconds; returns the exit code."""
    proc = server.process
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # leftover children of the group (code server) after the parent exited
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.returncode
