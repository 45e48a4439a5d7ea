"""Errors of the service platform.

    CloudbankError                 root of every error cloudbank raises on purpose
    ├── ConfigError                a setting has a bad value; start-up stops
    ├── StartupError               a dependency (Redis, database, port, data folder) is unusable
    └── ApiError                   a request was refused; carries the HTTP status
        ├── BadRequest       400   malformed JSON, unknown/missing fields, wrong types, too long
        ├── Unauthorized     401   no token, or an expired, forged or revoked one
        ├── Forbidden        403   a valid token that may not do this (wrong role or scope)
        ├── NotFound         404   an unknown id (or one the caller may not know about)
        ├── Conflict         409   the thing is not in a state that allows this
        ├── TooLarge         413   the body is larger than allowed
        ├── UnsupportedMedia 415   wrong content type
        ├── TooManyRequests  429   rate limited or locked out; `retry_after` seconds
        └── Unavailable      503   an optional part (a model, an extra) is not installed here
"""

from __future__ import annotations

from typing import Any


class CloudbankError(Exception):
    """Root of cloudbank's own errors."""


class ConfigError(CloudbankError):
    def __init__(self, setting: str, value: Any, problem: str) -> None:
        env = "CLOUDBANK_" + setting.upper()
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"setting {setting} ({env}) = {shown}: {problem}")
        self.setting = setting


class StartupError(CloudbankError):
    """A dependency cannot be used; the message says which and what to do."""


class ApiError(CloudbankError):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        body.update(self.details)
        return body


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooLarge(ApiError):
    status, code = 413, "too_large"


class UnsupportedMedia(ApiError):
    status, code = 415, "unsupported_media_type"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class Unavailable(ApiError):
    status, code = 503, "unavailable"
