"""The exception classes of ringfetch and the mapping from the C++ error kinds to them.

Every error is a :class:`ringfetch.Error` with ``kind``, ``status`` (HTTP status, 0 if none), ``s3_code`` (S3's
``<Code>``) and ``request_id``; the subclasses also derive from the built-in exception a Python caller would
catch: a missing object is a ``FileNotFoundError``, a bad argument a ``ValueError``, exhausted memory a
``MemoryError``, a network failure a ``ConnectionError``, a timeout a ``TimeoutError``.
"""

from __future__ import annotations

import enum


class ErrorKind(str, enum.Enum):
    """What went wrong, as the C++ ``ringfetch::ErrorKind``; compares equal to its string value."""

    INVALID_ARGUMENT = "invalid_argument"
    IO = "io"
    NETWORK = "network"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"
    S3 = "s3"
    INTEGRITY = "integrity"
    UNSUPPORTED = "unsupported"
    CANCELLED = "cancelled"
    RESOURCE_EXHAUSTED = "resource_exhausted"


class Error(Exception):
    """A failed ringfetch operation. The message names the object, the range and the cause."""

    kind: ErrorKind = ErrorKind.IO
    status: int = 0
    s3_code: str = ""
    request_id: str = ""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


class InvalidArgumentError(Error, ValueError):
    """A bad URL, range, option value or plan item."""


class NotFoundError(Error, FileNotFoundError):
    """The object (or bucket, or file) does not exist."""


class NetworkError(Error, ConnectionError):
    """Connect, reset or closed connection, name resolution."""


class FetchTimeoutError(Error, TimeoutError):
    """A connect, first-byte or idle timeout after the retry budget."""


class HttpStatusError(Error):
    """An unexpected HTTP status (``status`` holds it)."""


class S3Error(Error):
    """An S3 error document (``s3_code`` holds its ``<Code>``)."""


class IntegrityError(Error):
    """A truncated body, a wrong Content-Range, or an object that changed during the read."""


class UnsupportedError(Error):
    """The kernel or the access pattern does not support what was asked."""


class SequentialAccessError(UnsupportedError, ValueError):
    """A reader opened with ranges was asked to move backwards, read outside its ranges, read the whole object or
    seek from the end: only sequential access over the given ranges is supported."""


class CancelledError(Error):
    """The engine shut down, or the batch was closed, with the operation in flight."""


class ResourceExhaustedError(Error, MemoryError):
    """The engine's memory limit is reached and the caller's views hold all of it: drop views or raise the limit."""


_BY_KIND = {
    ErrorKind.INVALID_ARGUMENT: InvalidArgumentError,
    ErrorKind.IO: Error,
    ErrorKind.NETWORK: NetworkError,
    ErrorKind.TIMEOUT: FetchTimeoutError,
    ErrorKind.HTTP_STATUS: HttpStatusError,
    ErrorKind.S3: S3Error,
    ErrorKind.INTEGRITY: IntegrityError,
    ErrorKind.UNSUPPORTED: UnsupportedError,
    ErrorKind.CANCELLED: CancelledError,
    ErrorKind.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}

# S3 codes and local errors that mean "there is no such object".
_NOT_FOUND_S3_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NotFound"})
_NOT_FOUND_LOCAL_TEXT = "No such file or directory"


def _is_not_found(kind: ErrorKind, message: str, status: int, s3_code: str) -> bool:
    if s3_code in _NOT_FOUND_S3_CODES:
        return True
    if kind in (ErrorKind.HTTP_STATUS, ErrorKind.S3) and status == 404:
        return True
    return kind == ErrorKind.IO and _NOT_FOUND_LOCAL_TEXT in message


def from_native(kind: str, message: str, status: int, s3_code: str, request_id: str, origin: str) -> Error:
    """Builds the exception for a C++ ``ringfetch::Error`` (called by the native module)."""
    error_kind = ErrorKind(kind)
    if _is_not_found(error_kind, message, status, s3_code):
        cls = NotFoundError
    elif origin == "reader" and error_kind == ErrorKind.UNSUPPORTED:
        cls = SequentialAccessError
    else:
        cls = _BY_KIND.get(error_kind, Error)
    error = cls(message)
    error.kind = error_kind
    error.status = status
    error.s3_code = s3_code
    error.request_id = request_id
    return error
