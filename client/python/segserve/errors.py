"""Typed exceptions: one class per gRPC status code, each carrying the code, the server's
message and the request id (the id the server logs the call under; docs: proto/segserve/v1/
common.proto). Catch SegserveError for all of them, or a subclass for one code:

    try:
        mask = client.segment(image, timeout=0.5)
    except segserve.DeadlineExceededError as e:
        print(e.code, e.message, e.request_id)
"""
import grpc

REQUEST_ID_HEADER = "x-request-id"

__all__ = [
    "SegserveError", "CancelledError", "UnknownError", "InvalidArgumentError",
    "DeadlineExceededError", "NotFoundError", "AlreadyExistsError", "PermissionDeniedError",
    "ResourceExhaustedError", "FailedPreconditionError", "AbortedError", "OutOfRangeError",
    "UnimplementedError", "InternalError", "UnavailableError", "DataLossError",
    "UnauthenticatedError", "error_for",
]


class SegserveError(Exception):
    """A failed call. code: grpc.StatusCode; message: the server's (or gRPC's) text;
    request_id: the call's id (sent by this client as x-request-id, echoed by the server);
    index: for segment_many, the position of the image in the input (else None)."""

    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message, request_id="", code=None, index=None):
        if code is not None:
            self.code = code
        self.message = message
        self.request_id = request_id
        self.index = index
        super().__init__(message)

    def __str__(self):
        where = "" if self.index is None else " (image %d)" % self.index
        return "%s%s: %s [request_id %s]" % (self.code.name, where, self.message,
                                             self.request_id or "-")


class CancelledError(SegserveError):
    code = grpc.StatusCode.CANCELLED


class UnknownError(SegserveError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgumentError(SegserveError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceededError(SegserveError, TimeoutError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFoundError(SegserveError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(SegserveError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDeniedError(SegserveError, PermissionError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhaustedError(SegserveError):
    """A bounded queue of the server is full or a size limit was hit: retry later."""
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(SegserveError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class AbortedError(SegserveError):
    code = grpc.StatusCode.ABORTED


class OutOfRangeError(SegserveError):
    code = grpc.StatusCode.OUT_OF_RANGE


class UnimplementedError(SegserveError):
    code = grpc.StatusCode.UNIMPLEMENTED


class InternalError(SegserveError):
    code = grpc.StatusCode.INTERNAL


class UnavailableError(SegserveError, ConnectionError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLossError(SegserveError):
    code = grpc.StatusCode.DATA_LOSS


class UnauthenticatedError(SegserveError, PermissionError):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE = {cls.code: cls for cls in (
    CancelledError, UnknownError, InvalidArgumentError, DeadlineExceededError, NotFoundError,
    AlreadyExistsError, PermissionDeniedError, ResourceExhaustedError, FailedPreconditionError,
    AbortedError, OutOfRangeError, UnimplementedError, InternalError, UnavailableError,
    DataLossError, UnauthenticatedError)}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def error_for(code, message, request_id="", index=None):
    """The exception for a status code (grpc.StatusCode or its number, as in ErrorStatus)."""
    if not isinstance(code, grpc.StatusCode):
        code = _BY_NUMBER.get(int(code), grpc.StatusCode.UNKNOWN)
    cls = _BY_CODE.get(code, SegserveError)
    return cls(message, request_id=request_id, code=code, index=index)


def _metadata_value(metadata, key):
    for item in metadata or ():
        if item[0] == key:
            return item[1]
    return ""


def from_rpc_error(error, sent_request_id=""):
    """grpc.RpcError -> the typed exception. The request id is the one the server sent back
    (x-request-id response header), else the one this client sent."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    request_id = ""
    for getter in ("initial_metadata", "trailing_metadata"):
        if not request_id and hasattr(error, getter):
            try:
                request_id = _metadata_value(getattr(error, getter)(), REQUEST_ID_HEADER)
            except Exception:  # metadata of a call that never reached the server
                request_id = ""
    return error_for(code or grpc.StatusCode.UNKNOWN, message or "",
                     request_id or sent_request_id)
