"""``from s3torchconnector._s3client import S3Client, S3ClientConfig`` spelled for ringfetch."""
from . import S3Client, S3ClientConfig

__all__ = ["S3Client", "S3ClientConfig"]
