"""Notify's API key authentication: an HS256 JWT with ``iss`` and ``iat``, in Notify's order."""

from __future__ import annotations

import time
import uuid

import jwt

from .models import ApiKey
from .notify_state import NotifyState
from .validation import ApiError

__all__ = ["GENERAL_TOKEN_ERROR", "authenticate"]

GENERAL_TOKEN_ERROR = (
    "Invalid token: make sure your API token matches the example at "
    "https://docs.notifications.service.gov.uk/rest-api.html#authorisation-header"
)
CLOCK_ERROR = "Error: Your system clock must be accurate to within 30 seconds"
CLOCK_BOUND = 30


def _auth_error(status: int, message: str) -> ApiError:
    return ApiError(status, "AuthError", message)


class _NotSignedWithThisKey(Exception):
    pass


def _check_token(token: str, secret: str) -> None:
    """Raise ApiError or _NotSignedWithThisKey unless ``token`` is good for ``secret``."""
    try:
        claims = jwt.decode(
            token,
            key=secret,
            algorithms=["HS256"],
            options={"verify_signature": True, "verify_iat": False},
        )
    except jwt.InvalidAlgorithmError:
        raise _auth_error(403, "Invalid token: algorithm used is not HS256") from None
    except jwt.DecodeError:
        raise _NotSignedWithThisKey from None
    except jwt.PyJWTError:
        raise _auth_error(403, GENERAL_TOKEN_ERROR) from None
    if "iat" not in claims:
        raise _NotSignedWithThisKey
    try:
        iat = int(claims["iat"])
    except (TypeError, ValueError):
        raise _auth_error(403, CLOCK_ERROR) from None
    now = int(time.time())
    if iat < now - CLOCK_BOUND or iat > now + CLOCK_BOUND:
        raise _auth_error(403, CLOCK_ERROR)


def authenticate(state: NotifyState, authorization: str | None) -> ApiKey:
    """Return the key that signed the request's token, or raise Notify's AuthError."""
    if not authorization:
        raise _auth_error(401, "Unauthorized: authentication token must be provided")
    if authorization[:7].lower() != "bearer ":
        raise _auth_error(401, "Unauthorized: authentication bearer scheme must be used")
    token = authorization[7:]
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise _auth_error(403, GENERAL_TOKEN_ERROR) from None
    if "iss" not in unverified:
        raise _auth_error(403, "Invalid token: iss field not provided")
    issuer = unverified["iss"]
    try:
        service_id = str(uuid.UUID(str(issuer)))
    except ValueError:
        raise _auth_error(403, "Invalid token: service id is not the right data type") from None
    if service_id != state.service_id:
        raise _auth_error(403, "Invalid token: service not found")
    keys = state.api_keys()
    if not keys:
        raise _auth_error(403, "Invalid token: service has no API keys")
    for key in keys:
        try:
            _check_token(token, key.secret)
        except _NotSignedWithThisKey:
            continue
        if key.revoked:
            raise _auth_error(403, "Invalid token: API key revoked")
        return key
    raise _auth_error(403, "Invalid token: API key not found")
