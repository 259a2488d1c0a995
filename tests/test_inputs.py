"""Batch inputs are classified with lstat before anything is opened (idp_assets.logic.inputs)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from idp_assets.logic.inputs import InputError, classify, display_path, expand, is_utf8_name, read_input

LATIN1 = os.fsdecode(b"caf\xe9-rechnung.pdf")  # a name that is not UTF-8, as os gives it (surrogate escapes)


@pytest.fixture
def tree(tmp_path):
    """A folder with every kind of entry a shared inbox can get."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    (d / "a.pdf").write_bytes(b"%PDF-1.4 a")
    (d / "sub" / "b.pdf").write_bytes(b"%PDF-1.4 b")
    (d / ".hidden.pdf").write_bytes(b"x")
    (d / "dangling.pdf").symlink_to("nowhere.pdf")
    (d / "loop1.pdf").symlink_to("loop2.pdf")
    (d / "loop2.pdf").symlink_to("loop1.pdf")
    (d / "inside.pdf").symlink_to("a.pdf")
    (d / "passwd.pdf").symlink_to("/etc/passwd")
    (d / "sub" / "up").symlink_to("..")  # a folder loop through a symlink
    os.mkfifo(d / "fifo_pipe.pdf")
    cwd = os.getcwd()
    os.chdir(d)  # a short relative path: AF_UNIX names are limited to ~100 bytes
    try:
        s = socket.socket(socket.AF_UNIX)
        s.bind("sock.pdf")
        s.close()
    finally:
        os.chdir(cwd)
    with open(os.path.join(os.fsencode(d), os.fsencode(LATIN1)), "wb") as f:
        f.write(b"%PDF-1.4 latin1")
    return d


def _by_name(items):
    return {os.path.basename(i.path): i for i in items}


def test_every_entry_is_one_input_with_a_reason(tree):
    got = _by_name(expand([str(tree)]))
    assert ".hidden.pdf" not in got
    reasons = {n: i.reason for n, i in got.items()}
    assert reasons == {
        "a.pdf": None, "inside.pdf": None, "b.pdf": None, LATIN1: None,
        "dangling.pdf": "not_found",
        "loop1.pdf": "not_a_regular_file", "loop2.pdf": "not_a_regular_file",
        "fifo_pipe.pdf": "not_a_regular_file", "sock.pdf": "not_a_regular_file",
        "passwd.pdf": "not_a_regular_file",  # leads outside the given folder: not followed
        "up": "not_a_regular_file",  # symlinked folder: not entered
    }
    assert "FIFO" in got["fifo_pipe.pdf"].message and "loop" in got["loop1.pdf"].message
    assert "outside" in got["passwd.pdf"].message and "--follow-symlinks" in got["passwd.pdf"].message
    assert read_input(got["inside.pdf"]) == b"%PDF-1.4 a"  # a symlink inside the folder is followed


def test_given_files_and_missing_paths(tree, tmp_path):
    got = expand([str(tree / "a.pdf"), str(tmp_path / "missing.pdf"), str(tree / "passwd.pdf")])
    assert [i.reason for i in got] == [None, "not_found", "not_a_regular_file"]


def test_follow_symlinks_allows_outside_targets_but_only_regular_files(tree):
    got = _by_name(expand([str(tree)], follow_symlinks=True))
    assert got["passwd.pdf"].ok and got["passwd.pdf"].target == os.path.realpath("/etc/passwd")
    assert got["fifo_pipe.pdf"].reason == "not_a_regular_file" and got["dangling.pdf"].reason == "not_found"


def test_symlink_to_a_fifo_is_not_followed(tree):
    (tree / "to-fifo.pdf").symlink_to("fifo_pipe.pdf")
    inp = classify(str(tree / "to-fifo.pdf"), [str(tree)])
    assert inp.reason == "not_a_regular_file" and "FIFO" in inp.message


def test_name_that_is_not_utf8_is_kept_and_shown_escaped(tree):
    inp = _by_name(expand([str(tree)]))[LATIN1]
    assert not is_utf8_name(inp.path)
    assert os.fsencode(inp.path).endswith(b"caf\xe9-rechnung.pdf")  # kept exactly: the file can be read
    assert read_input(inp) == b"%PDF-1.4 latin1"
    assert inp.display.endswith("caf\\xe9-rechnung.pdf")
    inp.display.encode("utf-8")  # always writable as UTF-8
    assert display_path(b"ok.pdf") == "ok.pdf"


def test_fifo_swapped_in_after_classification_never_blocks(tree):
    inp = classify(str(tree / "a.pdf"), [str(tree)])
    assert inp.ok
    os.unlink(tree / "a.pdf")
    os.mkfifo(tree / "a.pdf")  # a writer never comes
    result = {}

    def read():
        try:
            result["data"] = read_input(inp)
        except InputError as exc:
            result["reason"] = exc.reason

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "read_input blocked on a FIFO"
    assert result.get("reason") in ("not_a_regular_file", "unreadable")


def test_unreadable_and_too_large(tree, monkeypatch):
    assert classify(str(tree / "a.pdf"), [str(tree)], max_bytes=3).reason == "file_too_large"
    inp = classify(str(tree / "a.pdf"), [str(tree)])
    real_open = os.open

    def denied(path, flags, *a, **kw):
        if str(path).endswith("a.pdf"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *a, **kw)

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InputError) as err:
        read_input(inp)
    assert err.value.reason == "unreadable"


def test_classification_opens_nothing(tree, monkeypatch):
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda *a, **kw: opened.append(a[0]) or real_open(*a, **kw))
    t0 = time.monotonic()
    expand([str(tree)])
    assert opened == [] and time.monotonic() - t0 < 10
