"""What pdfium may be asked to draw: page cost estimated before, risky pages read in a child process.

A tiny PDF can make pdfium work for hours: Form XObjects that draw each other several
times fan out exponentially (20 levels x 4 = 10^12 operators), and a pdfium call cannot
be interrupted from Python.  So before pdfium loads a page:

* :func:`preflight` walks the page's content with pypdf (pure Python, bounded by the
  number of distinct streams: each form is costed once and memoised) and reports the
  drawing work - content bytes with every ``Do`` of a form expanded, nesting depth,
  image pixels - plus the AcroForm field values drawn on the page;
* :func:`risk` sorts pages into *safe* (read in-process, as before), *risky* (read in a
  child process with a time limit and an address-space limit, :func:`run_isolated`) and
  *hopeless* (refused at once: ``page_too_complex``).

AcroForm values (an invoice number typed into a form field) are not part of the page's
text layer; :func:`form_lines` turns them into ``label: value`` lines for the page text.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SOFT_CONTENT_BYTES = 8_000_000  # expanded drawing work above this: the page is read in a child process
HARD_CONTENT_BYTES = 400_000_000  # above this: refused without trying (pdfium needs minutes to hours)
SOFT_DEPTH = 12  # form nesting deeper than this: child process
SOFT_IMAGE_PIXELS = 150_000_000  # images to decode above this: child process (memory limit applies)
MAX_WALK_DEPTH = 64
DEFAULT_PAGE_TIMEOUT_S = 30.0
DEFAULT_CHILD_MEMORY_MB = 3072
STARTUP_TIMEOUT_S = 60.0  # interpreter start, imports and opening the PDF in the child
CHILD_MODULE = "idp_assets.logic.pdf_child"

_DO = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*Do\b")
_SCN = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*(?:scn|SCN)\b")
_TF = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s+[-+0-9.]+\s*Tf\b")


@dataclass
class FormValue:
    rect: tuple[float, float, float, float]
    name: str
    value: str


@dataclass
class PageCost:
    content_bytes: float = 0.0
    depth: int = 0
    image_pixels: float = 0.0
    cycle: bool = False
    error: str | None = None
    form_values: list[FormValue] = field(default_factory=list)


@dataclass
class Preflight:
    pages: list[PageCost]
    error: str | None = None


def page_timeout_s() -> float:
    return float(os.environ.get("IDP_PDF_PAGE_TIMEOUT_S") or DEFAULT_PAGE_TIMEOUT_S)


def child_memory_mb() -> int:
    return int(os.environ.get("IDP_PDF_CHILD_MEMORY_MB") or DEFAULT_CHILD_MEMORY_MB)


# --------------------------------------------------------------------------- cost walk


class _Walker:
    def __init__(self):
        self.memo: dict[object, tuple[float, int, float, bool]] = {}

    @staticmethod
    def _key(ref, obj):
        idnum = getattr(ref, "idnum", None)
        return ("ref", idnum, getattr(ref, "generation", 0)) if idnum is not None else ("obj", id(obj))

    def resource(self, resources, category: str, name: str):
        try:
            cat = resources.get(category) if resources is not None else None
            cat = cat.get_object() if cat is not None else None
            ref = cat.raw_get(f"/{name}") if cat is not None and f"/{name}" in cat else None
        except Exception:  # noqa: BLE001 - a broken resource dictionary draws nothing
            return None, None
        if ref is None:
            return None, None
        try:
            return ref, ref.get_object()
        except Exception:  # noqa: BLE001
            return None, None

    def stream(self, ref, obj, inherited_resources, depth: int, stack: set) -> tuple[float, int, float, bool]:
        """(expanded content bytes, depth, image pixels, cycle) of a content stream (form, pattern, glyph)."""
        key = self._key(ref, obj)
        if key in self.memo:
            return self.memo[key]
        if key in stack or depth > MAX_WALK_DEPTH:
            return math.inf, depth, 0.0, True
        stack.add(key)
        try:
            data = obj.get_data()
            resources = obj.get("/Resources")
            resources = resources.get_object() if resources is not None else inherited_resources
            result = self.content(data, resources, depth, stack)
        finally:
            stack.discard(key)
        self.memo[key] = result
        return result

    def content(self, data: bytes, resources, depth: int, stack: set) -> tuple[float, int, float, bool]:
        total, deepest, pixels, cycle = float(len(data)), depth, 0.0, False
        uses: dict[tuple[str, str], int] = {}
        for rx, cat in ((_DO, "/XObject"), (_SCN, "/Pattern"), (_TF, "/Font")):
            for m in rx.finditer(data):
                k = (cat, m.group(1).decode("latin-1"))
                uses[k] = uses.get(k, 0) + 1
        for (cat, name), times in uses.items():
            ref, obj = self.resource(resources, cat, name)
            if obj is None:
                continue
            try:
                subtype = obj.get("/Subtype")
            except Exception:  # noqa: BLE001
                continue
            if cat == "/XObject" and subtype == "/Image":
                try:
                    pixels += float(obj.get("/Width", 0)) * float(obj.get("/Height", 0)) * times
                except (TypeError, ValueError):
                    pass
                continue
            if cat == "/Font":
                if subtype != "/Type3":
                    continue
                b, d, p, c = self.type3(ref, obj, resources, depth, stack)
            elif cat == "/XObject" and subtype != "/Form":
                continue
            elif cat == "/Pattern" and not hasattr(obj, "get_data"):
                continue  # shading patterns draw no content stream
            else:
                b, d, p, c = self.stream(ref, obj, resources, depth + 1, stack)
            total += b * times
            pixels += p * times
            deepest = max(deepest, d)
            cycle = cycle or c
        return total, deepest, pixels, cycle

    def type3(self, ref, font, resources, depth, stack):
        key = ("t3",) + self._key(ref, font)
        if key in self.memo:
            return self.memo[key]
        total, deepest, pixels, cycle = 0.0, depth, 0.0, False
        try:
            procs = font.get("/CharProcs")
            procs = procs.get_object() if procs is not None else {}
            font_resources = font.get("/Resources")
            font_resources = font_resources.get_object() if font_resources is not None else resources
            for name in list(procs.keys()):
                pref = procs.raw_get(name)
                b, d, p, c = self.stream(pref, pref.get_object(), font_resources, depth + 1, stack)
                total, pixels = total + b, pixels + p  # every glyph once: a lower bound of the work
                deepest, cycle = max(deepest, d), cycle or c
        except Exception:  # noqa: BLE001
            pass
        self.memo[key] = (total, deepest, pixels, cycle)
        return self.memo[key]


def _inherited(field_obj, key: str, limit: int = 16):
    obj = field_obj
    for _ in range(limit):
        if obj is None:
            return None
        if key in obj:
            return obj[key]
        parent = obj.get("/Parent")
        obj = parent.get_object() if parent is not None else None
    return None


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    s = str(value)
    return s[1:] if s.startswith("/") else s


def _form_values(page) -> list[FormValue]:
    out: list[FormValue] = []
    annots = page.get("/Annots")
    try:
        annots = annots.get_object() if annots is not None else []
    except Exception:  # noqa: BLE001
        return out
    for a in list(annots)[:2000]:
        try:
            annot = a.get_object()
            if annot.get("/Subtype") != "/Widget":
                continue
            ft = _inherited(annot, "/FT")
            if ft not in ("/Tx", "/Ch"):
                continue
            value = _text(_inherited(annot, "/V")).strip()
            if not value:
                continue
            name = _text(_inherited(annot, "/TU") or _inherited(annot, "/T")).strip()
            rect = tuple(float(x) for x in annot.get("/Rect", [0, 0, 0, 0]))
            left, bottom, right, top = min(rect[0], rect[2]), min(rect[1], rect[3]), max(rect[0], rect[2]), max(rect[1], rect[3])
            out.append(FormValue((left, bottom, right, top), name[:200], value[:2000]))
        except Exception:  # noqa: BLE001 - a broken widget is skipped
            continue
    return out


def preflight(data: bytes, max_pages: int = 1000) -> Preflight:
    """Cost of every page, from pypdf; `error` set when the structure could not be read at all."""
    try:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as exc:  # noqa: BLE001
                return Preflight([], f"encrypted: {exc}")
        n = len(reader.pages)
    except Exception as exc:  # noqa: BLE001
        return Preflight([], f"{type(exc).__name__}: {exc}"[:300])
    if n > max_pages:
        return Preflight([], f"{n} pages")
    walker = _Walker()
    pages: list[PageCost] = []
    for i in range(n):
        cost = PageCost()
        try:
            page = reader.pages[i]
            resources = page.get("/Resources")
            resources = resources.get_object() if resources is not None else None
            contents = page.get_contents()
            data_i = contents.get_data() if contents is not None else b""
            b, d, p, c = walker.content(data_i, resources, 0, set())
            for a in (page.get("/Annots") or []):  # appearance streams are drawn too (may_draw_forms)
                try:
                    ap = a.get_object().get("/AP")
                    normal = ap.get_object().get("/N") if ap is not None else None
                    if normal is None:
                        continue
                    nobj = normal.get_object()
                    streams = [(normal, nobj)] if hasattr(nobj, "get_data") else [(nobj.raw_get(k), nobj[k]) for k in nobj]
                    for ref, s in streams[:8]:
                        bb, dd, pp, cc = walker.stream(ref, s.get_object(), resources, 1, set())
                        b, d, p, c = b + bb, max(d, dd), p + pp, c or cc
                except Exception:  # noqa: BLE001
                    continue
            cost = PageCost(b, d, p, c, None, _form_values(page))
        except RecursionError:
            cost = PageCost(math.inf, MAX_WALK_DEPTH, 0.0, False, "nesting too deep to read")
        except Exception as exc:  # noqa: BLE001 - pypdf could not read the page: pdfium decides, isolated
            cost = PageCost(error=f"{type(exc).__name__}: {exc}"[:200])
        pages.append(cost)
    return Preflight(pages)


def risk(cost: PageCost | None) -> tuple[str, str]:
    """("safe" | "risky" | "hopeless", why) for one page."""
    if cost is None:
        return "risky", "the page structure could not be read before drawing"
    if cost.content_bytes >= HARD_CONTENT_BYTES:
        what = "nested forms draw each other in a loop" if cost.cycle and math.isinf(cost.content_bytes) else \
            f"drawing it takes ~{_human(cost.content_bytes)} of content operators (nested forms expanded)"
        return "hopeless", f"{what}; the limit is {_human(HARD_CONTENT_BYTES)}"
    if cost.error:
        return "risky", cost.error
    if cost.cycle:
        return "risky", "nested forms refer to each other"
    if cost.content_bytes > SOFT_CONTENT_BYTES:
        return "risky", f"~{_human(cost.content_bytes)} of content operators"
    if cost.depth > SOFT_DEPTH:
        return "risky", f"forms nested {cost.depth} deep"
    if cost.image_pixels > SOFT_IMAGE_PIXELS:
        return "risky", f"{cost.image_pixels / 1e6:.0f} megapixels of images"
    return "safe", ""


def _human(n: float) -> str:
    if math.isinf(n):
        return "unbounded"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.0f} PB"


# --------------------------------------------------------------------------- form values


def form_lines(values: list[FormValue], label_at=None) -> list[str]:
    """``label: value`` lines for filled form fields, top to bottom.  `label_at(l, b, r, t)` returns the
    page text in a rectangle (the printed label left of or above the field); else the field's name."""
    out = []
    for v in sorted(values, key=lambda v: (-v.rect[3], v.rect[0])):
        label = ""
        if label_at is not None:
            left, bottom, right, top = v.rect
            h = max(top - bottom, 8.0)
            for box in ((max(0.0, left - 250), bottom - 2, left, top + 2), (left - 5, top, right + 5, top + 1.5 * h)):
                try:
                    found = label_at(*box) or ""
                except Exception:  # noqa: BLE001
                    found = ""
                found = [ln.strip() for ln in found.replace("\r", "\n").split("\n") if ln.strip()]
                if found:
                    label = found[-1]
                    break
        if not label:
            label = re.sub(r"[_.]+", " ", v.name).strip()
        value = " ".join(v.value.split())
        if label and value in label:
            out.append(label)
        elif label:
            out.append(f"{label} {value}" if label.endswith(":") else f"{label}: {value}")
        else:
            out.append(value)
    return out


# --------------------------------------------------------------------------- child process


def _child_env() -> dict:
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = "1"
    return env


class IsolatedFailure(Exception):
    """A page the child could not read: `code` is a DocumentError code when pdfium said why."""

    def __init__(self, page: int, message: str, code: str | None = None):
        super().__init__(f"page {page}: {message}")
        self.page = page
        self.message = message
        self.code = code


def run_isolated(data: bytes, pages: list[int], job: dict, *, timeout_s: float | None = None,
                 memory_mb: int | None = None) -> dict[int, dict]:
    """Read `pages` (0-based) of the PDF in a child process (``python -m idp_assets.logic.pdf_child``),
    each within `timeout_s` seconds, the child limited to `memory_mb` of address space.  Returns
    page index -> the child's result; raises IsolatedFailure for the first page that ran out of time
    or memory or crashed the child."""
    timeout_s = page_timeout_s() if timeout_s is None else timeout_s
    memory_mb = child_memory_mb() if memory_mb is None else memory_mb
    header = json.dumps({**job, "pages": pages, "memory_mb": memory_mb, "cpu_s": int(timeout_s * len(pages)) + 10})
    proc = subprocess.Popen([sys.executable, "-m", CHILD_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=_child_env(), start_new_session=True)
    results: dict[int, dict] = {}
    try:
        try:
            proc.stdin.write(header.encode() + b"\n" + data)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        buf = b""
        pending = list(pages)
        ready = False
        started = time.monotonic()
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        while pending:
            page = pending[0]
            left = started + (timeout_s if ready else STARTUP_TIMEOUT_S) - time.monotonic()
            if left <= 0:
                raise IsolatedFailure(page + 1, f"not read within {timeout_s:g} s" if ready else
                                      f"the reader process did not start within {STARTUP_TIMEOUT_S:g} s")
            readable, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not readable:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:  # the child died: out of memory (RLIMIT_AS), a crash, or its CPU limit
                try:
                    rc = proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    rc = None
                why = {-9: "killed (CPU limit)", -24: "CPU limit reached", -11: "pdfium crashed",
                       -6: "pdfium aborted (out of memory?)"}.get(rc, f"the reader process exited ({rc})")
                raise IsolatedFailure(page + 1, why)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("ready"):
                    ready, started = True, time.monotonic()
                    continue
                if msg.get("error"):
                    raise IsolatedFailure(int(msg.get("page", page)) + 1, str(msg["error"])[:300], msg.get("code"))
                results[int(msg["page"])] = msg
                if msg["page"] in pending:
                    pending.remove(msg["page"])
                started = time.monotonic()  # the next page gets its own time
        return results
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                proc.kill()
        proc.wait()
        proc.stdout.close()


def encode_png(png: bytes | None) -> str | None:
    return base64.b64encode(png).decode("ascii") if png else None


def decode_png(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text else None
