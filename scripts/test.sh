#!/usr/bin/env bash
# Installs, builds and runs every test: the release build, the release build with the io_uring and buffer
# registration fallbacks forced (epoll, plain reads), the AddressSanitizer + UBSan build, the ThreadSanitizer build
# (C++ suites), and, when clang++-14 is
# installed, each fuzz target for RINGFETCH_FUZZ_SECONDS (20 s) from its seed corpus.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

run_ctest() {
  local dir=$1 label=$2
  shift 2
  local only=()
  if [ "$label" = "ThreadSanitizer" ]; then only=(-R '^(engine|http|s3|store)$'); fi
  echo "== tests: $label"
  (cd "$dir" && env "$@" ctest --output-on-failure --timeout 1500 "${only[@]}")
}

default_flavours="release fallback asan tsan"
command -v "${RINGFETCH_CLANG:-clang++-14}" >/dev/null 2>&1 && default_flavours+=" fuzz"
flavours=${RINGFETCH_TEST_FLAVOURS:-$default_flavours}
for flavour in $flavours; do
  case "$flavour" in
    release) bash scripts/build.sh release; run_ctest build "release" RINGFETCH_TEST_MODE=release ;;
    fallback) bash scripts/build.sh release
      run_ctest build "release, fallbacks forced (epoll, unregistered)" RINGFETCH_BACKEND=epoll RINGFETCH_NO_REGISTER=1 ;;
    asan) bash scripts/build.sh asan
      run_ctest build-asan "ASan+UBSan" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
    tsan) bash scripts/build.sh tsan
      # The engine, http, s3 and store suites (several engine threads, concurrent fetches from several callers).
      run_ctest build-tsan "ThreadSanitizer" TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp" ;;
    fuzz) bash scripts/build.sh fuzz
      echo "== tests: fuzz targets"
      (cd build-fuzz && ctest -L fuzz --output-on-failure) ;;
    *) echo "unknown flavour $flavour" >&2; exit 2 ;;
  esac
done
echo "all test flavours passed: $flavours"
