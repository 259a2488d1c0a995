"""Engine registry: engines are registered by name and built from their options.

    @register_engine
    class MyEngine(OcrEngine):
        name = "my_engine"
        options_class = MyEngineOptions   # has kind: Literal["my_engine"] = "my_engine"

    engine = get_engine("my_engine", some_option=3)

Registering a name twice is an error; asking for an unknown name lists the
known ones.  `get_engine` returns one shared instance per (name, options) in a
process, so engines that hold native state (a Tesseract API) reuse it.

The built-in engines register themselves when their modules are imported:
`resources/ocr/__init__.py` imports them all (Python runs a package's `__init__`
before any of its modules), so this module never imports an engine.
"""

from __future__ import annotations

import os
import threading

from resources.ocr.base import EngineOptions, OcrEngine

_ENGINES: dict[str, type[OcrEngine]] = {}
_INSTANCES: dict[tuple, OcrEngine] = {}
_LOCK = threading.Lock()


class UnknownEngineError(KeyError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"unknown OCR engine {name!r}; known engines: {', '.join(known_engines()) or '(none)'}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def register_engine(cls: type[OcrEngine]) -> type[OcrEngine]:
    """Class decorator: add an engine under its `name`."""
    name = getattr(cls, "name", None)
    if not name or not isinstance(name, str):
        raise ValueError(f"{cls.__name__} has no engine name")
    options_class = getattr(cls, "options_class", None)
    if options_class is None or not issubclass(options_class, EngineOptions):
        raise ValueError(f"{cls.__name__} needs an options_class derived from EngineOptions")
    kind = options_class.model_fields.get("kind")
    if kind is None or kind.default != name:
        raise ValueError(f"{options_class.__name__}.kind must default to {name!r}")
    with _LOCK:
        if name in _ENGINES:
            raise ValueError(f"OCR engine {name!r} is already registered ({_ENGINES[name].__name__})")
        _ENGINES[name] = cls
    return cls


def unregister_engine(name: str) -> None:
    """Remove an engine (tests, plugins being reloaded)."""
    with _LOCK:
        _ENGINES.pop(name, None)
        for key in [k for k in _INSTANCES if k[0] == name]:
            del _INSTANCES[key]


def known_engines() -> list[str]:
    return sorted(_ENGINES)


def engine_class(name: str) -> type[OcrEngine]:
    try:
        return _ENGINES[name]
    except KeyError:
        raise UnknownEngineError(name) from None


def get_engine(name: str, **options) -> OcrEngine:
    """The shared engine instance for `name` built with `options` (validated by its options class)."""
    cls = engine_class(name)
    opts = cls.options_class(kind=name, **{k: v for k, v in options.items() if k != "kind"})
    key = (name, os.getpid(), opts.model_dump_json())
    with _LOCK:
        engine = _INSTANCES.get(key)
        if engine is None:
            engine = _INSTANCES[key] = cls(opts)
        return engine
