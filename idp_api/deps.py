"""FastAPI dependencies: the services of the process and the caller's checked credential."""

from __future__ import annotations

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from idp_api.security import AuthError, Principal, require
from idp_api.services import Services

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key")
BEARER = HTTPBearer(auto_error=False, description="an API key or a JWT")
DOCUMENT_ID = r"^[0-9a-f]{64}$"


def services(request: Request) -> Services:
    return request.app.state.services


def _principal(request: Request, key: str | None, bearer: HTTPAuthorizationCredentials | None) -> Principal:
    auth = request.app.state.services.auth
    if key:
        return auth.api_key(key.strip())
    if bearer is not None:
        return auth.credential(bearer.credentials)
    if request.headers.get("authorization"):
        raise AuthError(401, "use 'Authorization: Bearer <key or token>' or 'X-API-Key: <key>'")
    raise AuthError(401, "credential required")


def needs(permission: str):
    def dependency(request: Request, key: str | None = Security(API_KEY_HEADER),
                   bearer: HTTPAuthorizationCredentials | None = Security(BEARER)) -> Principal:
        p = require(_principal(request, key, bearer), permission)
        request.state.principal = p.name  # for the access log line (never the credential)
        return p

    return Depends(dependency)
