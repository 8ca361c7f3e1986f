#!/usr/bin/env bash
# The main job: install, build, and run `ringfetch` (with no arguments: the embedded file:// demo).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release >/dev/null
if [ $# -eq 0 ]; then set -- demo; fi
exec ./build/ringfetch "$@"
