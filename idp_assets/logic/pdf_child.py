"""Child process that reads risky PDF pages under limits (started by `pdf_guard.run_isolated`).

stdin: one JSON line (pages, dpi, max_pixels, render, form_values, memory_mb, cpu_s), then the
PDF bytes.  stdout: ``{"ready": true}`` once the PDF is open, then one JSON line per page, in order, as soon as
it is read.  The address
space (RLIMIT_AS) and CPU time (RLIMIT_CPU) are limited before anything is imported, so a
page that would need more memory fails here (MemoryError / killed) and never in the batch.
"""

from __future__ import annotations

import json
import sys


def _limit(memory_mb: int, cpu_s: int) -> None:
    try:
        import resource

        if memory_mb > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        if cpu_s > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    except (ImportError, ValueError, OSError):
        pass


def main() -> int:
    job = json.loads(sys.stdin.buffer.readline())
    _limit(int(job.get("memory_mb") or 0), int(job.get("cpu_s") or 0))
    data = sys.stdin.buffer.read()
    from idp_assets.logic.pages import DocumentError, _open_pdf, pdf_page_record, render_page_png
    from idp_assets.logic.pdf_guard import FormValue, encode_png

    out = sys.stdout
    pdf = _open_pdf(data)
    out.write(json.dumps({"ready": True}) + "\n")  # the per-page clock starts now, not at interpreter start
    out.flush()
    values = {int(k): [FormValue(tuple(v["rect"]), v["name"], v["value"]) for v in vs]
              for k, vs in (job.get("form_values") or {}).items()}
    for i in job["pages"]:
        try:
            record, image = pdf_page_record(pdf, i, job["dpi"], job["max_pixels"], form_values=values.get(i),
                                            force_image=bool(job.get("render")))
            png = render_page_png(image, compress_level=1) if image is not None else None
            msg = {"page": i, "record": record.model_dump(), "png": encode_png(png)}
        except DocumentError as exc:
            msg = {"page": i, "error": exc.message, "code": exc.code}
        except MemoryError:
            msg = {"page": i, "error": "out of memory"}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            msg = {"page": i, "error": f"{type(exc).__name__}: {exc}"[:500]}
        out.write(json.dumps(msg) + "\n")
        out.flush()
        if msg.get("error"):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
