#!/usr/bin/env bash
# Installs the Debian packages saed needs when any is missing (as root via
# apt-get), so that `make run` and `make test` work on a fresh Debian 12.
set -euo pipefail
pkgs=(build-essential pkg-config libmicrohttpd-dev libjansson-dev libsqlite3-dev libopenblas-dev
      zlib1g-dev libcurl4-openssl-dev python3-numpy python3-torch python3-venv curl
      dataset-fashion-mnist chromium nodejs $(command -v npm >/dev/null || echo npm))
# `deps.sh fuzz` (make fuzz): clang and its libFuzzer/sanitizer runtimes as well.
if [ "${1:-}" = fuzz ]; then pkgs+=(clang libclang-rt-14-dev); fi
# `deps.sh bench` (make bench): wrk as well, for the API under load.
if [ "${1:-}" = bench ]; then pkgs+=(wrk); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "saed: installing missing packages: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "saed: run as root, or install: apt-get install ${missing[*]}" >&2; exit 1; fi
else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
