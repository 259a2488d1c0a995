"""Input limits checked before a document is parsed, so a hostile file cannot exhaust memory.

- ZIP containers (DOCX/XLSX/PPTX): total uncompressed size, per-member compression
  ratio and member count are read from the central directory (nothing is inflated).
- Limits are deliberately generous for real office files (a 50-page DOCX with images
  is a few MB uncompressed, ratio < 20).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

from idp_assets.logic.pages import DocumentError

ZIP_MEDIA = {
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * 1024 * 1024
    max_zip_uncompressed: int = 300 * 1024 * 1024
    max_zip_ratio: float = 150.0
    max_zip_members: int = 10_000


def check_input(data: bytes, media_type: str, limits: Limits = Limits()) -> None:
    """Raise DocumentError when the input breaks a limit; return quietly otherwise."""
    if len(data) > limits.max_bytes:
        raise DocumentError("file_too_large", f"{len(data)} bytes, the limit is {limits.max_bytes}")
    if media_type in ZIP_MEDIA:
        check_zip(data, limits)


def check_zip(data: bytes, limits: Limits = Limits()) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise DocumentError("corrupt_office", f"not a readable ZIP container: {exc}") from exc
    if len(infos) > limits.max_zip_members:
        raise DocumentError("archive_bomb", f"{len(infos)} members, the limit is {limits.max_zip_members}")
    total = sum(i.file_size for i in infos)
    if total > limits.max_zip_uncompressed:
        raise DocumentError("archive_bomb", f"{total} bytes uncompressed, the limit is {limits.max_zip_uncompressed}")
    for i in infos:
        if i.file_size > 1_000_000 and i.file_size / max(i.compress_size, 1) > limits.max_zip_ratio:
            raise DocumentError(
                "archive_bomb",
                f"member {i.filename!r} inflates {i.file_size / max(i.compress_size, 1):.0f}x "
                f"(limit {limits.max_zip_ratio:.0f}x)",
            )
