"""Makes torch 1.13's distributed checkpoint importable on Python 3.11.

torch 1.13 declares ``ShardedTensorMetadata.tensor_properties`` with ``field(default=TensorProperties())``.
Python 3.11's dataclasses refuse an unhashable default instance, so importing
``torch.distributed._shard.checkpoint`` (or anything that pulls in the sharded-tensor metadata) raises
``ValueError: mutable default ... TensorProperties``. The fix rewrites that one declaration to
``default_factory=TensorProperties`` while the module's source is compiled, through an import hook installed
in this process only: no system file changes, and nothing happens on torch versions without the defect.
"""
import importlib.abc
import importlib.machinery
import importlib.util
import sys

_TARGET = "torch.distributed._shard.sharded_tensor.metadata"
_BROKEN = b"field(default=TensorProperties())"
_FIXED = b"field(default_factory=TensorProperties)"


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    """A source loader that swaps the broken dataclass default before compiling."""

    def get_code(self, fullname):
        source = self.get_data(self.path)
        return compile(source.replace(_BROKEN, _FIXED), self.path, "exec", dont_inherit=True)


class _PatchingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                return spec  # a compiled or frozen module: nothing to patch
            with open(spec.origin, "rb") as source:
                if _BROKEN not in source.read():
                    return spec
            spec.loader = _PatchingLoader(fullname, spec.origin)
            return spec
        return None


def needed() -> bool:
    """True when the running torch has the defect and this Python rejects it (torch 1.13.x on 3.11+)."""
    if sys.version_info < (3, 11):
        return False
    try:
        import torch
    except ImportError:
        return False
    return torch.__version__.split("+")[0].startswith("1.13.")


def install() -> bool:
    """Installs the hook when needed; returns whether it is active. Idempotent."""
    if any(isinstance(finder, _PatchingFinder) for finder in sys.meta_path):
        return True
    if not needed() or _TARGET in sys.modules:
        return False
    sys.meta_path.insert(0, _PatchingFinder())
    return True


def checkpoint_module():
    """Returns torch's DCP module: ``torch.distributed.checkpoint`` (2.x) or ``torch.distributed._shard.checkpoint``."""
    install()
    import torch

    if not torch.distributed.is_available():
        raise ImportError("this torch build has no torch.distributed, which DCP needs")
    try:
        import torch.distributed.checkpoint as dcp  # torch 2.x

        if hasattr(dcp, "StorageReader"):
            return dcp
    except ImportError:
        pass
    import torch.distributed._shard.checkpoint as dcp  # torch 1.13

    return dcp
