"""ringfetch: byte ranges from S3, HTTP(S) and local files, fetched through io_uring straight into registered
memory, and handed to Python as zero-copy views (or filled in place into NumPy arrays and torch tensors).

    engine = ringfetch.Engine(threads=2)
    store = ringfetch.Store.open("s3://bucket/ckpt", engine, region="us-east-1")
    plan = ringfetch.Plan()
    plan.add("__0_0.distcp", 4096, 1 << 20)                    # key, offset, length
    plan.add("__0_0.distcp", 9 << 20, tensor.nbytes, into=tensor)  # filled in place
    for view in store.fetch(plan):                             # plan order, each as soon as it is complete
        numpy.frombuffer(view, numpy.uint8)                    # no copy
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

from ._errors import (
    CancelledError,
    Error,
    ErrorKind,
    FetchTimeoutError,
    HttpStatusError,
    IntegrityError,
    InvalidArgumentError,
    NetworkError,
    NotFoundError,
    ResourceExhaustedError,
    S3Error,
    SequentialAccessError,
    UnsupportedError,
)
from ._io import Reader
from ._ringfetch import Batch, Engine, MemoryRegistration, Plan, Store, View

__version__ = "0.1.0"


def _store_reader(self: Store, key: str, ranges: Optional[Iterable[Sequence[int]]] = None) -> Reader:
    """Sequential, DCP-style access to one object as an ``io.RawIOBase`` (see :class:`ringfetch.Reader`).

    ``ranges`` is a list of ``(offset, length)`` pairs (or objects with ``offset`` and ``length``); reads are
    allowed only inside them, forward across them. Without ranges the whole object is streamed."""
    return Reader(self._reader(key, None if ranges is None else list(ranges)))


Store.reader = _store_reader

__all__ = [
    "Batch",
    "CancelledError",
    "Engine",
    "Error",
    "ErrorKind",
    "FetchTimeoutError",
    "HttpStatusError",
    "IntegrityError",
    "InvalidArgumentError",
    "MemoryRegistration",
    "NetworkError",
    "NotFoundError",
    "Plan",
    "Reader",
    "ResourceExhaustedError",
    "S3Error",
    "SequentialAccessError",
    "Store",
    "UnsupportedError",
    "View",
]
