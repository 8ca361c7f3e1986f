"""s3torchconnector.dcp's names on ``ringfetch.dcp``: ``S3StorageReader(region, path, ...)`` and
``S3StorageWriter(region, path, ...)``."""
import os
from typing import Optional, Union

from ... import dcp as _dcp
from . import S3ClientConfig, S3ReaderConstructor, _ReaderKind
from ._connection import store_options


class S3StorageReader(_dcp.StorageReader):
    """Loads a DCP checkpoint from ``path`` (s3://bucket/prefix). ``reader_constructor``: ``dcp_optimized``
    (the default here: ranges within ``max_gap_size`` of each other are read as one request) or ``sequential``
    (every item its own request)."""

    def __init__(self, region: Optional[str], path: Union[str, os.PathLike], s3client_config:
                 Optional[S3ClientConfig] = None, reader_constructor: Optional[_ReaderKind] = None, *,
                 endpoint: Optional[str] = None, **store_kwargs):
        constructor = reader_constructor or S3ReaderConstructor.dcp_optimized()
        options = store_options(region, endpoint, s3client_config, constructor.max_gap_size)
        options.update(store_kwargs)
        super().__init__(path, **options)
        self.region = region
        self.path = path
        self.reader_constructor = constructor

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        return str(checkpoint_id).startswith("s3://")


class S3StorageWriter(_dcp.StorageWriter):
    """Writes a DCP checkpoint to ``path`` (s3://bucket/prefix), one object per rank by default."""

    def __init__(self, region: Optional[str], path: Union[str, os.PathLike], s3client_config:
                 Optional[S3ClientConfig] = None, prefix_strategy=None, *, endpoint: Optional[str] = None,
                 single_file_per_rank: bool = True, thread_count: int = 1, **kwargs):
        options = store_options(region, endpoint, s3client_config)
        super().__init__(path, single_file_per_rank=single_file_per_rank, sync_files=False, **options)
        self.region = region
        self.path = path

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        return str(checkpoint_id).startswith("s3://")


__all__ = ["S3StorageReader", "S3StorageWriter"]
