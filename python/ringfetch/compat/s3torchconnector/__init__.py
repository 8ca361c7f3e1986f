"""s3torchconnector's public names on ringfetch: change ``from s3torchconnector import ...`` to
``from ringfetch.compat.s3torchconnector import ...`` and the rest of a script stays as it is.

Readers fetch their object (or byte range) with one ringfetch fetch into memory they own (parallel ranged GETs,
no user-space copies on the way in) and then serve ``read``/``readinto``/``seek`` from it, so any access pattern
works, as with s3torchconnector's sequential reader. ``S3StorageReader``/``S3StorageWriter`` (in ``.dcp``) are
``ringfetch.dcp``'s reader and writer with s3torchconnector's constructor. Endpoint: the ``endpoint`` keyword,
else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``.
"""
import dataclasses
import io
import os
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple, Union

import torch.utils.data

import ringfetch

from ._connection import MiB, connection, parse_s3_uri, store_options

__all__ = ["S3Reader", "S3Writer", "S3ReaderConstructor", "S3ClientConfig", "S3Client", "S3Checkpoint",
           "S3MapDataset", "S3IterableDataset", "S3Exception", "S3BucketKeyData"]

S3Exception = ringfetch.Error
DEFAULT_MAX_GAP_SIZE = 32 * MiB


@dataclasses.dataclass(frozen=True)
class S3ClientConfig:
    """s3torchconnector's client settings; ``part_size`` and ``profile`` are passed on, the others are accepted
    for compatibility (ringfetch sizes its connections itself)."""

    throughput_target_gbps: float = 10.0
    part_size: int = 8 * MiB
    unsigned: bool = False
    force_path_style: bool = False
    max_attempts: int = 10
    profile: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class _ReaderKind:
    kind: str
    max_gap_size: Optional[int] = None
    buffer_size: Optional[int] = None


class S3ReaderConstructor:
    """Chooses how readers fetch. ``dcp_optimized`` coalesces a DCP load's ranges across gaps up to
    ``max_gap_size``; ``sequential`` reads each item on its own (no gap reads)."""

    @staticmethod
    def sequential() -> _ReaderKind:
        return _ReaderKind("sequential", max_gap_size=0)

    @staticmethod
    def range_based(buffer_size: Optional[int] = None) -> _ReaderKind:
        return _ReaderKind("range_based", max_gap_size=0, buffer_size=buffer_size)

    @staticmethod
    def dcp_optimized(max_gap_size: int = DEFAULT_MAX_GAP_SIZE) -> _ReaderKind:
        if not isinstance(max_gap_size, int) or max_gap_size < 0:
            raise ValueError(f"max_gap_size must be a non-negative int, not {max_gap_size!r}")
        return _ReaderKind("dcp_optimized", max_gap_size=max_gap_size)

    @staticmethod
    def default() -> _ReaderKind:
        return S3ReaderConstructor.sequential()

    @staticmethod
    def get_reader_type_string(constructor: Optional[_ReaderKind]) -> str:
        return (constructor or S3ReaderConstructor.default()).kind


class S3Reader(io.BufferedIOBase):
    """A readable, seekable view of ``s3://bucket/key`` (bytes ``[start, end)`` when given; positions count
    from ``start``). The bytes are fetched on first use, in one ringfetch fetch."""

    def __init__(self, client: "S3Client", bucket: str, key: str, start: Optional[int] = None,
                 end: Optional[int] = None, size: Optional[int] = None):
        super().__init__()
        self._client = client
        self.bucket = bucket
        self.key = key
        self._start = start or 0
        self._end = end
        self._size = size
        self._buffer: Optional[memoryview] = None
        self._position = 0

    def _load(self) -> memoryview:
        if self._buffer is None:
            if self.closed:
                raise ValueError("I/O operation on closed reader")
            store = self._client._store(self.bucket)
            size = self._size if self._size is not None else store.size(self.key)
            end = size if self._end is None else min(self._end, size)
            if self._start < 0 or self._start > end:
                raise ValueError(f"s3://{self.bucket}/{self.key}: range [{self._start}, {end}) is not in the object")
            data = bytearray(end - self._start)
            if data:
                plan = ringfetch.Plan()
                plan.add(self.key, self._start, len(data), into=data)
                for view in store.fetch(plan):
                    del view
            self._buffer = memoryview(data)
        return self._buffer

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        data = self._load()
        stop = len(data) if size is None or size < 0 else min(len(data), self._position + size)
        chunk = bytes(data[self._position:stop]) if stop > self._position else b""
        self._position = max(self._position, stop)
        return chunk

    read1 = read

    def readinto(self, buffer) -> int:
        data = self._load()
        target = memoryview(buffer).cast("B")
        count = max(0, min(len(target), len(data) - self._position))
        target[:count] = data[self._position:self._position + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = len(self._load()) + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._buffer = None
        super().close()


class S3Writer(io.BufferedIOBase):
    """Collects written bytes and uploads them as ``s3://bucket/key`` on ``close`` (a multipart upload with
    parallel parts for large objects)."""

    def __init__(self, client: "S3Client", bucket: str, key: str):
        super().__init__()
        self._client = client
        self.bucket = bucket
        self.key = key
        self._data = io.BytesIO()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return self._data.write(data)

    def tell(self) -> int:
        return self._data.tell()

    def close(self) -> None:
        if not self.closed:
            try:
                self._client._connection.put(self.bucket, self.key, self._data.getbuffer())
            finally:
                self._data = io.BytesIO()
                super().close()


@dataclasses.dataclass(frozen=True)
class S3BucketKeyData:
    bucket: str
    key: str
    size: Optional[int] = None


class S3Client:
    """``S3Client(region, endpoint=None, s3client_config=None)`` with s3torchconnector's calls."""

    def __init__(self, region: Optional[str] = None, *, endpoint: Optional[str] = None,
                 s3client_config: Optional[S3ClientConfig] = None, user_agent=None, max_gap: Optional[int] = None):
        self._region = region
        self._endpoint = endpoint
        self._s3client_config = s3client_config or S3ClientConfig()
        self._connection = connection(store_options(region, endpoint, self._s3client_config, max_gap))

    @property
    def region(self) -> Optional[str]:
        return self._region

    @property
    def s3client_config(self) -> S3ClientConfig:
        return self._s3client_config

    def _store(self, bucket: str):
        return self._connection.store(bucket)

    def get_object(self, bucket: str, key: str, start: Optional[int] = None, end: Optional[int] = None, *,
                   object_info=None, reader_constructor=None, reader_type=None) -> S3Reader:
        size = getattr(object_info, "size", None)
        return S3Reader(self, bucket, key, start, end, size)

    def put_object(self, bucket: str, key: str, storage_class: Optional[str] = None) -> S3Writer:
        return S3Writer(self, bucket, key)

    def head_object(self, bucket: str, key: str) -> S3BucketKeyData:
        return S3BucketKeyData(bucket, key, self._store(bucket).size(key))

    def list_objects(self, bucket: str, prefix: str = "") -> List[S3BucketKeyData]:
        return [S3BucketKeyData(bucket, key, size) for key, size in self._connection.list_objects(bucket, prefix)]


class S3Checkpoint:
    """``S3Checkpoint(region).reader(uri)`` / ``.writer(uri)``: file-like objects for ``torch.load`` / ``torch.save``."""

    def __init__(self, region: Optional[str] = None, endpoint: Optional[str] = None,
                 s3client_config: Optional[S3ClientConfig] = None):
        self.region = region
        self.endpoint = endpoint
        self._client = S3Client(region, endpoint=endpoint, s3client_config=s3client_config)

    def reader(self, s3_uri: str) -> S3Reader:
        bucket, key = parse_s3_uri(s3_uri)
        return self._client.get_object(bucket, key)

    def writer(self, s3_uri: str) -> S3Writer:
        bucket, key = parse_s3_uri(s3_uri)
        return self._client.put_object(bucket, key)


def identity(reader: S3Reader) -> S3Reader:
    return reader


def _objects_from_prefix(uri: str):
    bucket, prefix = parse_s3_uri(uri)

    def listing(client: S3Client) -> List[S3BucketKeyData]:
        return client.list_objects(bucket, prefix)

    return listing


def _objects_from_uris(uris: Union[str, Iterable[str]]):
    uris = [uris] if isinstance(uris, str) else list(uris)
    pairs = [S3BucketKeyData(*parse_s3_uri(uri)) for uri in uris]

    def listing(client: S3Client) -> List[S3BucketKeyData]:
        return pairs

    return listing


class _DatasetBase:
    def __init__(self, region, get_objects, endpoint=None, transform=identity, s3client_config=None,
                 reader_constructor=None):
        self._region = region
        self._endpoint = endpoint
        self._get_objects = get_objects
        self._transform = transform
        self._s3client_config = s3client_config
        self._reader_constructor = reader_constructor or S3ReaderConstructor.default()
        self._client: Optional[S3Client] = None

    @property
    def region(self):
        return self._region

    @property
    def endpoint(self):
        return self._endpoint

    def _get_client(self) -> S3Client:
        if self._client is None:
            self._client = S3Client(self._region, endpoint=self._endpoint, s3client_config=self._s3client_config)
        return self._client

    def _reader(self, item: S3BucketKeyData) -> S3Reader:
        return self._get_client().get_object(item.bucket, item.key, object_info=item)

    @classmethod
    def from_prefix(cls, s3_uri: str, *, region: Optional[str] = None, endpoint: Optional[str] = None,
                    transform: Callable[[S3Reader], Any] = identity, s3client_config=None, reader_constructor=None,
                    **kwargs):
        return cls(region, _objects_from_prefix(s3_uri), endpoint, transform=transform,
                   s3client_config=s3client_config, reader_constructor=reader_constructor, **kwargs)

    @classmethod
    def from_objects(cls, object_uris: Union[str, Iterable[str]], *, region: Optional[str] = None,
                     endpoint: Optional[str] = None, transform: Callable[[S3Reader], Any] = identity,
                     s3client_config=None, reader_constructor=None, **kwargs):
        return cls(region, _objects_from_uris(object_uris), endpoint, transform=transform,
                   s3client_config=s3client_config, reader_constructor=reader_constructor, **kwargs)


class S3MapDataset(_DatasetBase, torch.utils.data.Dataset):
    """Map-style dataset over S3 objects (listed on first use); ``dataset[i]`` is ``transform(reader)``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._items: Optional[List[S3BucketKeyData]] = None

    @property
    def _dataset_bucket_key_pairs(self) -> List[S3BucketKeyData]:
        if self._items is None:
            self._items = list(self._get_objects(self._get_client()))
        return self._items

    def __len__(self) -> int:
        return len(self._dataset_bucket_key_pairs)

    def __getitem__(self, i: int) -> Any:
        return self._transform(self._reader(self._dataset_bucket_key_pairs[i]))


class S3IterableDataset(_DatasetBase, torch.utils.data.IterableDataset):
    """Iterable dataset over S3 objects, yielding ``transform(reader)`` in key order. With
    ``enable_sharding=True`` the objects are split across DataLoader workers and distributed ranks; without it
    every worker sees every object, as in s3torchconnector."""

    def __init__(self, *args, enable_sharding: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._enable_sharding = enable_sharding

    def _shard(self) -> Tuple[int, int]:
        if not self._enable_sharding:
            return 0, 1
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        ranks, rank = 1, 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            ranks, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
        return rank * workers + worker, ranks * workers

    def __iter__(self) -> Iterator[Any]:
        index, count = self._shard()
        for position, item in enumerate(self._get_objects(self._get_client())):
            if position % count == index:
                yield self._transform(self._reader(item))
