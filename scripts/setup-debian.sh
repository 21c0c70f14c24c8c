#!/usr/bin/env bash
# Installs the Debian 12 packages adnn needs. Idempotent: does nothing when all are present.
# Nothing is downloaded except through apt from Debian's archive.
set -euo pipefail
# What the scripts call, beyond Debian's essential set (bash, coreutils, tar, grep, sed, mawk,
# diffutils, dpkg), which every Debian 12 root has:
#   run.sh             cmake, ninja, g++ (+ the libraries below)
#   test.sh            the same, ctest, ninja -t, ccache; nvcc only if on PATH (optional)
#   check-barriers.sh  cmake, ninja, g++, awk, tar, cmp (no python3, no git)
#   fuzz.sh            clang++ with libFuzzer and the sanitizer runtimes (clang, libclang-rt-14-dev)
#                      and clang's OpenMP (libomp-dev)
#   gpu-run.sh         optional: git (commit id in the log), python3 (to find a pip cuDNN)
# No other script needs python3 or git.
pkgs=(build-essential g++ cmake ninja-build ccache pkg-config
      libstb-dev doctest-dev libbenchmark-dev libopenblas-dev libboost-context-dev libcli11-dev
      clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${pkgs[@]}"; do
  [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "adnn setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "adnn setup: all Debian packages present"
fi
