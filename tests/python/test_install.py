"""`cmake --install` puts a working package under any prefix: the module finds the installed library through
its relative RPATH, not the build tree."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import rf_testing


def test_installed_package_imports_and_fetches_from_a_fresh_prefix(tmp_path, file_root):
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(rf_testing.BUILD_DIR), "--prefix", str(prefix)], check=True,
                   capture_output=True, timeout=300)
    inits = list(prefix.glob("lib/python3*/dist-packages/ringfetch/__init__.py"))
    assert len(inits) == 1, list(prefix.rglob("__init__.py"))
    site = inits[0].parent.parent
    assert list(site.glob("ringfetch/_ringfetch*.so")) and (site / "ringfetch" / "_ringfetch.pyi").exists()
    file_root.put("install/x.bin", b"installed!")
    script = (
        "import ringfetch, sys\n"
        f"assert ringfetch.__file__.startswith({str(site)!r}), ringfetch.__file__\n"
        f"store = ringfetch.Store.open({file_root.url!r}, ringfetch.Engine())\n"
        "plan = ringfetch.Plan(); plan.add('install/x.bin', 0, 10)\n"
        "print(bytes(next(store.fetch(plan))).decode())\n"
        "print([l.split()[-1] for l in open('/proc/self/maps') if 'libringfetch.so' in l][0])\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data, library = result.stdout.splitlines()
    assert data == "installed!"
    assert pathlib.Path(library).resolve().is_relative_to(prefix.resolve()), library  # not the build tree's
