#!/usr/bin/env bash
# Installs the Debian 12 packages adnn needs. Idempotent: does nothing when all are present.
# Nothing is downloaded except through apt from Debian's archive.
set -euo pipefail
# What the scripts call, beyond Debian's essential set (bash, coreutils, tar, grep, sed, mawk,
# diffutils, dpkg), which every Debian 12 root has:
#   run.sh             cmake, ninja, g++ (+ the libraries below)
#   test.sh            the same, ctest, ninja -t, ccache; nvcc only if on PATH (optional)
#   check-barriers.sh  cmake, ninja, g++, awk, grep (no python3, no git)
#   fuzz.sh            clang++ with libFuzzer and the sanitizer runtimes (clang, libclang-rt-14-dev)
#                      and clang's OpenMP (libomp-dev)
#   test.sh            python3 (validates the GPU kit's dry-run JSON; runs scripts/gpu-results.py)
#   gpu-check.sh       bash, coreutils, tar, gzip, awk, timeout; git optional (commit id);
#                      python3 with torch optional (the PyTorch twin; the dry run records it
#                      as skipped without python3-torch)
#   the export suite   python3-torch and python3-torchvision (Debian's 1.13 / 0.14): the
#                      round trip adnn -> torch load_state_dict (tests/export_roundtrip.py)
#   gpu-kit-build.sh   nvcc (CUDA 13), strip (binutils), ldd
#   gpu-results.py     python3 (standard library only: the plot is a hand-written SVG)
#   kernel-report.sh   nvcc, python3 (standard library only), c++filt (binutils)
# No other script needs python3 or git.
# libgloo-dev: Gloo, the CPU collectives of data-parallel training (include/adnn/distributed);
# libhiredis-dev: the headers of its Redis rendezvous store.
# libboost1.74-dev: Boost's headers; the library uses Boost.Math's t, chi-squared and binomial
# distributions (header-only; libboost-context-dev pulls it in too, it is named for clarity).
pkgs=(build-essential g++ cmake ninja-build ccache pkg-config
      libstb-dev libjpeg62-turbo-dev doctest-dev libbenchmark-dev libopenblas-dev libboost-context-dev libboost1.74-dev libcli11-dev libgloo-dev libhiredis-dev
      clang libclang-rt-14-dev libomp-dev python3)
# `setup-debian.sh --tests` (test.sh) adds what only the test suite uses: Debian's PyTorch for the
# export suite's round trip (large; the main job does not need it), and redis-server for the
# distributed suite's Redis rendezvous test.
if [[ "${1:-}" == "--tests" ]]; then pkgs+=(python3-torch python3-torchvision redis-server); fi
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
