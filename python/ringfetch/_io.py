"""ringfetch.Reader: one object as a read-only, seekable binary file (``io.RawIOBase``).

With ``ranges`` it follows the C++ reader's rules (those of PyTorch DCP's optimized reader): reads inside the
given ranges only, forward across ranges, backward only within the current range; anything else raises
:class:`ringfetch.SequentialAccessError` (a ``ValueError``) whose message says how to fall back. The ranges after
the current one are fetched in parallel while the caller reads. Without ranges the whole object is streamed with
read-ahead and any seek is allowed (``torch.load(store.reader(key))`` works).
"""

from __future__ import annotations

import io
import os
from typing import Optional

from ._ringfetch import View, _NativeReader

# How much readline() looks at per step while searching for the end of a line.
_LINE_CHUNK = 64 * 1024


class Reader(io.RawIOBase):
    """A binary, read-only file over one object of a Store (see the module docstring)."""

    def __init__(self, native: _NativeReader) -> None:
        super().__init__()
        self._native = native
        self.name = native.key

    # -- io.RawIOBase

    def readable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        return True

    def writable(self) -> bool:
        self._check_open()
        return False

    def read(self, size: Optional[int] = -1) -> bytes:
        """Up to ``size`` bytes; never fewer inside the given ranges (only at the end of the object, or where the
        next byte lies outside the ranges). ``read()`` / ``read(-1)`` reads to the end (not allowed with ranges)."""
        self._check_open()
        if size is None or size < 0:
            return self._native.readall()
        return self._native.read(size)

    def readall(self) -> bytes:
        self._check_open()
        return self._native.readall()

    def readinto(self, buffer) -> int:
        """Fills ``buffer`` (any writable, C-contiguous buffer) from the position; returns the count."""
        self._check_open()
        return self._native.readinto(buffer)

    def read_view(self, size: int) -> View:
        """Up to ``size`` bytes of the current range as a zero-copy View (short at the end of a range)."""
        self._check_open()
        return self._native.read_view(size)

    def readline(self, size: Optional[int] = -1) -> bytes:
        self._check_open()
        limit = -1 if size is None else size
        parts = []
        taken = 0
        while limit < 0 or taken < limit:
            want = _LINE_CHUNK if limit < 0 else min(_LINE_CHUNK, limit - taken)
            chunk = self._native.read_view(want)
            n = len(chunk)
            if n == 0:
                break
            data = memoryview(chunk)
            end = bytes(data).find(b"\n")
            if end >= 0:
                # Give back what follows the newline: a seek within the current range is always allowed.
                self._native.seek(end + 1 - n, os.SEEK_CUR)
                parts.append(bytes(data[: end + 1]))
                break
            parts.append(bytes(data))
            taken += n
        return b"".join(parts)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """SEEK_SET or SEEK_CUR (and SEEK_END without ranges); returns the new position."""
        self._check_open()
        return self._native.seek(offset, whence)

    def tell(self) -> int:
        self._check_open()
        return self._native.tell()

    @property
    def size(self) -> int:
        """Size of the object in bytes."""
        self._check_open()
        return self._native.size()

    def close(self) -> None:
        """Stops the read-ahead and releases the reader's memory (views it returned stay valid)."""
        if not self.closed:
            self._native.close()
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed reader")

    def __repr__(self) -> str:
        return f"<ringfetch.Reader name={self.name!r}{' closed' if self.closed else ''}>"
