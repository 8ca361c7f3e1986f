"""The package itself: the stub file covers the native module's public API, everything has a docstring, and
the names the documentation uses exist."""

from __future__ import annotations

import ast
import inspect
import pathlib

import ringfetch
from ringfetch import _ringfetch

STUB = pathlib.Path(ringfetch.__file__).resolve().parent / "_ringfetch.pyi"


def stub_names():
    tree = ast.parse(STUB.read_text())
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
    return names


def test_the_stub_declares_every_class_and_method_of_the_native_module():
    declared = stub_names()
    for name, cls in inspect.getmembers(_ringfetch, inspect.isclass):
        assert name in declared, f"{name} is missing from {STUB.name}"
        for member in vars(cls):
            if member.startswith("__") or member.startswith("_pybind11"):
                continue
            assert member in declared[name], f"{name}.{member} is missing from {STUB.name}"


def test_public_classes_and_methods_have_docstrings():
    for name in ("Engine", "Store", "Plan", "View", "Batch", "Reader", "Error"):
        assert getattr(ringfetch, name).__doc__, name
    for method in (ringfetch.Store.open, ringfetch.Store.fetch, ringfetch.Store.reader, ringfetch.Plan.add,
                   ringfetch.Engine.stats, ringfetch.Engine.register_memory, ringfetch.Batch.wait):
        assert method.__doc__, method


def test_exported_names_exist():
    for name in ringfetch.__all__:
        assert hasattr(ringfetch, name), name
