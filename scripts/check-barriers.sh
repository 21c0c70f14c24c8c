#!/usr/bin/env bash
# Removes each __syncthreads() in kernels/*.cuh, one at a time, rebuilds the emulated kernel
# tests and checks that the `sim`/`cuda` suites fail. Proves the emulator's shuffled scheduling
# catches a missing barrier in every kernel that has one. Usage: scripts/check-barriers.sh
#
# The working tree is never touched: the sources (as they are on disk, uncommitted edits
# included) are copied into a temporary directory, which gets its own build directory; each
# mutation is made in the copy and undone there by copying the original file back (checked
# with cmp). Any failing step (copy, mutation, restore, build) stops the script. Needs only
# bash, coreutils, tar, awk, cmake, ninja and a C++ compiler; with ccache, CCACHE_BASEDIR is
# set to the copy so the copy's objects hit the cache of a build made with the same options.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
tmp=$(mktemp -d "${TMPDIR:-/tmp}/adnn-barriers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# everything but build directories, run directories and git metadata
tar -C "$src" --exclude='./build*' --exclude='./runs' --exclude='./.git' -cf - . | tar -C "$tmp" -xf -
export CCACHE_BASEDIR="$tmp"
build="$tmp/build"
# (no kernel access trace: it is not needed here, and the uninstrumented kernels build and run faster)
cmake -S "$tmp" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_CUDA=OFF -DADNN_CUDA_EMULATION=ON \
  -DADNN_SIM_TRACE=OFF -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=OFF -DADNN_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target adnn_tests >/dev/null
# the unmutated copy must pass, or "caught" below would mean nothing
# the kernel cases of the sim and cuda suites; the nano training steps (graphs, allocator
# measurement, host round trips) exercise no kernel the op registry does not, and take minutes
# on the emulator. A mutation stops at the first failing case.
tests=("$build/bin/adnn_tests" --test-suite=sim,cuda
       "--test-case-exclude=CUDA graph: inference*,CUDA graph: a whole*,CUDA graph: replays*,caching allocator: reserved*,a warmed-up*,DistributedDataParallel on cuda*")
"${tests[@]}" >/dev/null 2>&1 || { echo "the sim/cuda suites fail without any mutation"; exit 1; }

status=0
shopt -s nullglob
kernels=(kernels/*.cuh)
((${#kernels[@]})) || { echo "no kernels/*.cuh found"; exit 1; }
for f in "${kernels[@]}"; do
  n=$(awk '{ s = $0; while ((p = index(s, "__syncthreads();")) > 0) { c++; s = substr(s, p + 16) } } END { print c + 0 }' "$f")
  for ((i = 1; i <= n; i++)); do
    # replace the i-th occurrence in the copy; prints its line; exits 3 if there is none
    line=$(awk -v k="$i" -v out="$tmp/$f" '
      { s = $0; r = ""
        while ((p = index(s, "__syncthreads();")) > 0) {
          c++
          if (c == k) { r = r substr(s, 1, p - 1) "/* barrier removed */"; at = NR }
          else r = r substr(s, 1, p + 15)
          s = substr(s, p + 16)
        }
        print r s > out }
      END { if (!at) exit 3; print at }' "$src/$f")
    cmp -s "$src/$f" "$tmp/$f" && { echo "$f: mutation $i changed nothing"; exit 1; }
    printf '%s:%s ' "$f" "$line"
    cmake --build "$build" --target adnn_tests >/dev/null
    if "${tests[@]}" --abort-after=1 >/dev/null 2>&1; then
      echo "NOT CAUGHT"
      status=1
    else
      echo "caught"
    fi
    cp "$src/$f" "$tmp/$f"
    cmp -s "$src/$f" "$tmp/$f" || { echo "restoring $f in the copy failed"; exit 1; }
  done
done
exit $status
