"""OCR engine interface: one page in, text + words + a measured confidence out.

Engines are small classes registered by name (see `registry.py`); each has a
pydantic options class whose `kind` literal is the engine name, in the style
of docling's per-format options.  Engines never invent confidences: the value
must be measured from the engine's own output (word confidences, share of
correctly mapped characters, ...) and is None only when there is no text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from idp_assets.fingerprints import package_versions, short_hash
from idp_assets.models import OcrWord, RawPage

if TYPE_CHECKING:
    from PIL import Image

ComputeClass = Literal["cpu", "gpu"]
EngineInput = Literal["image", "pdf_text", "office_text"]


class EngineOptions(BaseModel):
    """Base class of per-engine options; subclasses set `kind: Literal["<name>"]`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str


class EngineOutput(BaseModel):
    """What an engine read from one page."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="page text in reading order, lines separated by '\\n'")
    words: list[OcrWord] = Field(default_factory=list)
    confidence: float | None = Field(
        default=None, ge=0.0, le=1.0, description="measured from the engine's output; None when no text"
    )
    rotation: int = Field(default=0, description="clockwise degrees the page image was turned before reading")
    width: int = Field(default=0, description="width of the image the word boxes refer to (0: no image)")
    height: int = 0
    dpi: float = 0.0
    details: dict = Field(default_factory=dict, description="engine-specific diagnostics (timings, OSD, scale)")


class EngineError(RuntimeError):
    """An engine could not read a page (missing input, engine failure)."""


class OcrEngine(ABC):
    """A page reader.  Subclasses set the class attributes and implement `read`."""

    name: ClassVar[str]
    compute: ClassVar[ComputeClass] = "cpu"
    inputs: ClassVar[frozenset[str]] = frozenset({"image"})
    options_class: ClassVar[type[EngineOptions]]

    revision: ClassVar[str] = "1"  # bump when the engine's own reading code changes (part of `version`)
    version_packages: ClassVar[tuple[str, ...]] = ()  # installed libraries whose versions are part of `version`

    def __init__(self, options: EngineOptions | None = None):
        self.options = options if options is not None else self.options_class(kind=self.name)

    @property
    def version(self) -> str:
        """What produces this engine's output: revision, options, library versions (model engines add
        their weights). Cheap: nothing is loaded. Part of the `ocr_pages` code version."""
        return " ".join([f"{self.name}/{self.revision}", f"options={short_hash(self.options.model_dump(mode='json'))}",
                         *package_versions(self.version_packages)])

    @property
    def languages(self) -> list[str]:
        """Languages the engine reads (ISO 639-2/T like 'deu'; ['*'] for any)."""
        return ["*"]

    @property
    def batch_size(self) -> int:
        """Pages worth handing over at once (1 for engines that read page by page)."""
        return 1

    def health(self) -> tuple[bool, str]:
        """(ok, reason): can this engine run here (binaries, models, devices present)?"""
        return True, "ok"

    @abstractmethod
    def read(self, page_image: Image.Image | None, raw_page: RawPage) -> EngineOutput:
        """Read one page.  Raise EngineError when the needed input is missing."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"


def weighted_confidence(items: list[tuple[str, float]]) -> float | None:
    """Mean of confidences in [0, 1] weighted by the length of each word's text."""
    total = weight = 0.0
    for text, conf in items:
        n = len(text.strip())
        if n == 0 or conf is None or conf < 0:
            continue
        total += n * min(1.0, max(0.0, conf))
        weight += n
    return total / weight if weight else None
