"""Drop-in names of other loaders, backed by ringfetch: ``ringfetch.compat.s3torchconnector``."""
