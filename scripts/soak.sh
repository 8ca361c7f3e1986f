#!/usr/bin/env bash
# The long soak: RINGFETCH_SOAK_REQUESTS (default 100,000) ranged GETs against the fault server with resets,
# stalls and 503s mixed in; every byte is checked, and resident memory and open descriptors must be flat. The test
# suites run the same test with 3,000 requests. Usage: bash scripts/soak.sh [REQUESTS] (after scripts/build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-${RINGFETCH_SOAK_REQUESTS:-100000}}
[ -x build/tests/ringfetch_http_tests ] || bash scripts/build.sh release
RINGFETCH_SOAK_REQUESTS=$requests ./build/tests/ringfetch_http_tests --gtest_filter='Soak.*'
