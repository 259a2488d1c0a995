"""OCR engines (registry keyed by name) and the page router resource."""

from resources.ocr.base import EngineError, EngineOptions, EngineOutput, OcrEngine
from resources.ocr.registry import (
    UnknownEngineError,
    engine_class,
    get_engine,
    known_engines,
    register_engine,
    unregister_engine,
)
# the built-in engines register themselves on import (the registry itself imports no engine)
from resources.ocr import docling_standard as _docling_standard  # noqa: E402,F401 - registers the engine
from resources.ocr import office as _office  # noqa: E402,F401 - 'docling' (office files)
from resources.ocr import rapid as _rapid  # noqa: E402,F401
from resources.ocr import surya as _surya  # noqa: E402,F401 - registers the 'surya' engine
from resources.ocr import tesseract as _tesseract  # noqa: E402,F401
from resources.ocr import text_layer as _text_layer  # noqa: E402,F401
from resources.ocr import vlm as _vlm  # noqa: E402,F401 - got_ocr2, janus_pro, deepseek_ocr, vlm_endpoint

__all__ = [
    "EngineError",
    "EngineOptions",
    "EngineOutput",
    "OcrEngine",
    "UnknownEngineError",
    "engine_class",
    "get_engine",
    "known_engines",
    "register_engine",
    "unregister_engine",
    "OcrRouter",
    "route_page",
]


def __getattr__(name):  # the router imports dagster: load it only when asked for
    if name in ("OcrRouter", "route_page"):
        from resources.ocr import router

        return getattr(router, name)
    raise AttributeError(name)
