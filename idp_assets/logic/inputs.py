"""Input paths of a batch: classified with ``lstat`` before anything is opened.

`idp process` accepts any paths.  Each given path, and each entry found below a
given folder, becomes one :class:`InputFile`: either readable (a regular file, or a
symlink that leads to one inside the given folders) or refused with a reason that
the batch records in ``index.jsonl``:

* ``not_found`` - the path does not exist, or a symlink is dangling;
* ``not_a_regular_file`` - FIFO, socket, device, a symlink loop, a symlink to a
  folder, or a symlink leading outside the given folders (not followed unless
  ``follow_symlinks``);
* ``unreadable`` - permission denied, a name too long, any other OS error;
* ``file_too_large`` - over the byte limit (the bytes are never read).

Nothing here opens a path before ``lstat`` has classified it, a FIFO is never
opened (and ``O_NONBLOCK`` + ``fstat`` guard against one swapped in afterwards),
and a symlink is never followed out of the folders it was found in.  Names that
are not valid UTF-8 stay usable (``str`` with surrogate escapes, as ``os`` gives
them) and are shown escaped by :func:`display_path` - never a crash.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass

INPUT_REASONS = ("not_found", "not_a_regular_file", "unreadable", "file_too_large")

_O_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
            | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


class InputError(Exception):
    """A path that is not read; `reason` is one of INPUT_REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def display_path(path) -> str:
    """The path as text that is always valid UTF-8: bytes that are not UTF-8 shown as ``\\xe9``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8_name(path) -> bool:
    try:
        os.fsencode(path).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


@dataclass(frozen=True)
class InputFile:
    """One input of a batch: `path` as given or found, `target` the file to open (None when refused)."""

    path: str
    target: str | None = None
    reason: str | None = None
    message: str | None = None
    size: int = 0
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file classified

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def display(self) -> str:
        return display_path(self.path)

    @property
    def name(self) -> str:
        return os.path.basename(self.path.rstrip(os.sep)) or self.path


def _inside(path: str, roots: Iterable[str]) -> bool:
    for root in roots:
        try:
            if os.path.commonpath([path, root]) == root:
                return True
        except ValueError:  # different drives on Windows
            continue
    return False


def _os_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "not_found"
    if exc.errno == errno.ELOOP:
        return "not_a_regular_file"
    return "unreadable"


def classify(path: str, roots: Iterable[str] = (), *, follow_symlinks: bool = False,
             max_bytes: int | None = None) -> InputFile:
    """What `path` is, found by ``lstat`` (nothing is opened).

    A symlink is followed only to a regular file inside one of `roots` (real paths
    of the given folders), or anywhere with `follow_symlinks`.
    """
    roots = [os.path.realpath(r) for r in roots]
    try:
        st = os.lstat(path)
    except OSError as exc:
        return InputFile(path, reason=_os_reason(exc), message=f"{exc.strerror or exc}")
    target = path
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.path.realpath(path, strict=True)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return InputFile(path, reason="not_a_regular_file", message="symlink loop; not followed")
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                try:
                    where = f" to {display_path(os.readlink(path))}"
                except OSError:
                    where = ""
                return InputFile(path, reason="not_found", message=f"dangling symlink{where}")
            return InputFile(path, reason="unreadable", message=f"cannot resolve the symlink ({exc.strerror or exc})")
        except RuntimeError:  # symlink loop on Pythons that raise RuntimeError
            return InputFile(path, reason="not_a_regular_file", message="symlink loop; not followed")
        if not follow_symlinks and not _inside(target, roots):
            return InputFile(path, reason="not_a_regular_file",
                             message=f"symlink leads outside the given folders (to {display_path(target)}); "
                                     "not followed (--follow-symlinks to allow)")
        try:
            st = os.stat(target, follow_symlinks=False)
        except OSError as exc:
            return InputFile(path, reason=_os_reason(exc), message=f"{exc.strerror or exc}")
        if not stat.S_ISREG(st.st_mode):
            return InputFile(path, reason="not_a_regular_file", message=f"symlink to {_kind(st.st_mode)}; not followed")
    elif not stat.S_ISREG(st.st_mode):
        return InputFile(path, reason="not_a_regular_file", message=f"{_kind(st.st_mode)}; not read")
    if max_bytes is not None and st.st_size > max_bytes:
        return InputFile(path, reason="file_too_large", message=f"{st.st_size} bytes, the limit is {max_bytes}",
                         size=st.st_size)
    return InputFile(path, target=target, size=st.st_size, identity=(st.st_dev, st.st_ino))


def expand(paths: Iterable[str], *, follow_symlinks: bool = False, max_bytes: int | None = None) -> list[InputFile]:
    """Every input of a batch, in order: given files, and the entries below given folders (recursively,
    sorted, hidden names skipped, symlinked folders not entered).  Every path that is not a readable
    regular file is still one entry, with its reason."""
    paths = [os.fspath(p) for p in paths]
    # the given folders, and the folder of each given file: symlinks may lead anywhere inside them
    roots = [os.path.realpath(p) if os.path.isdir(p) else os.path.realpath(os.path.dirname(os.path.abspath(p)))
             for p in paths]
    out: list[InputFile] = []
    for p in paths:
        try:
            st = os.lstat(p)
        except OSError:
            st = None
        if st is not None and (stat.S_ISDIR(st.st_mode) or (stat.S_ISLNK(st.st_mode) and os.path.isdir(p))):
            # a folder the user named (also through a symlink): walked, its entries judged against the roots
            out += _walk(p, roots, follow_symlinks, max_bytes)
        else:
            out.append(classify(p, roots, follow_symlinks=follow_symlinks, max_bytes=max_bytes))
    return out


def _walk(top: str, roots: list[str], follow_symlinks: bool, max_bytes: int | None) -> list[InputFile]:
    out: list[InputFile] = []
    seen_dirs: set[tuple[int, int]] = set()

    def visit(folder: str) -> None:
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen_dirs:  # a bind mount or hard-linked folder loop
                out.append(InputFile(folder, reason="not_a_regular_file", message="folder loop; not entered again"))
                return
            seen_dirs.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            out.append(InputFile(folder, reason=_os_reason(exc), message=f"cannot list the folder ({exc.strerror or exc})"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                visit(entry.path)
            else:
                out.append(classify(entry.path, roots, follow_symlinks=follow_symlinks, max_bytes=max_bytes))

    visit(top)
    return out


def read_input(inp: InputFile, max_bytes: int | None = None) -> bytes:
    """The bytes of a classified input; raises InputError.  Opens without following a symlink in the
    last component and without blocking, and checks that the opened file is the regular file that
    was classified (nothing swapped in between)."""
    if not inp.ok:
        raise InputError(inp.reason or "unreadable", inp.message or "")
    try:
        fd = os.open(inp.target, _O_FLAGS)
    except OSError as exc:
        raise InputError(_os_reason(exc), f"cannot open ({exc.strerror or exc})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError("not_a_regular_file", f"{_kind(st.st_mode)}; not read")
        if inp.identity is not None and (st.st_dev, st.st_ino) != inp.identity:
            raise InputError("unreadable", "the file was replaced while the batch looked at it")
        if max_bytes is not None and st.st_size > max_bytes:
            raise InputError("file_too_large", f"{st.st_size} bytes, the limit is {max_bytes}")
        chunks, total = [], 0
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except BlockingIOError:
                raise InputError("unreadable", "the file would block") from None
            except OSError as exc:
                raise InputError("unreadable", f"read failed ({exc.strerror or exc})") from exc
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise InputError("file_too_large", f"more than {max_bytes} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)
