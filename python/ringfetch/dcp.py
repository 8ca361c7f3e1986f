"""PyTorch distributed checkpoint (DCP) storage on ringfetch: a StorageReader and a StorageWriter.

``StorageReader(url)`` loads a checkpoint written by torch's ``FileSystemWriter`` (one file per item, torch 1.13's
default, or one file per rank, torch 2.x's) from a ``file://``, ``direct://``, ``http(s)://`` or ``s3://`` root.
Each tensor item of a DCP checkpoint is a ``torch.save`` archive: a zip of stored (uncompressed) records, one
``data.pkl`` that describes the tensor and one ``data/<key>`` record per storage holding its raw bytes.

``read_data`` is one ringfetch fetch for the whole plan, coalesced per file and parallel across files. For each
tensor the reader computes where torch.save put the storage record (the pickle's length, and so the record's
offset, follows from the dtype and shape in the checkpoint metadata) and plans the storage bytes straight into the
destination tensor's memory: the engine reads the file or the response body into the tensor, with no
``torch.load`` and no copy. The archive bytes before the record come in the same request and are parsed when they
arrive; a tensor whose real layout differs from the prediction (saved non-contiguous, another torch's format) is
read again through a head read of its archive (two more fetches, for those tensors only). Where placement cannot
be done (another dtype, a non-contiguous destination or source slice, an archive it does not recognise) the whole
item is fetched and its raw record copied, or it is ``torch.load``ed as torch's own reader does. Bytes items go
through ``planner.load_bytes``.

``StorageWriter(url)`` writes the same layout, readable by torch's ``FileSystemReader`` when the root is a
directory.

Both implement torch 1.13's method set (``init``, ``read_metadata``, ``prepare_local_plan``,
``prepare_global_plan``, ``read_data``; ``write_data``, ``finish``) and torch 2.x's (``reset``,
``set_up_storage_reader`` / ``set_up_storage_writer``, ``validate_checkpoint_id``).
"""
import collections
import ctypes
import dataclasses
import io
import os
import pickle
import struct
import urllib.parse
import warnings
from typing import Any, Dict, List, Optional, Tuple

import torch

from . import _torch_dcp_fix

_dcp = _torch_dcp_fix.checkpoint_module()
_fs = _dcp.filesystem
_planner = _dcp.planner
_storage = _dcp.storage

__all__ = ["StorageReader", "StorageWriter", "ArchiveLayout", "parse_archive_head", "root_url", "LoadStats"]

METADATA_KEY = ".metadata"
DATA_SUFFIX = ".distcp"

# Bytes of an archive's start that a head read takes to find its layout: the zip local header and data.pkl of a
# single tensor take a few hundred bytes, and torch aligns the storage record to 64 bytes right after them.
HEAD_BYTES = 4096
# Tensor items up to this size are fetched whole and copied: placing them saves nothing worth a verification.
SMALL_ITEM_BYTES = HEAD_BYTES

_ZIP_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_ZIP_LOCAL_SIGNATURE = 0x04034B50
_ZIP_DESCRIPTOR_SIGNATURE = b"PK\x07\x08"
_ZIP_STORED = 0


# ----------------------------------------------------------------------------------------------------------------
# URLs and stores


def root_url(url: Any) -> str:
    """A store root URL for ``url``: URLs pass through; a plain path becomes ``file://<absolute path>``."""
    text = os.fspath(url) if isinstance(url, os.PathLike) else str(url)
    if "://" in text:
        return text.rstrip("/") if not text.endswith(":///") else text
    return "file://" + os.path.abspath(text)


def _local_dir(url: str) -> Optional[str]:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("file", "direct"):
        return urllib.parse.unquote(parsed.path)
    return None


class _Stores:
    """The engine and the two stores a reader uses: one with the caller's options for data, and one that never
    reads gaps, for the small head reads (with S3's MiB-sized gap default, heads of neighbouring items in a
    per-rank file would otherwise coalesce into reading the whole file twice)."""

    def __init__(self, url: str, engine, store_options: Dict[str, Any]):
        import ringfetch

        self._ringfetch = ringfetch
        self.url = url
        self._engine = engine
        self._options = dict(store_options)
        self._data = None
        self._heads = None

    @property
    def engine(self):
        if self._engine is None:
            self._engine = self._ringfetch.Engine()
        return self._engine

    @property
    def data(self):
        if self._data is None:
            self._data = self._ringfetch.Store.open(self.url, self.engine, **self._options)
        return self._data

    @property
    def heads(self):
        if self._heads is None:
            options = dict(self._options)
            options["max_gap"] = 0
            self._heads = self._ringfetch.Store.open(self.url, self.engine, **options)
        return self._heads

    def read_object(self, key: str) -> bytes:
        size = self.data.size(key)
        plan = self._ringfetch.Plan()
        plan.add(key, 0, size)
        return b"".join(bytes(view) for view in self.data.fetch(plan)) if size else b""

    def new_plan(self):
        return self._ringfetch.Plan()


# ----------------------------------------------------------------------------------------------------------------
# torch.save archives


class UnsupportedArchive(ValueError):
    """The item is not a single-storage tensor archive this reader can place directly; torch.load it instead."""


@dataclasses.dataclass(frozen=True)
class ArchiveLayout:
    """Where a ``torch.save``d tensor's elements lie inside its archive, and how they are arranged."""

    dtype: torch.dtype
    size: Tuple[int, ...]
    stride: Tuple[int, ...]
    storage_offset: int  # elements
    storage_numel: int
    data_offset: int  # bytes from the start of the archive to the storage record's first byte

    @property
    def element_size(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    dtype: torch.dtype
    key: str
    numel: int


@dataclasses.dataclass(frozen=True)
class _TensorRecipe:
    storage: _StorageRef
    storage_offset: int
    size: Tuple[int, ...]
    stride: Tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest):
    if not isinstance(storage, _StorageRef):
        raise UnsupportedArchive("tensor storage is not a plain storage record")
    return _TensorRecipe(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _StorageMarker:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _storage_dtype(name: str) -> torch.dtype:
    # An untyped storage counts bytes and leaves the element type to other records: left to torch.load.
    storage_class = getattr(torch, name, None)
    dtype = getattr(storage_class, "dtype", None)
    if not isinstance(dtype, torch.dtype):
        raise UnsupportedArchive(f"unknown storage type torch.{name}")
    return dtype


class _LayoutUnpickler(pickle.Unpickler):
    """Reads a tensor's data.pkl without building a tensor: only the names a plain dense tensor needs resolve."""

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name.endswith("Storage"):
            return _StorageMarker(_storage_dtype(name))
        if module == "torch" and name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16",
                                          "int8", "uint8", "bool", "complex64", "complex128"):
            return getattr(torch, name)
        raise UnsupportedArchive(f"archive uses {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsupportedArchive(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        dtype = storage_type.dtype if isinstance(storage_type, _StorageMarker) else storage_type
        if not isinstance(dtype, torch.dtype):
            raise UnsupportedArchive("storage without a dtype")
        return _StorageRef(dtype, str(key), int(numel))


def _local_header(head: memoryview, at: int) -> Tuple[str, int, int, int]:
    """(name, flags, compression, data start) of the zip local header at ``at``."""
    if at + _ZIP_LOCAL_HEADER.size > len(head):
        raise UnsupportedArchive("zip header beyond the bytes read")
    (signature, _version, flags, method, _t, _d, _crc, _csize, _usize, name_len,
     extra_len) = _ZIP_LOCAL_HEADER.unpack_from(head, at)
    if signature != _ZIP_LOCAL_SIGNATURE:
        raise UnsupportedArchive(f"no zip local header at byte {at}")
    name_at = at + _ZIP_LOCAL_HEADER.size
    if name_at + name_len + extra_len > len(head):
        raise UnsupportedArchive("zip header beyond the bytes read")
    name = bytes(head[name_at:name_at + name_len]).decode("utf-8")
    return name, flags, method, name_at + name_len + extra_len


def _after_record(head: memoryview, end: int) -> int:
    """The offset of the next local header after a record whose data ends at ``end``: torch's writer follows
    each record with a data descriptor (signature, CRC, 32- or 64-bit sizes)."""
    signed = bytes(head[end:end + 4]) == _ZIP_DESCRIPTOR_SIGNATURE
    for candidate in ((end + 16, end + 24) if signed else (end + 12, end + 20, end)):
        if candidate + 4 <= len(head) and struct.unpack_from("<I", head, candidate)[0] == _ZIP_LOCAL_SIGNATURE:
            return candidate
    raise UnsupportedArchive("cannot find the next zip record in the bytes read")


# Longest small record (.format_version, byteorder, .storage_alignment) stepped over by searching for the next
# header; anything longer before the storage record sends the item to torch.load.
_SMALL_RECORD_BYTES = 64


def parse_archive_head(head, item_length: int) -> ArchiveLayout:
    """The layout of the tensor in a ``torch.save`` archive, from its first bytes ``head``.

    Raises UnsupportedArchive when the archive is not a single dense tensor stored uncompressed with its
    storage record found in ``head`` and lying wholly inside the item.
    """
    head = memoryview(head).cast("B")
    name, _flags, method, pkl_at = _local_header(head, 0)
    if not name.endswith("/data.pkl") or method != _ZIP_STORED:
        raise UnsupportedArchive(f"first record is {name!r}, method {method}, not a stored data.pkl")
    prefix = name[: -len("data.pkl")]
    stream = io.BytesIO(head[pkl_at:])
    try:
        recipe = _LayoutUnpickler(stream).load()
    except UnsupportedArchive:
        raise
    except Exception as error:  # truncated or unexpected pickle: let torch.load decide
        raise UnsupportedArchive(f"data.pkl not readable from the first bytes: {error}") from error
    if not isinstance(recipe, _TensorRecipe):
        raise UnsupportedArchive("the archive holds something other than one tensor")
    at = _after_record(head, pkl_at + stream.tell())
    wanted = prefix + "data/" + recipe.storage.key
    for _ in range(8):  # data.pkl, then at most a few small records (.format_version, byteorder) before data/
        name, flags, method, data_at = _local_header(head, at)
        if name == wanted:
            if method != _ZIP_STORED:
                raise UnsupportedArchive(f"{name} is compressed")
            element = torch.empty((), dtype=recipe.storage.dtype).element_size()
            if data_at + recipe.storage.numel * element > item_length:
                raise UnsupportedArchive(f"{name} would end beyond the item")
            return ArchiveLayout(recipe.storage.dtype, recipe.size, recipe.stride, recipe.storage_offset,
                                 recipe.storage.numel, data_at)
        if name.startswith(prefix + "data/"):
            raise UnsupportedArchive(f"another storage record ({name}) precedes {wanted}")
        if name.endswith("/byteorder") and bytes(head[data_at:data_at + 6]) != b"little":
            raise UnsupportedArchive("the archive is not little-endian")
        found = bytes(head[data_at:data_at + _SMALL_RECORD_BYTES + 24]).find(b"PK\x03\x04")
        if found < 0:
            raise UnsupportedArchive(f"cannot step over record {name}")
        at = data_at + found
    raise UnsupportedArchive(f"{wanted} not found in the first bytes")


# ---- Predicting an archive's layout from the checkpoint metadata, so that a load needs no separate head reads.
# torch.save of a dense tensor writes a stored zip: "archive/data.pkl" (the pickle), then "archive/data/0" (the
# storage), each record's data aligned to 64 bytes by padding in the local header's extra field, each followed by
# a 16-byte data descriptor. The pickle depends only on dtype, shape and strides, so its length, and with it the
# storage record's offset, can be computed from the metadata. Each prediction is verified against the archive's
# real bytes when they arrive (the bytes before the storage record are fetched with it, in the same request);
# a wrong guess (another torch version's format, a tensor saved non-contiguous) is read again the slow way.

_ALIGNMENT = 64
_DESCRIPTOR_BYTES = 16
_STORAGE_CLASSES = {}
for _name in dir(torch):
    _class = getattr(torch, _name)
    if _name.endswith("Storage") and isinstance(getattr(_class, "dtype", None), torch.dtype):
        _STORAGE_CLASSES.setdefault(_class.dtype, _class)


class _PickledStorage:
    __slots__ = ("storage_class", "numel")

    def __init__(self, storage_class, numel):
        self.storage_class, self.numel = storage_class, numel


class _PickledTensor:
    """Pickles as torch.save pickles a dense CPU tensor (``Tensor.__reduce_ex__``), without any data."""

    def __init__(self, storage, size, stride):
        self.storage, self.size, self.stride = storage, size, stride

    def __reduce_ex__(self, protocol):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, self.size, self.stride, False, collections.OrderedDict()))


def _record_data_start(header_at: int, name: str) -> int:
    unaligned = header_at + _ZIP_LOCAL_HEADER.size + len(name.encode()) + 4  # 4: the padding field's own header
    return (unaligned + _ALIGNMENT - 1) // _ALIGNMENT * _ALIGNMENT


def _contiguous_strides(shape: Tuple[int, ...]) -> Tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def predict_layout(dtype: torch.dtype, shape: Tuple[int, ...]) -> Optional[ArchiveLayout]:
    """The layout ``torch.save`` gives a contiguous tensor of ``dtype`` and ``shape`` in this torch's format
    (None when this torch's format is not the one predicted)."""
    if not _PREDICTION_WORKS or dtype not in _STORAGE_CLASSES:
        return None
    shape = tuple(int(s) for s in shape)
    numel = 1
    for size in shape:
        numel *= size
    stride = _contiguous_strides(shape)
    storage = _PickledStorage(_STORAGE_CLASSES[dtype], numel)
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.persistent_id = lambda obj: (("storage", obj.storage_class, "0", "cpu", obj.numel)
                                         if isinstance(obj, _PickledStorage) else None)
    pickler.dump(_PickledTensor(storage, shape, stride))
    pickle_at = _record_data_start(0, "archive/data.pkl")
    data_at = _record_data_start(pickle_at + len(buffer.getvalue()) + _DESCRIPTOR_BYTES, "archive/data/0")
    return ArchiveLayout(dtype, shape, stride, 0, numel, data_at)


def _prediction_matches_torch_save() -> bool:
    """Checks the prediction against this torch's real torch.save output once, at import."""
    for dtype, shape in ((torch.float32, (3, 5)), (torch.bfloat16, ()), (torch.int64, (300, 2)),
                         (torch.bool, (2, 3, 4)), (torch.float64, (0, 7))):
        blob = io.BytesIO()
        torch.save(torch.zeros(shape, dtype=dtype), blob)
        try:
            actual = parse_archive_head(blob.getvalue(), len(blob.getvalue()))
        except UnsupportedArchive:
            return False
        if predict_layout(dtype, shape) != actual:
            return False
    return True


_PREDICTION_WORKS = True
_PREDICTION_WORKS = _prediction_matches_torch_save()


def _contiguous_slice(layout: ArchiveLayout, offsets, lengths) -> Optional[Tuple[int, int]]:
    """(first element, element count) in storage when the slice offsets/lengths of the saved tensor is one
    contiguous run in row-major order; None otherwise."""
    if len(offsets) != len(layout.size) or len(lengths) != len(layout.size):
        return None
    first = layout.storage_offset
    for offset, length, full, stride in zip(offsets, lengths, layout.size, layout.stride):
        if offset < 0 or length < 0 or offset + length > full:
            return None
        first += offset * stride
    expected = 1
    for length, stride in zip(reversed(lengths), reversed(layout.stride)):
        if length != 1 and stride != expected:
            return None
        expected *= length
    count = expected
    if first + count > layout.storage_numel:
        return None
    return first, count


def _writable_buffer(tensor: torch.Tensor):
    """A buffer over a CPU tensor's bytes (any dtype, bf16 included) for ``plan.add(..., into=)``."""
    return (ctypes.c_char * (tensor.numel() * tensor.element_size())).from_address(tensor.data_ptr())


# ----------------------------------------------------------------------------------------------------------------
# The reader


@dataclasses.dataclass
class LoadStats:
    """What the last ``read_data`` did, by route: tensors read in place, tensors whose raw record was copied
    (dtype or layout mismatch, or a small item read whole), tensors ``torch.load``ed, and bytes items."""

    in_place: int = 0
    in_place_bytes: int = 0
    copied: int = 0
    copied_bytes: int = 0
    torch_loaded: int = 0
    byte_items: int = 0
    fetches: int = 0
    mispredicted: int = 0  # tensors whose archive layout was not the predicted one (read again)
    # The engine's counters over the data fetch alone (the head reads excluded), when the engine's stats are
    # readable; exact when no other fetch shares the engine meanwhile.
    data_fetch: Optional[Dict[str, Any]] = None


class _TensorTarget:
    __slots__ = ("req", "info", "layout", "head", "verified")

    def __init__(self, req, info):
        self.req = req
        self.info = info
        self.layout: Optional[ArchiveLayout] = None
        self.head: Optional[bytes] = None
        self.verified = False


def _info(storage_data, index):
    info = storage_data[index]
    if getattr(info, "transform_descriptors", None):
        # torch >= 2.6 can write items through storage transforms (compression extensions); their bytes are not
        # a plain torch.save archive.
        raise NotImplementedError(f"item {index} was written through storage transforms "
                                  f"{info.transform_descriptors}; ringfetch.dcp reads untransformed checkpoints only")
    return info.relative_path, int(info.offset), int(info.length)


class StorageReader(_storage.StorageReader):
    """DCP StorageReader over a ringfetch store.

    ``url``: the checkpoint's root (``file:///dir``, ``direct:///dir``, ``http(s)://host/prefix``,
    ``s3://bucket/prefix``, or a local path). ``engine``: a ``ringfetch.Engine`` to share (one is made on first
    use otherwise). Other keywords go to ``ringfetch.Store.open`` (``max_gap``, ``part_size``, ``connections``,
    ``region``, ``endpoint_url``, ...). ``in_place=False`` turns off direct placement (every tensor is read as
    torch's reader does), for comparison.
    """

    def __init__(self, url=None, *, engine=None, in_place: bool = True, **store_options):
        super().__init__()
        self._engine = engine
        self._store_options = store_options
        self.in_place = in_place
        self.url = None
        self._stores: Optional[_Stores] = None
        self.storage_data: Dict[Any, Any] = {}
        self._metadata = None
        self.last_load = LoadStats()
        if url is not None:
            self._set_url(url)

    def _set_url(self, url):
        self.url = root_url(url)
        self._stores = _Stores(self.url, self._engine, self._store_options)

    @property
    def stores(self) -> _Stores:
        if self._stores is None:
            raise ValueError("StorageReader has no checkpoint location: pass a URL or a checkpoint_id")
        return self._stores

    # --- torch 2.x
    def reset(self, checkpoint_id=None) -> None:
        self.storage_data = {}
        self._metadata = None
        if checkpoint_id is not None:
            self._set_url(checkpoint_id)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        text = os.fspath(checkpoint_id) if isinstance(checkpoint_id, os.PathLike) else str(checkpoint_id)
        scheme = text.split("://", 1)[0] if "://" in text else "file"
        return scheme in ("file", "direct", "http", "https", "s3")

    def set_up_storage_reader(self, metadata, is_coordinator: bool) -> None:
        self.init(metadata, is_coordinator)

    # --- torch 1.13 (and 2.x)
    def init(self, metadata, is_coordinator: bool) -> None:
        self.storage_data = metadata.storage_data
        self._metadata = metadata
        if self.storage_data is None:
            raise ValueError("checkpoint metadata has no storage_data: it was not written by a file-system writer")

    def read_metadata(self):
        try:
            blob = self.stores.read_object(METADATA_KEY)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"no DCP checkpoint at {self.url}: {METADATA_KEY} not found ({error})") from error
        return pickle.loads(blob)

    def prepare_local_plan(self, plan):
        return plan

    def prepare_global_plan(self, global_plan):
        return global_plan

    def read_data(self, plan, planner):
        """One fetch for the whole plan: each tensor's storage bytes straight into its destination (with the
        archive bytes before them, to verify the predicted layout, in the same request), whole items for tensors
        that cannot be placed, bytes items. Tensors whose prediction proves wrong are read again through head
        reads (a second and third fetch, for those alone)."""
        stats = LoadStats()
        jobs: List[tuple] = []  # (path, start, length, into, on_view)
        placed: List[tuple] = []  # (target, dest, nbytes): verified, then committed, after the fetch
        for req in plan.items:
            path, offset, length = _info(self.storage_data, req.storage_index)
            if req.type == _planner.LoadItemType.BYTE_IO:
                jobs.append((path, offset, length, None, self._bytes_into(req, planner, stats)))
                continue
            target = _TensorTarget(req, (path, offset, length))
            if not self._plan_in_place(target, planner, jobs, placed, stats):
                jobs.append((path, offset, length, None, self._whole_item_into(req, planner, stats)))
        self._fetch(jobs, stats)
        retry = []
        for target, dest, nbytes in placed:
            if target.verified:
                planner.commit_tensor(target.req, dest)
            else:
                retry.append(target)
                stats.in_place -= 1
                stats.in_place_bytes -= nbytes
                stats.mispredicted += 1
        if retry:
            self._read_heads(retry, stats)
            self._read_bodies(retry, [], planner, stats)
        self.last_load = stats
        future = torch.futures.Future()
        future.set_result(None)
        return future

    def _predicted(self, req) -> Optional[ArchiveLayout]:
        """The layout torch.save gave this item's tensor if it saved it contiguous (the metadata's chunk)."""
        metadata = getattr(self._metadata, "state_dict_metadata", None) or {}
        entry = metadata.get(req.storage_index.fqn)
        chunks = getattr(entry, "chunks", None)
        properties = getattr(entry, "properties", None)
        if not chunks or properties is None:
            return None
        wanted = tuple(req.storage_index.offset or ())
        hint = req.storage_index.index
        if hint is not None and 0 <= hint < len(chunks) and tuple(chunks[hint].offsets) == wanted:
            chunk = chunks[hint]
        else:
            chunk = next((c for c in chunks if tuple(c.offsets) == wanted), None)
        if chunk is None:
            return None
        return predict_layout(properties.dtype, tuple(chunk.sizes))

    def _plan_in_place(self, target: _TensorTarget, planner, jobs, placed, stats: LoadStats) -> bool:
        req = target.req
        path, offset, length = target.info
        if not self.in_place or length <= SMALL_ITEM_BYTES:
            return False
        layout = self._predicted(req)
        if layout is None or layout.data_offset + layout.storage_numel * layout.element_size > length:
            return False
        run = _contiguous_slice(layout, req.storage_offsets, req.lengths)
        if run is None:
            return False
        dest = planner.resolve_tensor(req).detach()
        if (dest.dtype != layout.dtype or dest.device.type != "cpu" or not dest.is_contiguous()
                or tuple(dest.shape) != tuple(req.lengths)):
            return False
        first, count = run
        element = layout.element_size
        nbytes = count * element

        def verify(view):
            try:
                target.verified = parse_archive_head(memoryview(view), length) == layout
            except UnsupportedArchive:
                target.verified = False

        jobs.append((path, offset, layout.data_offset, None, verify))
        if nbytes:
            jobs.append((path, offset + layout.data_offset + first * element, nbytes, dest, None))
        placed.append((target, dest, nbytes))
        stats.in_place += 1
        stats.in_place_bytes += nbytes
        return True

    def _fetch(self, jobs, stats: LoadStats) -> None:
        """One fetch of ``jobs`` in file order; each view goes to its job's callback, then is dropped."""
        if not jobs:
            return
        jobs.sort(key=lambda job: (job[0], job[1]))
        plan = self.stores.new_plan()
        for path, start, nbytes, dest, _ in jobs:
            if dest is None:
                plan.add(path, start, nbytes)
            else:
                try:
                    plan.add(path, start, nbytes, into=dest)
                except TypeError:  # a binding that takes no tensors (or not this dtype): its raw bytes
                    plan.add(path, start, nbytes, into=_writable_buffer(dest))
        stats.fetches += 1
        before = self.stores.engine.stats()
        for view, job in zip(self.stores.data.fetch(plan), jobs):
            on_view = job[4]
            if on_view is not None:
                on_view(view)
            del view
        after = self.stores.engine.stats()
        stats.data_fetch = {k: after[k] - before[k] for k in after
                            if isinstance(after[k], int) and not isinstance(after[k], bool)}

    def _whole_item_into(self, req, planner, stats: LoadStats):
        """For a tensor not placed in place: its archive's bytes, its raw storage copied into the destination
        (another dtype or a strided destination) or, for archives this reader does not place, torch.load."""

        def on_view(view):
            raw = memoryview(view)
            try:
                layout = parse_archive_head(raw[:HEAD_BYTES], len(raw)) if self.in_place else None
            except UnsupportedArchive:
                layout = None
            run = _contiguous_slice(layout, req.storage_offsets, req.lengths) if layout is not None else None
            if run is None:
                self._torch_load_into(req, planner, stats)(raw)
                return
            first, count = run
            begin = layout.data_offset + first * layout.element_size
            self._copy_into(req, planner.resolve_tensor(req).detach(), layout, planner, stats)(
                raw[begin:begin + count * layout.element_size])

        return on_view

    def _read_heads(self, tensors: List[_TensorTarget], stats: LoadStats) -> None:
        """One fetch of every tensor item's first bytes (the whole item when it is small); parses the layouts."""
        plan = self.stores.new_plan()
        order = sorted(range(len(tensors)), key=lambda i: (tensors[i].info[0], tensors[i].info[1]))
        for i in order:
            path, offset, length = tensors[i].info
            plan.add(path, offset, min(length, HEAD_BYTES))
        stats.fetches += 1
        for view, i in zip(self.stores.heads.fetch(plan), order):
            target = tensors[i]
            length = target.info[2]
            head = bytes(view)
            del view
            if length <= SMALL_ITEM_BYTES:
                target.head = head
            try:
                target.layout = parse_archive_head(head, length)
            except UnsupportedArchive:
                target.layout = None

    def _read_bodies(self, tensors, byte_reqs, planner, stats: LoadStats) -> None:
        entries = []  # (path, offset, length, into, on_view); fetched in file order
        deferred = []  # (target, dest) committed after the fetch
        for target in tensors:
            req = target.req
            path, offset, length = target.info
            layout = target.layout
            if target.head is not None:
                self._place_from_head(target, planner, stats)
                continue
            run = _contiguous_slice(layout, req.storage_offsets, req.lengths) if layout is not None else None
            if run is None:
                entries.append((path, offset, length, None, self._torch_load_into(req, planner, stats)))
                continue
            first, count = run
            element = layout.element_size
            dest = planner.resolve_tensor(req).detach()
            if tuple(dest.shape) != tuple(req.lengths):
                raise ValueError(f"read item {req.storage_index}: destination shape {tuple(dest.shape)} is not "
                                 f"the slice's {tuple(req.lengths)}")
            start = offset + layout.data_offset + first * element
            nbytes = count * element
            if nbytes == 0:
                deferred.append((req, dest))
                continue
            if dest.dtype == layout.dtype and dest.device.type == "cpu" and dest.is_contiguous():
                entries.append((path, start, nbytes, dest, None))
                deferred.append((req, dest))
                stats.in_place += 1
                stats.in_place_bytes += nbytes
            else:
                entries.append((path, start, nbytes, None, self._copy_into(req, dest, layout, planner, stats)))
        for req in byte_reqs:
            path, offset, length = _info(self.storage_data, req.storage_index)
            entries.append((path, offset, length, None, self._bytes_into(req, planner, stats)))
        self._fetch(entries, stats)
        for req, dest in deferred:
            planner.commit_tensor(req, dest)

    def _place_from_head(self, target: _TensorTarget, planner, stats: LoadStats) -> None:
        req = target.req
        layout = target.layout
        run = _contiguous_slice(layout, req.storage_offsets, req.lengths) if layout is not None else None
        if run is None:
            self._torch_load_into(req, planner, stats)(target.head)
            return
        first, count = run
        element = layout.element_size
        begin = layout.data_offset + first * element
        self._copy_into(req, planner.resolve_tensor(req).detach(), layout, planner, stats)(
            memoryview(target.head)[begin:begin + count * element])

    @staticmethod
    def _copy_into(req, dest, layout: ArchiveLayout, planner, stats: LoadStats):
        def on_view(view):
            raw = memoryview(view)
            if len(raw):
                with warnings.catch_warnings():  # read-only source: it is only read, by copy_
                    warnings.simplefilter("ignore", UserWarning)
                    source = torch.frombuffer(raw, dtype=layout.dtype).view(tuple(req.lengths))
            else:
                source = torch.empty(tuple(req.lengths), dtype=layout.dtype)
            if tuple(dest.shape) != tuple(source.shape):
                raise ValueError(f"read item {req.storage_index}: destination shape {tuple(dest.shape)} vs "
                                 f"{tuple(source.shape)}")
            dest.copy_(source)
            planner.commit_tensor(req, dest)
            stats.copied += 1
            stats.copied_bytes += len(raw)

        return on_view

    @staticmethod
    def _torch_load_into(req, planner, stats: LoadStats):
        def on_view(view):
            tensor = torch.load(io.BytesIO(bytes(view)), map_location="cpu")
            tensor = _narrow(tensor, req.storage_offsets, req.lengths)
            dest = planner.resolve_tensor(req).detach()
            if dest.size() != tensor.size():
                raise ValueError(f"read item {req.storage_index}: size mismatch {dest.size()} vs {tensor.size()}")
            dest.copy_(tensor)
            planner.commit_tensor(req, dest)
            stats.torch_loaded += 1

        return on_view

    @staticmethod
    def _bytes_into(req, planner, stats: LoadStats):
        def on_view(view):
            planner.load_bytes(req, io.BytesIO(bytes(view)))
            stats.byte_items += 1

        return on_view


def _narrow(tensor: torch.Tensor, offsets, lengths) -> torch.Tensor:
    for dim, (offset, length) in enumerate(zip(offsets, lengths)):
        if offset != 0 or length != tensor.size(dim):
            tensor = tensor.narrow(dim, offset, length)
    return tensor


# ----------------------------------------------------------------------------------------------------------------
# The writer


def _trim(tensor: torch.Tensor) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    storage_elements = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1) \
        if hasattr(tensor, "untyped_storage") else tensor.storage().size()
    if storage_elements != tensor.numel():
        tensor = tensor.clone()
    return tensor


class _ObjectSink:
    """Where the writer's files go: a local directory, or objects uploaded through the ringfetch CLI's
    ``put`` (multipart with parallel parts) for s3:// roots."""

    def __init__(self, url: str, store_options: Dict[str, Any]):
        self.url = url
        self.directory = _local_dir(url)
        self.store_options = store_options
        scheme = urllib.parse.urlparse(url).scheme
        if self.directory is None and scheme != "s3":
            raise ValueError(f"StorageWriter writes to file://, direct:// or s3:// roots, not {scheme}://")

    def prepare(self) -> None:
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)

    def open(self, name: str):
        if self.directory is not None:
            return open(os.path.join(self.directory, name), "wb")
        return _UploadOnClose(self, name)

    def put(self, name: str, data) -> None:
        put_object(self.url.rstrip("/") + "/" + name, data, self.store_options)


def _cli_path() -> str:
    """The ``ringfetch`` program: RINGFETCH_CLI, then PATH, then the build tree next to this source tree."""
    import shutil

    candidates = [os.environ.get("RINGFETCH_CLI"), shutil.which("ringfetch")]
    here = os.path.dirname(os.path.abspath(__file__))
    for up in (os.path.join(here, "..", ".."), os.path.join(here, "..", "..", "..")):
        candidates.append(os.path.join(up, "build", "ringfetch"))
        candidates.append(os.path.join(up, "build", "tools", "ringfetch"))
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("writing to s3:// needs the ringfetch program (multipart upload with parallel parts): "
                       "put it on PATH or set RINGFETCH_CLI")


def _cli_connection_flags(options: Dict[str, Any]) -> List[str]:
    flags = []
    endpoint = options.get("endpoint_url") or (options.get("endpoints") or [None])[0]
    if endpoint:
        flags += ["--endpoint-url", str(endpoint)]
    if options.get("region"):
        flags += ["--region", str(options["region"])]
    if options.get("profile"):
        flags += ["--profile", str(options["profile"])]
    if options.get("ca_bundle"):
        flags += ["--ca-bundle", str(options["ca_bundle"])]
    if options.get("verify_tls") is False:
        flags += ["--no-verify-ssl"]
    return flags


def put_object(url: str, data, store_options: Optional[Dict[str, Any]] = None) -> None:
    """Uploads ``data`` (bytes-like) to the s3:// object ``url``.

    The Python module has no upload call, so this runs ``ringfetch put`` (one PUT, or a multipart upload with
    parallel parts from 16 MiB on, aborted on failure) on a temporary file.
    """
    import subprocess
    import tempfile

    options = store_options or {}
    with tempfile.NamedTemporaryFile(prefix="ringfetch-put-", suffix=".part") as staged:
        staged.write(data)
        staged.flush()
        command = [_cli_path(), "put", staged.name, url] + _cli_connection_flags(options)
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=options.get("upload_timeout", 600))
    if done.returncode != 0:
        raise OSError(f"upload of {url} failed: {done.stderr.strip() or done.stdout.strip()}")


class _UploadOnClose(io.BytesIO):
    def __init__(self, sink: _ObjectSink, name: str):
        super().__init__()
        self._sink = sink
        self._name = name

    def __exit__(self, kind, value, traceback):
        try:
            if kind is None:
                self._sink.put(self._name, self.getbuffer())
        finally:
            self.close()
        return False


class StorageWriter(_storage.StorageWriter):
    """DCP StorageWriter writing torch's file-system layout to ``url``.

    ``single_file_per_rank=True`` writes one ``__<rank>_0.distcp`` per rank (torch 2.x's default); ``False`` one
    file per item (torch 1.13's). A directory root (``file://`` or a path) is readable by torch's own
    ``FileSystemReader``; ``s3://`` roots are uploaded object by object.
    """

    def __init__(self, url=None, *, single_file_per_rank: bool = True, sync_files: bool = True, **store_options):
        super().__init__()
        self.single_file_per_rank = single_file_per_rank
        self.sync_files = sync_files
        self._store_options = store_options
        self.url = None
        self._sink = None
        if url is not None:
            self._set_url(url)

    def _set_url(self, url):
        self.url = root_url(url)
        self._sink = _ObjectSink(self.url, self._store_options)

    # --- torch 2.x
    def reset(self, checkpoint_id=None) -> None:
        if checkpoint_id is not None:
            self._set_url(checkpoint_id)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        text = os.fspath(checkpoint_id) if isinstance(checkpoint_id, os.PathLike) else str(checkpoint_id)
        return "://" not in text or text.split("://", 1)[0] in ("file", "direct", "s3")

    def set_up_storage_writer(self, is_coordinator: bool) -> None:
        self.init(is_coordinator)

    def storage_meta(self):
        return None

    # --- torch 1.13 (and 2.x)
    def init(self, is_coordinator: bool) -> None:
        if self._sink is None:
            raise ValueError("StorageWriter has no checkpoint location: pass a URL or a checkpoint_id")

    def prepare_local_plan(self, plan):
        return plan

    def prepare_global_plan(self, global_plan):
        self._sink.prepare()
        return [dataclasses.replace(plan, storage_data=_fs._StoragePrefix(f"__{i}_"))
                for i, plan in enumerate(global_plan)]

    def write_data(self, plan, planner):
        self._sink.prepare()
        prefix = plan.storage_data.prefix
        if self.single_file_per_rank:
            groups = [plan.items]
        else:
            groups = [[item] for item in plan.items]
        results = []
        for number, items in enumerate(groups):
            name = f"{prefix}{number}{DATA_SUFFIX}"
            with self._sink.open(name) as stream:
                for item in [i for i in items if i.type == _planner.WriteItemType.BYTE_IO]:
                    results.append(self._write_item(stream, name, item, planner.resolve_data(item)))
                for item in [i for i in items if i.type != _planner.WriteItemType.BYTE_IO]:
                    results.append(self._write_item(stream, name, item, _trim(planner.resolve_data(item))))
                if self.sync_files and hasattr(stream, "fileno") and self._sink.directory is not None:
                    stream.flush()
                    os.fsync(stream.fileno())
        future = torch.futures.Future()
        future.set_result(results)
        return future

    @staticmethod
    def _write_item(stream, name, item, data):
        offset = stream.tell()
        if item.type == _planner.WriteItemType.BYTE_IO:
            stream.write(data.getbuffer())
        else:
            torch.save(data, stream)
        length = stream.tell() - offset
        return _storage.WriteResult(index=item.index, size_in_bytes=length,
                                    storage_data=_fs._StorageInfo(name, offset, length))

    def finish(self, metadata, results) -> None:
        storage_md = {}
        for result_list in results:
            storage_md.update({result.index: result.storage_data for result in result_list})
        metadata.storage_data = storage_md
        blob = pickle.dumps(metadata)
        if self._sink.directory is not None:
            temporary = os.path.join(self._sink.directory, METADATA_KEY + ".tmp")
            with open(temporary, "wb") as stream:
                stream.write(blob)
                if self.sync_files:
                    os.fsync(stream.fileno())
            os.rename(temporary, os.path.join(self._sink.directory, METADATA_KEY))
        else:
            self._sink.put(METADATA_KEY, blob)
