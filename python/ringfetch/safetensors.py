"""Loading tensors out of a safetensors file with ringfetch, straight into tensor memory.

A safetensors file is an unsigned 64-bit little-endian header length N, N bytes of JSON mapping each tensor's
name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets from the first byte after the header;
an optional ``"__metadata__"`` entry maps strings to strings), then the tensors' bytes, row-major, little-endian.
``load`` reads the header (one small read, a second only when the header is longer than the first read), selects
tensors by name or glob, and fetches all of them in one coalesced ringfetch fetch straight into the result
tensors' memory (fresh ones, or the caller's preallocated ones in ``into``).
"""
import fnmatch
import json
import os
import struct
import urllib.parse
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import torch

__all__ = ["load", "read_header", "split_object_url", "TensorEntry", "DTYPES"]

# The format's dtype names and their torch dtypes (those this torch has).
DTYPES: Dict[str, torch.dtype] = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "I32": torch.int32,
    "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
    "C64": torch.complex64,
}
for _name, _attr in (("U16", "uint16"), ("U32", "uint32"), ("U64", "uint64"), ("F8_E4M3", "float8_e4m3fn"),
                     ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _attr):
        DTYPES[_name] = getattr(torch, _attr)

# The first read takes this many bytes: most headers fit, so a load is usually two fetches in all.
FIRST_READ_BYTES = 64 * 1024
# A header longer than this is refused as corrupt (the reference implementation's limit is 100 MB).
MAX_HEADER_BYTES = 100 * 1000 * 1000


class TensorEntry:
    """One tensor of the header: name, dtype, shape and its byte range in the file."""

    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name: str, dtype: torch.dtype, shape: Tuple[int, ...], begin: int, end: int):
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    def __repr__(self):
        return f"TensorEntry({self.name!r}, {self.dtype}, {self.shape}, [{self.begin}, {self.end}))"


def split_object_url(url: Any) -> Tuple[str, str]:
    """(store root, key) of an object URL or a local path: split at the last '/'."""
    text = os.fspath(url) if isinstance(url, os.PathLike) else str(url)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    scheme, rest = text.split("://", 1)
    if scheme in ("file", "direct"):
        directory, _, key = rest.rpartition("/")
        return f"{scheme}://{directory or '/'}", key
    slash = rest.rfind("/")
    if slash <= 0 or slash == len(rest) - 1:
        raise ValueError(f"{text} is not an object URL (a store root plus a key, e.g. s3://bucket/model.safetensors)")
    return f"{scheme}://{rest[:slash]}", rest[slash + 1:]


def _entries(header: Dict[str, Any], data_start: int, file_size: int, where: str) -> List[TensorEntry]:
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise ValueError(f"{where}: __metadata__ must map strings to strings")
            continue
        try:
            dtype_name = info["dtype"]
            shape = tuple(int(s) for s in info["shape"])
            begin, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: tensor {name!r} has a malformed header entry {info!r}") from error
        if dtype_name not in DTYPES:
            raise ValueError(f"{where}: tensor {name!r} has dtype {dtype_name}, which this torch cannot hold")
        dtype = DTYPES[dtype_name]
        numel = 1
        for s in shape:
            if s < 0:
                raise ValueError(f"{where}: tensor {name!r} has a negative dimension")
            numel *= s
        element = torch.empty((), dtype=dtype).element_size()
        if begin < 0 or end < begin or end - begin != numel * element:
            raise ValueError(f"{where}: tensor {name!r} spans [{begin}, {end}) but {dtype_name}{list(shape)} "
                             f"needs {numel * element} bytes")
        if data_start + end > file_size:
            raise ValueError(f"{where}: tensor {name!r} ends at byte {data_start + end}, beyond the file's "
                             f"{file_size} bytes")
        entries.append(TensorEntry(name, dtype, shape, data_start + begin, data_start + end))
    entries.sort(key=lambda e: e.begin)
    return entries


def _read(store, plan_cls, key: str, offset: int, length: int) -> bytes:
    plan = plan_cls()
    plan.add(key, offset, length)
    return b"".join(bytes(view) for view in store.fetch(plan))


def read_header(store, key: str) -> Tuple[List[TensorEntry], Dict[str, str]]:
    """The tensors (in file order) and the ``__metadata__`` of the safetensors object ``key`` of ``store``."""
    import ringfetch

    where = key
    size = store.size(key)
    if size < 8:
        raise ValueError(f"{where}: {size} bytes is too short for a safetensors file")
    first = _read(store, ringfetch.Plan, key, 0, min(size, FIRST_READ_BYTES))
    (header_len,) = struct.unpack_from("<Q", first, 0)
    if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
        raise ValueError(f"{where}: header length {header_len} does not fit a {size}-byte file")
    if 8 + header_len > len(first):
        first += _read(store, ringfetch.Plan, key, len(first), 8 + header_len - len(first))
    try:
        header = json.loads(first[8:8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where}: the header is not JSON ({error})") from error
    if not isinstance(header, dict):
        raise ValueError(f"{where}: the header is not a JSON object")
    metadata = header.get("__metadata__") or {}
    return _entries(header, 8 + header_len, size, where), metadata


def _select(entries: List[TensorEntry], names: Optional[Iterable[str]], where: str) -> List[TensorEntry]:
    if names is None:
        return entries
    if isinstance(names, str):
        names = [names]
    by_name = {e.name: e for e in entries}
    chosen: Dict[str, TensorEntry] = {}
    for pattern in names:
        if pattern in by_name:
            chosen[pattern] = by_name[pattern]
            continue
        matched = [e for e in entries if fnmatch.fnmatchcase(e.name, pattern)]
        if not matched:
            raise KeyError(f"{where}: no tensor named or matching {pattern!r}")
        for e in matched:
            chosen[e.name] = e
    return sorted(chosen.values(), key=lambda e: e.begin)


def _destination(entry: TensorEntry, into: Optional[Dict[str, torch.Tensor]], where: str) -> torch.Tensor:
    if into is None or entry.name not in into:
        return torch.empty(entry.shape, dtype=entry.dtype)
    dest = into[entry.name]
    if not isinstance(dest, torch.Tensor):
        raise TypeError(f"into[{entry.name!r}] is a {type(dest).__name__}, not a torch.Tensor")
    if dest.dtype != entry.dtype or tuple(dest.shape) != entry.shape:
        raise ValueError(f"{where}: into[{entry.name!r}] is {dest.dtype}{list(dest.shape)}, the file holds "
                         f"{entry.dtype}{list(entry.shape)}")
    if dest.device.type != "cpu" or not dest.is_contiguous():
        raise ValueError(f"{where}: into[{entry.name!r}] must be a contiguous CPU tensor to be filled in place")
    return dest


def load(url, names: Union[None, str, Iterable[str]] = None, into: Optional[Dict[str, torch.Tensor]] = None, *,
         engine=None, **store_options) -> Dict[str, torch.Tensor]:
    """Loads tensors of the safetensors object at ``url`` (file://, http(s)://, s3:// object URL or a path).

    ``names``: tensor names or glob patterns (``"layers.*.weight"``); all tensors when None (or, when ``into`` is
    given, the names of ``into``). ``into``: preallocated tensors by name, filled in place (dtype and shape must
    match the file). Returns the loaded tensors by name, in file order; tensors not in ``into`` are new ones.
    The tensors' bytes arrive in one coalesced fetch, written by ringfetch straight into the tensors' memory.
    Other keywords go to ``ringfetch.Store.open``.
    """
    import ringfetch

    root, key = split_object_url(url)
    if engine is None:
        engine = ringfetch.Engine()
    store = ringfetch.Store.open(root, engine, **store_options)
    entries, _metadata = read_header(store, key)
    if names is None and into is not None:
        names = list(into.keys())
    selected = _select(entries, names, key)
    result: Dict[str, torch.Tensor] = {}
    plan = ringfetch.Plan()
    planned = 0
    for entry in selected:
        dest = _destination(entry, into, key)
        result[entry.name] = dest
        if entry.nbytes:
            plan.add(key, entry.begin, entry.nbytes, into=dest)
            planned += 1
    if planned:
        for view in store.fetch(plan):
            del view
    return result
