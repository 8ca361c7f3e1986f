"""pip install of the ringfetch Python package from this source tree, offline, with Debian's setuptools:

    /usr/bin/python3 -m pip install --no-build-isolation .

The native module is built by the project's CMake build (library and module only) in build/pip, and installed
next to a copy of libringfetch.so (found through an $ORIGIN RPATH), so the package is self-contained.
"""

import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = ROOT / "build" / "pip"
        generator = ["-G", "Ninja"] if shutil.which("ninja") else []
        subprocess.check_call(
            ["cmake", "-S", str(ROOT), "-B", str(build_dir), *generator, "-DCMAKE_BUILD_TYPE=Release",
             "-DRINGFETCH_BUILD_TESTS=OFF", "-DRINGFETCH_BUILD_BENCH=OFF", "-DRINGFETCH_BUILD_PYTHON=ON",
             f"-DRINGFETCH_PYTHON_EXECUTABLE={sys.executable}", "-DRINGFETCH_PYTHON_INSTALL_RPATH=$ORIGIN",
             "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON"])
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", "_ringfetch", "-j",
                               str(os.cpu_count() or 1)])
        target = pathlib.Path(self.get_ext_fullpath(ext.name)).parent
        target.mkdir(parents=True, exist_ok=True)
        for built in (build_dir / "python" / "ringfetch").glob("_ringfetch*.so"):
            shutil.copy2(built, target / built.name)
        for library in build_dir.glob("libringfetch.so.*"):
            if library.name.count(".") == 2:  # the SONAME the module needs: libringfetch.so.0
                shutil.copy2(library, target / library.name)


setup(
    name="ringfetch",
    version="0.1.0",
    description="Byte ranges from S3, HTTP(S) and local files via io_uring, as zero-copy views",
    package_dir={"": "python"},
    packages=find_packages("python"),
    package_data={"ringfetch": ["*.pyi", "py.typed"]},
    ext_modules=[CMakeExtension("ringfetch._ringfetch")],
    cmdclass={"build_ext": CMakeBuild},
    python_requires=">=3.8",
    zip_safe=False,
)
