#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds a consumer against it twice: with CMake's
# find_package(ringfetch) (the consumer sets no C++ standard: the package's target brings it) and with pkg-config,
# and runs both; the installed `ringfetch` must run from outside the build tree. Public headers must compile without liburing or
# OpenSSL headers in sight, so the consumer sees only the prefix.
set -euo pipefail
src=$1 build=$2 build_type=${3:-Release} sanitize=${4:-OFF}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
extra=()
case "$sanitize" in ON|on|1|TRUE|true) extra=(-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined) ;; esac
cmake -S "$src/tests/install/consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE="$build_type" "${extra[@]}" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
mkdir -p "$work/data"
# CMake links the consumer with the library's path in its RUNPATH: it runs with no LD_LIBRARY_PATH.
env -u LD_LIBRARY_PATH "$work/cmake-build/consumer" "$work/data"
# The installed program runs from anywhere, outside the build tree, with no LD_LIBRARY_PATH.
(cd / && env -u LD_LIBRARY_PATH "$work/prefix/bin/ringfetch" --version) | grep -q '^ringfetch '

pcdir=$(dirname "$(find "$work/prefix" -name ringfetch.pc | head -n1)")
flags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs ringfetch)
san=()
[ ${#extra[@]} -eq 0 ] || san=(-fsanitize=address,undefined)
# shellcheck disable=SC2086
g++ "${san[@]}" "$src/tests/install/consumer/main.cpp" $flags -o "$work/consumer-pc"
LD_LIBRARY_PATH="$work/prefix/lib:$work/prefix/lib/x86_64-linux-gnu" "$work/consumer-pc" "$work/data"
# No public header exposes liburing or OpenSSL: embedders include only ours.
if grep -rlE '#include *[<"](liburing|openssl)' "$work/prefix/include/ringfetch"; then
  echo "a public header includes liburing or OpenSSL" >&2
  exit 1
fi
# Each public header compiles on its own.
for h in "$work"/prefix/include/ringfetch/*.hpp "$work"/prefix/include/ringfetch/*/*.hpp; do
  [ -f "$h" ] || continue
  echo "#include \"$h\"" | g++ -std=c++20 -fsyntax-only -I"$work/prefix/include" -x c++ -
done
# A static build of the library, installed and consumed the same way (release flavour only: it compiles the
# library once more). Its consumer must reach s3:// too: no scheme may depend on a static initialiser.
if [ ${#extra[@]} -eq 0 ]; then
  # Kept in the build directory, so a second run (another test flavour) only rebuilds what changed.
  static_build="$build/static-library"
  [ -f "$static_build/CMakeCache.txt" ] || cmake -S "$src" -B "$static_build" -DCMAKE_BUILD_TYPE=Release \
    -DRINGFETCH_STATIC=ON -DRINGFETCH_BUILD_TESTS=OFF -DRINGFETCH_BUILD_BENCH=OFF -DRINGFETCH_BUILD_PYTHON=OFF >/dev/null
  cmake --build "$static_build" -j "$(nproc)" >/dev/null
  cmake --install "$static_build" --prefix "$work/static-prefix" >/dev/null
  cmake -S "$src/tests/install/consumer" -B "$work/static-consumer" -DCMAKE_PREFIX_PATH="$work/static-prefix" \
    -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$work/static-consumer" >/dev/null
  if ldd "$work/static-consumer/consumer" | grep -q libringfetch; then
    echo "the static consumer links libringfetch dynamically" >&2
    exit 1
  fi
  "$work/static-consumer/consumer" "$work/data"
fi
echo "consumer test passed"
