"""The error tree: each class carries its HTTP status and stable machine code."""

from __future__ import annotations

__all__ = [
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Internal",
    "NotFound",
    "PayloadTooLarge",
    "PiCloudError",
    "RateLimited",
    "ResourceLimit",
    "ScriptError",
    "Timeout",
    "Unauthorized",
    "Unavailable",
    "error_body",
]


def error_body(code: str, message: str) -> dict[str, object]:
    """The one JSON error shape of the whole HTTP surface."""
    return {"error": {"code": code, "message": message}}


class PiCloudError(Exception):
    status = 500
    code = "internal"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return error_body(self.code, self.message)


class BadRequest(PiCloudError):
    status, code = 400, "bad_request"


class Unauthorized(PiCloudError):
    status, code = 401, "unauthorized"


class Forbidden(PiCloudError):
    status, code = 403, "forbidden"


class NotFound(PiCloudError):
    status, code = 404, "not_found"


class Conflict(PiCloudError):
    status, code = 409, "conflict"


class PayloadTooLarge(PiCloudError):
    status, code = 413, "payload_too_large"


class RateLimited(PiCloudError):
    status, code = 429, "rate_limited"


class ScriptError(PiCloudError):
    status, code = 500, "script_error"


class ResourceLimit(PiCloudError):
    status, code = 500, "resource_limit"


class Internal(PiCloudError):
    status, code = 500, "internal"


class Unavailable(PiCloudError):
    status, code = 503, "unavailable"


class Timeout(PiCloudError):
    status, code = 504, "timeout"
