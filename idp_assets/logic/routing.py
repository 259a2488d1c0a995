"""Per-page complexity from measurable features, and the engine choice that follows from it.

Pure functions (numpy/OpenCV on a page image, no engines, no Dagster).

Features (`page_features`), each measured on the grayscale page image scaled so
its longer side is at most 1600 px (values are resolution independent):

* `text_layer_coverage` - share of the page's expected text the PDF text layer
  holds: `min(1, text_layer_chars / max(1, ink_components))` (0 for images);
* `image_coverage`      - share of the PDF page covered by image objects (RawPage);
* `dpi`                 - declared or estimated resolution (RawPage.dpi);
* `skew_deg`            - |angle| in [0, 10] maximising the variance of the
  horizontal projection profile of the ink (coarse 0.5 degree search);
* `noise`               - share of ink components that are specks (area < 0.15 x
  the median glyph area): salt, dither, JPEG dirt;
* `ruling_density`      - share of ink pixels in long horizontal/vertical
  strokes (morphological opening with 1/30-page-wide kernels): tables, form boxes;
* `text_density`        - ink components per 10^4 px of page (at 1600 px scale);
* `handwriting`         - coefficient of variation of glyph heights of the
  character-sized components (machine print is uniform, handwriting is not),
  clipped to [0, 1].

Complexity (`complexity_score`, in [0, 1]; 0 = a complete text layer):

    complexity = (1 - text_layer_coverage) * clip01(
          0.25 * low_dpi          low_dpi      = clip01((300 - dpi) / 200)
        + 0.15 * skew             skew         = clip01(skew_deg / 5)
        + 0.20 * noise            noise        = clip01(noise / 0.5)
        + 0.15 * ruling           ruling       = clip01(ruling_density / 0.3)
        + 0.10 * density          density      = clip01(text_density / 20)
        + 0.15 * handwriting )

`choose_engines` turns complexity, engine health, configured preferences and
pool occupancy into an ordered engine chain with a reason: below
`fast_below` the fast engine leads (Tesseract reads clean high-resolution
scans perfectly and 4x faster), above it the accurate engine (RapidOCR: +0.10
word F1 on receipts and +0.07 on forms of the corpus), and above `gpu_above`
a healthy configured GPU engine leads unless its pool is full.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

WEIGHTS = {"low_dpi": 0.25, "skew": 0.15, "noise": 0.20, "ruling": 0.15, "density": 0.10, "handwriting": 0.15}


@dataclass(frozen=True)
class PageFeatures:
    text_layer_coverage: float = 0.0
    image_coverage: float = 0.0
    dpi: float = 300.0
    skew_deg: float = 0.0
    noise: float = 0.0
    ruling_density: float = 0.0
    text_density: float = 0.0
    handwriting: float = 0.0
    skew_angle: float = 0.0  # signed: PIL-rotate the page by this to deskew it

    def as_dict(self) -> dict:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _gray_array(image, max_side: int = 1600) -> tuple[np.ndarray, float]:
    import cv2

    gray = image if getattr(image, "mode", "L") == "L" else image.convert("L")
    arr = np.asarray(gray)
    factor = max(arr.shape) / max_side if max(arr.shape) > max_side else 1.0
    if factor > 1.0:
        arr = cv2.resize(arr, (int(arr.shape[1] / factor), int(arr.shape[0] / factor)), interpolation=cv2.INTER_AREA)
    return arr, factor


def estimate_skew(bw: np.ndarray, max_angle: float = 10.0, step: float = 0.5, *, signed: bool = False) -> float:
    """|skew| in degrees of the ink in a binary image (255 = ink), by projection-profile variance.

    With `signed`, the angle to turn the image by (PIL `rotate`, counter-clockwise
    positive) to make its lines horizontal.
    """
    ys, xs = np.nonzero(bw)
    if len(xs) < 50:
        return 0.0
    # subsample ink pixels: the profile only needs their distribution
    if len(xs) > 40_000:
        idx = np.random.default_rng(0).choice(len(xs), 40_000, replace=False)
        xs, ys = xs[idx], ys[idx]
    best, best_angle, level = -1.0, 0.0, 0.0
    h = bw.shape[0]
    for angle in np.arange(-max_angle, max_angle + 1e-9, step):
        t = np.deg2rad(angle)
        rows = np.round(ys * np.cos(t) - xs * np.sin(t)).astype(np.int64)
        rows -= rows.min()
        profile = np.bincount(rows, minlength=h)
        var = float(profile.var())
        if abs(angle) < 1e-9:
            level = var
        if var > best:
            best, best_angle = var, float(angle)
    # no clear text lines (sideways text, pictures): the maximum is noise, or sits at the
    # edge of the search range - report no skew rather than turn the page by it
    if abs(best_angle) >= max_angle - 1e-9 or best < 1.1 * level:
        best_angle = 0.0
    return best_angle if signed else abs(best_angle)


def page_features(image, *, dpi: float = 0.0, text_layer_chars: int = 0, image_coverage: float = 0.0) -> PageFeatures:
    """Measure the routing features of a page image (PIL); see the module docstring."""
    import cv2

    arr, _ = _gray_array(image)
    if arr.size == 0 or arr.min() == arr.max():
        return PageFeatures(
            text_layer_coverage=1.0 if text_layer_chars else 0.0, image_coverage=image_coverage, dpi=dpi or 300.0
        )
    _, bw = cv2.threshold(arr, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    n, _, stats, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    hgt = stats[1:, cv2.CC_STAT_HEIGHT].astype(np.float64)
    wid = stats[1:, cv2.CC_STAT_WIDTH].astype(np.float64)
    comps = n - 1
    glyph = (hgt >= 4) & (hgt <= arr.shape[0] / 10) & (wid <= 3 * hgt) & (area >= 8)
    median_area = float(np.median(area[glyph])) if glyph.any() else float(np.median(area)) if comps else 0.0
    noise = float((area < 0.15 * median_area).sum() / comps) if comps and median_area else 0.0
    handwriting = 0.0
    if glyph.sum() >= 10:
        hs = hgt[glyph]
        q1, q3 = np.percentile(hs, [25, 75])
        core = hs[(hs >= q1) & (hs <= q3)] if q3 > q1 else hs
        handwriting = _clip01(float(np.std(hs) / max(1e-6, np.mean(core))) - 0.2)
    ink = float((bw > 0).sum())
    klen_h = max(10, arr.shape[1] // 30)
    klen_v = max(10, arr.shape[0] // 30)
    horiz = cv2.morphologyEx(bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (klen_h, 1)))
    vert = cv2.morphologyEx(bw, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, klen_v)))
    ruling = float(((horiz > 0) | (vert > 0)).sum() / ink) if ink else 0.0
    text_density = comps / (arr.size / 1e4)
    skew = estimate_skew(bw & ~(horiz | vert), signed=True)
    coverage = _clip01(text_layer_chars / max(1, int(glyph.sum()))) if text_layer_chars else 0.0
    return PageFeatures(
        text_layer_coverage=coverage,
        image_coverage=_clip01(image_coverage),
        dpi=float(dpi) if dpi else 300.0,
        skew_deg=abs(skew),
        skew_angle=skew,
        noise=noise,
        ruling_density=ruling,
        text_density=text_density,
        handwriting=handwriting,
    )


def complexity_terms(f: PageFeatures) -> dict[str, float]:
    """The normalised terms of the complexity formula (each in [0, 1])."""
    return {
        "low_dpi": _clip01((300.0 - f.dpi) / 200.0),
        "skew": _clip01(f.skew_deg / 5.0),
        "noise": _clip01(f.noise / 0.5),
        "ruling": _clip01(f.ruling_density / 0.3),
        "density": _clip01(f.text_density / 20.0),
        "handwriting": _clip01(f.handwriting),
    }


def complexity_score(f: PageFeatures) -> float:
    """Complexity in [0, 1] (formula in the module docstring)."""
    terms = complexity_terms(f)
    raw = sum(WEIGHTS[k] * v for k, v in terms.items())
    return round(_clip01((1.0 - _clip01(f.text_layer_coverage)) * raw), 4)


def choose_engines(
    complexity: float,
    health: Mapping[str, tuple[bool, str]],
    *,
    fast: Sequence[str] = ("tesseract",),
    accurate: Sequence[str] = ("rapidocr",),
    gpu: Sequence[str] = (),
    fast_below: float = 0.2,
    gpu_above: float = 0.5,
    occupancy: Mapping[str, float] | None = None,
    compute_of: Mapping[str, str] | None = None,
) -> tuple[list[str], str]:
    """(healthy engines in the order to try, reason).

    `occupancy` maps a pool name ('gpu', 'cpu') to its share in use (0..1, 1 = full);
    `compute_of` maps engine -> pool.  GPU engines are considered only when listed in
    `gpu` (configured) and healthy (the health check fails without a CUDA device).
    """
    occupancy = occupancy or {}
    compute_of = compute_of or {}

    def ok(name: str) -> bool:
        return bool(health.get(name, (False, ""))[0])

    def full(name: str) -> bool:
        return occupancy.get(compute_of.get(name, "cpu"), 0.0) >= 1.0

    gpu_ok = [g for g in gpu if ok(g)]
    notes = []
    if complexity >= gpu_above and gpu_ok:
        free = [g for g in gpu_ok if not full(g)]
        if free:
            lead, why = free + [g for g in gpu_ok if g not in free], f"complexity {complexity:.2f} >= {gpu_above:.2f}: GPU engine"
        else:
            lead, why = [], f"complexity {complexity:.2f} >= {gpu_above:.2f} but the gpu pool is full"
            notes.append("gpu pool full")
        order = lead + list(accurate) + list(fast) + [g for g in gpu_ok if g not in lead]
    elif complexity < fast_below:
        why = f"complexity {complexity:.2f} < {fast_below:.2f}: fast engine"
        order = list(fast) + list(accurate) + gpu_ok
    else:
        why = f"complexity {complexity:.2f}: accurate engine"
        order = list(accurate) + list(fast) + gpu_ok
    chain: list[str] = []
    for name in order:
        if name not in chain and ok(name):
            chain.append(name)
    down = [n for n in dict.fromkeys([*fast, *accurate, *gpu]) if not ok(n)]
    if down:
        why += "; unavailable: " + ", ".join(f"{n} ({health.get(n, (False, 'not registered'))[1]})" for n in down)
    return chain, why


__all__ = [
    "PageFeatures",
    "WEIGHTS",
    "page_features",
    "estimate_skew",
    "complexity_terms",
    "complexity_score",
    "choose_engines",
]
