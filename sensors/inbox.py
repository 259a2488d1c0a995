"""Folder-drop sensor: every file dropped into the inbox folder becomes a document.

Cursor design
-------------
The cursor is a :class:`sensors.common.SeenState`: a map *relative path ->
"size:mtime_ns"* of every file already examined (hashed and stored, or given up
on) that is still in the inbox, plus a small map of files whose read failed and
will be retried.  It is stored as ``"v1:" + base64(zlib(json))`` - relative paths
share prefixes and compress well, so thousands of files stay in the tens of
kilobytes.  A tick costs one directory walk with one ``stat`` per entry and a
dictionary look-up per file: an already seen file (same size and mtime) is
never opened, let alone re-hashed.  A file whose size or mtime changed is
examined again (new bytes -> new sha256 -> new partition; same bytes -> no new
run).  Entries of deleted files are pruned, so the cursor follows the size of
the inbox, not its history.  If part of the tree cannot be listed (permission
error on a sub-folder) nothing is pruned in that tick.

Why not a high-water mark on mtime/ctime: ``mv`` and ``cp -p``/``rsync -a``
keep old mtimes, ctime is not portable (creation time on Windows), and a mark
cannot represent files skipped because they were too young or unreadable.  The
map is exact and still cheap; it is the state that makes "never re-hash a seen
file" true.  Should an inbox grow to hundreds of thousands of files, archive
processed files out of it (every original is already in the document store).

Which files are taken
---------------------
* regular files only, below ``path`` (recursively unless ``recursive=False``);
  a FIFO, socket or device, a dangling symlink or a symlink loop is never opened:
  it is logged once and remembered in the cursor (like an escaping symlink), so it
  can never block or fail a tick; a file larger than ``max_file_bytes`` likewise;
* hidden names (leading ``.``, files and folders) and partial-download suffixes
  (``.tmp``, ``.part``, ``.partial``, ``.crdownload``, ``.download``, ``~``) are
  ignored;
* files modified less than ``min_age_seconds`` ago (also mtimes in the future)
  are still being written and wait for a later tick; a file that changes while
  it is read is skipped for this tick as well;
* a symlink to a file inside the inbox is followed; a symlink that resolves
  outside the inbox (or is broken / points to a folder) is not followed -
  escaping links are logged once and remembered with their target, so they are
  looked at again only if the link changes.  Symlinked folders are not entered.

The inbox folder missing is a skipped tick (cursor kept), not an error.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

from dagster import (
    ConfigurableResource,
    DefaultSensorStatus,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from pydantic import Field

from resources.storage import DocumentStore, printable

from .common import (
    DEFAULT_MAX_PER_TICK,
    PROCESS_JOB_NAME,
    Candidate,
    Rejected,
    SeenState,
    SkipForNow,
    ingest,
)

IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", "~")
_O_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


class InboxSettings(ConfigurableResource):
    """Where the inbox sensor looks for dropped files."""

    path: str = Field(default="./inbox", description="folder watched for dropped documents")
    recursive: bool = Field(default=True, description="also take files from sub-folders")
    min_age_seconds: float = Field(
        default=2.0, ge=0.0, description="files modified more recently are assumed to be still written"
    )
    max_per_tick: int = Field(
        default=DEFAULT_MAX_PER_TICK, ge=1, description="files examined per tick; the rest wait for the next"
    )
    max_file_bytes: int = Field(
        default=200 * 1024 * 1024, ge=1, description="larger files are not read (logged once, remembered)"
    )


def is_ignored_name(name: str) -> bool:
    return name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return what
    return "special file"


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def _make_reader(target: str, version: str):
    def read() -> bytes:
        try:
            fd = os.open(target, _O_FLAGS)
        except FileNotFoundError as exc:
            raise SkipForNow("file disappeared") from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SkipForNow("file was replaced by a symlink") from exc
            raise
        with os.fdopen(fd, "rb") as fh:
            before = os.fstat(fh.fileno())
            if not stat.S_ISREG(before.st_mode):
                raise SkipForNow("not a regular file any more")
            data = fh.read()
            after = os.fstat(fh.fileno())
        if f"{after.st_size}:{after.st_mtime_ns}" != version or len(data) != after.st_size:
            raise SkipForNow("file changed while it was read (still being written?)")
        return data

    return read


def _rejecter(reason: str):
    def read() -> bytes:
        raise Rejected(reason)

    return read


def scan_inbox(settings: InboxSettings, log=None, now: float | None = None) -> tuple[list[Candidate], bool]:
    """List the inbox: (candidates, listing_complete).  Raises FileNotFoundError if the folder is missing."""
    root = os.path.realpath(settings.path)
    if not os.path.isdir(root):
        raise FileNotFoundError(root)
    now = time.time() if now is None else now
    min_age_ns = int(settings.min_age_seconds * 1e9)
    now_ns = int(now * 1e9)
    candidates: list[Candidate] = []
    complete = True
    young = 0

    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = list(os.scandir(os.path.join(root, rel_dir)))
        except OSError as exc:
            complete = False
            if log is not None:
                log.warning(printable(f"cannot list {os.path.join(root, rel_dir)}: {exc}"))
            continue
        for entry in entries:
            name = entry.name
            if is_ignored_name(name):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            abs_path = os.path.join(root, rel_dir, name)
            uri = Path(abs_path).as_uri()

            def refuse(version: str, reason: str) -> None:
                candidates.append(Candidate(key=rel, version=version, uri=uri, filename=name,
                                            read=_rejecter(printable(reason))))

            try:
                if entry.is_symlink():
                    try:
                        target = os.path.realpath(abs_path, strict=True)
                    except FileNotFoundError:
                        refuse(f"dangling:{os.readlink(abs_path)}", "dangling symlink; not followed")
                        continue
                    except OSError as exc:
                        if exc.errno != errno.ELOOP:
                            raise
                        refuse(f"loop:{os.readlink(abs_path)}", "symlink loop; not followed")
                        continue
                    if not _inside(target, root):
                        refuse(f"link:{target}", f"symlink points outside the inbox ({target}); not followed")
                        continue
                    st = os.stat(target)
                    if stat.S_ISDIR(st.st_mode):
                        continue  # links to folders are not entered
                    if not stat.S_ISREG(st.st_mode):
                        refuse(f"link:{target}:{st.st_mode:o}", f"symlink to a {_kind(st.st_mode)}; not read")
                        continue
                    read_path = target
                elif entry.is_dir(follow_symlinks=False):
                    if settings.recursive:
                        stack.append(rel)
                    continue
                else:
                    st = entry.stat(follow_symlinks=False)
                    if not stat.S_ISREG(st.st_mode):  # FIFO, socket, device: never opened
                        refuse(f"special:{st.st_mode:o}:{st.st_mtime_ns}", f"{_kind(st.st_mode)}; not read")
                        continue
                    read_path = abs_path
            except FileNotFoundError:
                continue  # vanished between listing and stat
            except OSError as exc:
                if log is not None:
                    log.warning(printable(f"cannot stat {abs_path}: {exc}"))
                complete = False
                continue
            if now_ns - st.st_mtime_ns < min_age_ns:
                young += 1
                continue
            version = f"{st.st_size}:{st.st_mtime_ns}"
            if st.st_size > settings.max_file_bytes:
                refuse(version, f"{st.st_size} bytes, more than max_file_bytes={settings.max_file_bytes}; not read")
                continue
            candidates.append(
                Candidate(key=rel, version=version, uri=uri, filename=name, read=_make_reader(read_path, version))
            )
    if young and log is not None:
        log.debug(f"{young} file(s) modified less than {settings.min_age_seconds}s ago wait for a later tick")
    return candidates, complete


def make_inbox_sensor(
    *,
    name: str = "inbox_sensor",
    job_name: str | None = PROCESS_JOB_NAME,
    job=None,
    minimum_interval_seconds: int = 5,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """Build the folder-drop sensor (module-level ``inbox_sensor`` uses the defaults).

    Resources (by key): ``inbox_settings`` (:class:`InboxSettings`) and ``document_store``.
    """

    @sensor(
        name=name,
        job_name=None if job is not None else job_name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Registers every file dropped into the inbox folder as a document partition and runs it.",
    )
    def _inbox_sensor(
        context: SensorEvaluationContext, inbox_settings: InboxSettings, document_store: DocumentStore
    ) -> SensorResult | SkipReason:
        settings, store = inbox_settings, document_store
        state = SeenState.decode(context.cursor, context.log)
        try:
            listing, complete = scan_inbox(settings, context.log)
        except FileNotFoundError:
            return SkipReason(f"inbox folder {os.path.abspath(settings.path)} does not exist")
        return ingest(
            context, store, listing, state, max_per_tick=settings.max_per_tick, listing_complete=complete
        )

    return _inbox_sensor


inbox_sensor = make_inbox_sensor()
