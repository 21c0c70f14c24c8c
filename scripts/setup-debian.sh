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
#   test.sh            python3 (validates the GPU kit's dry-run JSON; runs scripts/gpu-results.py)
#   gpu-check.sh       bash, coreutils, tar, gzip, awk, timeout; git optional (commit id);
#                      python3 with torch optional (the PyTorch twin; Debian's python3-torch
#                      and python3-torchvision are not installed here: large, and the twin is
#                      a GPU-machine baseline — the dry run records it as skipped without them)
#   gpu-kit-build.sh   nvcc (CUDA 13), strip (binutils), ldd
#   gpu-results.py     python3 (standard library only: the plot is a hand-written SVG)
#   kernel-report.sh   nvcc, python3 (standard library only), c++filt (binutils)
# No other script needs python3 or git.
pkgs=(build-essential g++ cmake ninja-build ccache pkg-config
      libstb-dev libjpeg62-turbo-dev doctest-dev libbenchmark-dev libopenblas-dev libboost-context-dev libcli11-dev
      clang libclang-rt-14-dev libomp-dev python3)
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
