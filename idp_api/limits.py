"""Upload limits: request body size (413), media type (415), uploads per minute per key (429)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from idp_assets.logic.pages import sniff_media_type

MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and the other fields of an upload request


class LimitError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class RateLimiter:
    """Sliding window: at most `limit` events per `window_s` seconds per key."""

    def __init__(self, limit: int, window_s: float = 60.0, clock=time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            q = self._events[key]
            while q and q[0] <= now - self.window_s:
                q.popleft()
            if len(q) >= self.limit:
                wait = int(q[0] + self.window_s - now) + 1
                raise LimitError(429, f"at most {self.limit} uploads per minute per key; retry in {wait} s", wait)
            q.append(now)


def check_media_type(data: bytes, filename: str, allowed: tuple[str, ...]) -> str:
    """The media type sniffed from the bytes (as `source_documents` does), or 415."""
    media = sniff_media_type(data, filename)
    if media not in allowed:
        raise LimitError(415, f"unsupported media type {media} (allowed: {', '.join(allowed)})")
    return media


class BodySizeLimit:
    """ASGI middleware: a request body to `path` (method POST) above `max_bytes` is refused with 413, by its
    Content-Length before anything is read, and while streaming when the length is not declared."""

    def __init__(self, app, path: str, max_bytes: int):
        self.app = app
        self.path = path.rstrip("/")
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return msg

        async def tracking_send(msg):
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BaseException as exc:  # _TooLarge itself, or wrapped in an exception group by a task group
            if not _is_too_large(exc):
                raise
            if not started:
                await _too_large(send, self.max_bytes)


def _is_too_large(exc: BaseException) -> bool:
    if isinstance(exc, _TooLarge):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_too_large(e) for e in exc.exceptions)
    return False


class _TooLarge(BaseException):
    """Raised from `receive`: a BaseException, so that FastAPI's body parsing (which turns any Exception into
    a 400) lets it through to this middleware."""


async def _too_large(send, limit: int) -> None:
    import json

    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
