#!/usr/bin/env bash
# Configures and builds one flavour: `release` (build/), `asan` (build-asan/, AddressSanitizer + UBSan, with
# assertions on), `tsan` (build-tsan/, ThreadSanitizer) or `fuzz` (build-fuzz/, the libFuzzer targets of fuzz/
# only, built with clang).
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
case "$flavour" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  # Assertions run here: RelWithDebInfo without its -DNDEBUG.
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g"
                               "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" -DRINGFETCH_SANITIZE=ON -DRINGFETCH_BUILD_BENCH=OFF) ;;
  # ThreadSanitizer: the library, the CLI and the C++ suites (no Python module, no benchmarks).
  tsan) dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS=-fsanitize=thread"
                               "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread" "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread"
                               -DRINGFETCH_BUILD_BENCH=OFF -DRINGFETCH_BUILD_PYTHON=OFF) ;;
  fuzz) dir=build-fuzz
    clang=${RINGFETCH_CLANG:-clang++-14}
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DRINGFETCH_BUILD_FUZZ=ON -DRINGFETCH_BUILD_TESTS=OFF
      -DRINGFETCH_BUILD_BENCH=OFF -DCMAKE_CXX_COMPILER="$clang" -DCMAKE_C_COMPILER="${clang/clang++/clang}") ;;
  *) echo "usage: scripts/build.sh [release|asan|tsan|fuzz]" >&2; exit 2 ;;
esac
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
[ -f "$dir/CMakeCache.txt" ] || cmake -S . -B "$dir" "${generator[@]}" "${flags[@]}" >/dev/null
if [ "$flavour" = fuzz ]; then
  # Only the fuzz targets: they build the parsers they need, not the library.
  cmake --build "$dir" -j "$(nproc)" --target fuzz_all
  exit 0
fi
cmake --build "$dir" -j "$(nproc)"
