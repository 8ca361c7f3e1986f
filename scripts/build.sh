#!/usr/bin/env bash
# Configures and builds one flavour: `release` (build/) or `asan` (build-asan/, AddressSanitizer + UBSan, with
# assertions on).
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
case "$flavour" in
  release) dir=build; flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  # Assertions run here: RelWithDebInfo without its -DNDEBUG.
  asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g"
                               "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" -DRINGFETCH_SANITIZE=ON -DRINGFETCH_BUILD_BENCH=OFF) ;;
  *) echo "usage: scripts/build.sh [release|asan]" >&2; exit 2 ;;
esac
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
[ -f "$dir/CMakeCache.txt" ] || cmake -S . -B "$dir" "${generator[@]}" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
