"""Who is calling, and may they: API keys, JWT bearer tokens, review-page sessions, roles.

* **API keys** are kept only as SHA-256 digests (`IDP_API_KEYS` / `IDP_API_KEYS_FILE`, a JSON list of
  ``{"name", "roles", "sha256"}``); a key is sent as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``.
  Keys are 256-bit random strings (``idp api new-key``), so one unsalted hash is enough to make a leaked
  key file useless; nothing logs a key or its digest.
* **JWT** bearer tokens (``Authorization: Bearer eyJ...``): HS256 with `IDP_API_JWT_SECRET`, or
  RS256/ES256 with `IDP_API_JWT_PUBLIC_KEY_FILE`; ``exp`` and ``sub`` are required, ``aud`` / ``iss``
  when configured; roles in the ``roles`` claim (list or space-separated string).
* **Sessions** (review page only): a reviewer signs in with a key or token once; the browser keeps a
  signed, HttpOnly, SameSite=Strict cookie (``idp_session``) that expires; every form carries a CSRF
  token bound to the session.

Roles: ``viewer`` (read documents, exports, search, graph), ``uploader`` (upload), ``reviewer`` (read and
review), ``admin`` (everything, and health / metrics).  A key or token may carry several roles.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ROLES = ("viewer", "uploader", "reviewer", "admin")
# permission -> the roles that hold it
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset({"viewer", "reviewer", "admin"}),
    "upload": frozenset({"uploader", "admin"}),
    "review": frozenset({"reviewer", "admin"}),
    "admin": frozenset({"admin"}),
}
SESSION_COOKIE = "idp_session"


class AuthError(Exception):
    """401 (no or bad credential) or 403 (valid credential, role not allowed)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    via: str  # "api_key" | "jwt" | "session"

    def may(self, permission: str) -> bool:
        return bool(self.roles & PERMISSIONS[permission])


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    roles: list[str] = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("roles")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in ROLES]
        if bad:
            raise ValueError(f"unknown roles {bad}; known: {', '.join(ROLES)}")
        return v


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh API key: 256 random bits."""
    return "idp_" + secrets.token_urlsafe(32)


def key_entry(name: str, roles: list[str], key: str) -> dict:
    """The entry to put into IDP_API_KEYS for `key` (only its digest)."""
    return KeyEntry(name=name, roles=roles, sha256=hash_key(key)).model_dump()


def parse_keys(raw: str | None) -> dict[str, KeyEntry]:
    """digest -> entry; raises ValueError naming the entry (never its value) when malformed."""
    if not raw:
        return {}
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"IDP_API_KEYS is not JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(items, list):
        raise ValueError("IDP_API_KEYS must be a JSON list of {name, roles, sha256}")
    out: dict[str, KeyEntry] = {}
    for i, item in enumerate(items):
        try:
            e = KeyEntry(**item) if isinstance(item, dict) else None
        except ValidationError as exc:
            raise ValueError(f"IDP_API_KEYS entry {i}: {exc.errors()[0]['msg']}") from None
        if e is None:
            raise ValueError(f"IDP_API_KEYS entry {i} is not an object")
        out[e.sha256] = e
    return out


class Authenticator:
    """Checks API keys, JWTs and session cookies against the configuration."""

    def __init__(self, keys: dict[str, KeyEntry], *, jwt_key: str | None = None, jwt_algorithms: tuple[str, ...] = (),
                 audience: str | None = None, issuer: str | None = None, session_secret: bytes | None = None,
                 session_seconds: int = 8 * 3600):
        self.keys = keys
        self.jwt_key = jwt_key
        self.jwt_algorithms = jwt_algorithms
        self.audience = audience
        self.issuer = issuer
        self.session_secret = session_secret or secrets.token_bytes(32)
        self.session_seconds = session_seconds

    @classmethod
    def from_config(cls, cfg) -> Authenticator:
        keys = parse_keys(cfg.api_keys_json.get_secret_value() if cfg.api_keys_json else None)
        if cfg.jwt_public_key is not None:
            jwt_key, algs = cfg.jwt_public_key.get_secret_value(), ("RS256", "ES256")
        elif cfg.jwt_secret is not None:
            jwt_key, algs = cfg.jwt_secret.get_secret_value(), ("HS256",)
        else:
            jwt_key, algs = None, ()
        sess = cfg.session_secret.get_secret_value().encode() if cfg.session_secret else None
        return cls(keys, jwt_key=jwt_key, jwt_algorithms=algs, audience=cfg.jwt_audience, issuer=cfg.jwt_issuer,
                   session_secret=sess, session_seconds=cfg.session_minutes * 60)

    @property
    def configured(self) -> bool:
        return bool(self.keys) or self.jwt_key is not None

    # -- credentials ------------------------------------------------------------------
    def api_key(self, key: str) -> Principal:
        entry = self.keys.get(hash_key(key))
        if entry is None:
            raise AuthError(401, "unknown API key")
        return Principal(entry.name, frozenset(entry.roles), "api_key")

    def token(self, token: str) -> Principal:
        if self.jwt_key is None:
            raise AuthError(401, "bearer tokens are not configured")
        import jwt

        try:
            claims = jwt.decode(token, self.jwt_key, algorithms=list(self.jwt_algorithms), audience=self.audience,
                                issuer=self.issuer, options={"require": ["exp", "sub"]}, leeway=0)
        except jwt.ExpiredSignatureError:
            raise AuthError(401, "token expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError(401, f"invalid token ({type(exc).__name__})") from None
        roles = claims.get("roles", [])
        if isinstance(roles, str):
            roles = roles.split()
        if not isinstance(roles, list):
            raise AuthError(401, "invalid token (roles claim)")
        return Principal(str(claims["sub"]), frozenset(r for r in roles if r in ROLES), "jwt")

    def credential(self, value: str) -> Principal:
        """An API key or a JWT (three base64url parts starting with a JSON header)."""
        value = value.strip()
        if value.count(".") == 2 and value.startswith("eyJ"):
            return self.token(value)
        return self.api_key(value)

    def from_headers(self, authorization: str | None, x_api_key: str | None) -> Principal:
        if x_api_key:
            return self.api_key(x_api_key.strip())
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise AuthError(401, "use 'Authorization: Bearer <key or token>' or 'X-API-Key: <key>'")
            return self.credential(value)
        raise AuthError(401, "credential required")

    # -- review-page sessions ---------------------------------------------------------
    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self.session_secret, payload, hashlib.sha256).digest()).decode().rstrip("=")

    def new_session(self, p: Principal, now: float | None = None) -> str:
        now = time.time() if now is None else now
        body = json.dumps({"sub": p.name, "roles": sorted(p.roles), "exp": int(now + self.session_seconds),
                           "sid": secrets.token_urlsafe(12)}, separators=(",", ":")).encode()
        b64 = base64.urlsafe_b64encode(body).decode().rstrip("=")
        return f"{b64}.{self._sign(body)}"

    def session(self, cookie: str | None, now: float | None = None) -> tuple[Principal, str]:
        """(principal, session id) of a valid session cookie."""
        if not cookie:
            raise AuthError(401, "sign in first")
        b64, _, sig = cookie.partition(".")
        try:
            body = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except (ValueError, TypeError):
            raise AuthError(401, "invalid session") from None
        if not sig or not hmac.compare_digest(sig, self._sign(body)):
            raise AuthError(401, "invalid session")
        try:
            d = json.loads(body)
            exp, sub, roles, sid = int(d["exp"]), str(d["sub"]), d["roles"], str(d["sid"])
        except (ValueError, KeyError, TypeError):
            raise AuthError(401, "invalid session") from None
        if exp <= (time.time() if now is None else now):
            raise AuthError(401, "session expired")
        return Principal(sub, frozenset(r for r in roles if r in ROLES), "session"), sid

    def csrf_token(self, sid: str) -> str:
        return self._sign(b"csrf:" + sid.encode())

    def check_csrf(self, sid: str, token: str | None) -> None:
        if not token or not hmac.compare_digest(token, self.csrf_token(sid)):
            raise AuthError(403, "missing or wrong CSRF token")


def require(principal: Principal, permission: str) -> Principal:
    if not principal.may(permission):
        raise AuthError(403, f"role {'/'.join(sorted(principal.roles)) or '(none)'} may not {permission}; needs one "
                             f"of {', '.join(sorted(PERMISSIONS[permission]))}")
    return principal
