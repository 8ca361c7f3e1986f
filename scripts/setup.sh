#!/usr/bin/env bash
# Installs what ringfetch needs to build, test and benchmark on Debian 12, from Debian's packages only
# (s3rver, the S3 test peer, comes from npm and is installed by the test harness into the build dir).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  liburing-dev libssl-dev openssl libexpat1-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  libcurl4-openssl-dev nginx-light python3-botocore gnuplot-nox ca-certificates
  python3-dev pybind11-dev python3-numpy python3-pytest python3-torch python3-boto3
  clang-14 libclang-rt-14-dev
)
# Node.js and npm for s3rver: use the machine's own if it has one, else Debian's.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The nginx package may start a system instance; the tests run their own and need none.
if command -v systemctl >/dev/null 2>&1; then systemctl stop nginx >/dev/null 2>&1 || true; fi
