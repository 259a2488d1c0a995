"""Engine for office documents: the markdown docling produced in load_document."""

from __future__ import annotations

from typing import Literal

from idp_assets.models import RawPage
from resources.ocr.base import EngineOptions, EngineOutput, OcrEngine
from resources.ocr.registry import register_engine
from resources.ocr.text_layer import text_layer_confidence


class DoclingOfficeOptions(EngineOptions):
    kind: Literal["docling"] = "docling"


@register_engine
class DoclingOfficeEngine(OcrEngine):
    """Office text (docx/xlsx/pptx/html/csv) as converted by docling; confidence = mapped-character share."""

    name = "docling"
    compute = "cpu"
    inputs = frozenset({"office_text"})
    options_class = DoclingOfficeOptions

    def read(self, page_image, raw_page: RawPage) -> EngineOutput:
        text = (raw_page.text_layer or "").strip()
        return EngineOutput(
            text=text,
            confidence=text_layer_confidence(text),
            rotation=0,
            details={"chars": raw_page.text_layer_chars},
        )
