#!/usr/bin/env bash
# Installs, builds and runs every test: the release build, the release build with the io_uring and buffer
# registration fallbacks forced (epoll, plain reads), and the AddressSanitizer + UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

run_ctest() {
  local dir=$1 label=$2
  shift 2
  echo "== tests: $label"
  (cd "$dir" && env "$@" ctest --output-on-failure --timeout 1500)
}

flavours=${RINGFETCH_TEST_FLAVOURS:-"release fallback asan"}
for flavour in $flavours; do
  case "$flavour" in
    release) bash scripts/build.sh release; run_ctest build "release" RINGFETCH_TEST_MODE=release ;;
    fallback) bash scripts/build.sh release
      run_ctest build "release, fallbacks forced (epoll, unregistered)" RINGFETCH_BACKEND=epoll RINGFETCH_NO_REGISTER=1 ;;
    asan) bash scripts/build.sh asan
      run_ctest build-asan "ASan+UBSan" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
    *) echo "unknown flavour $flavour" >&2; exit 2 ;;
  esac
done
echo "all test flavours passed: $flavours"
