#!/usr/bin/env bash
# Builds the GPU kit on this (CPU) machine: the real CUDA backend for sm_90 (H100/H200) only,
# the programs scripts/gpu-check.sh runs, stripped, the shared libraries a GPU machine's image
# may lack, a small FER2013 slice and the RetinaFace weights — into gpu-kit/ (ignored by git;
# the device tool's `carry` takes it along). Prints what travels: the working tree plus
# gpu-kit/, which must stay under the tool's 64 MiB. docs/gpu.md says how to use it.
#
#   scripts/gpu-kit-build.sh [--build-dir build-sm90] [--data ../shared/data/fer2013]
#                            [--retinaface ../shared/data/retinaface] [--train-images 3000] [--val-images 700]
#
# Not carried (too big; the GPU machine has them, gpu-check.sh finds them at run time):
# libcublas.so.13 / libcublasLt.so.13 (~600 MB), libcudnn*.so.9 (~1 GB) — in the CUDA toolkit
# there or in PyTorch's nvidia-* pip packages — and the driver's libcuda.so.1.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-sm90
data=../shared/data/fer2013
retina=../shared/data/retinaface
kit=$build/gpu-kit-stage   # staged here, then packed into gpu-kit/kit.tar.xz (what travels)
train_total=3000  # FER2013 train images in the slice (class proportions kept)
val_total=700
while (($#)); do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --retinaface) retina="$2"; shift 2 ;;
    --train-images) train_total="$2"; shift 2 ;;
    --val-images) val_total="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v nvcc > /dev/null || { echo "gpu-kit-build: nvcc is not on PATH" >&2; exit 1; }
jobs=${JOBS:-$(nproc)}
targets=(adnn_tests dist_worker adnn-fer bench_kernels bench_hbm bench_cudnn)

cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null; }
if [[ -f "$build/CMakeCache.txt" && "$(cache_value ADNN_CUDA)" == ON && "$(cache_value ADNN_CUDA_EMULATION)" == OFF &&
      ";$(cache_value ADNN_CUDA_ARCHS);" == *";90;"* && "$(cache_value CMAKE_BUILD_TYPE)" == Release ]]; then
  # An existing real-CUDA Release build that holds sm_90 code (e.g. build-nvcc, 80;86;90): keep its
  # architectures and compiler launcher (changing either would recompile every kernel), only
  # switch on the programs the kit needs. Its binaries carry the other architectures too.
  echo "== reuse $build (architectures $(cache_value ADNN_CUDA_ARCHS), Release)"
  cmake -S . -B "$build" -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=ON -DADNN_BUILD_EXAMPLES=ON > /dev/null
else
  echo "== configure $build (sm_90, Release)"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_CUDA=ON -DADNN_CUDA_ARCHS=90 \
    -DADNN_CUDA_EMULATION=OFF -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=ON -DADNN_BUILD_EXAMPLES=ON \
    -DCMAKE_CUDA_COMPILER_LAUNCHER="$(command -v ccache || true)" > /dev/null
fi
if ! ninja -C "$build" -t targets all | grep '^bench_cudnn:' > /dev/null; then
  echo "gpu-kit-build: cuDNN not found here: bench_cudnn is left out of the kit"
  targets=("${targets[@]/bench_cudnn/}")
fi
echo "== build ${targets[*]}"
nice cmake --build "$build" -j "$jobs" --target ${targets[@]}

echo "== assemble $kit/"
rm -rf "$kit"
mkdir -p "$kit/bin" "$kit/lib/compat" "$kit/data"
for t in ${targets[@]}; do
  cp "$build/bin/$t" "$kit/bin/"
  strip --strip-unneeded "$kit/bin/$t"
done
# the commit, marked when tracked files differ from it (the binaries then hold uncommitted work)
{ git rev-parse HEAD 2>/dev/null || echo unknown; } | tr -d '\n' > "$kit/COMMIT"
git diff --quiet HEAD 2>/dev/null || printf '+uncommitted' >> "$kit/COMMIT"
echo >> "$kit/COMMIT"

# Shared libraries: everything ldd resolves except the C library family, the driver and the
# CUDA libraries found on the GPU machine. libstdc++/libgcc_s go to lib/compat, used only if
# the machine's own are older (gpu-check.sh tries the binaries first).
skip='^(linux-vdso|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|ld-linux|libcuda\.so|libcublas|libcublasLt|libcudnn|libnccl)'
compat='^(libstdc\+\+|libgcc_s)'
for b in "$kit"/bin/*; do
  ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  [[ $name =~ $skip ]] && continue
  dest=$kit/lib
  [[ $name =~ $compat ]] && dest=$kit/lib/compat
  cp -L "$path" "$dest/$name"
done
for b in "$kit"/bin/*; do
  ldd "$b" | awk '/not found/ {print "gpu-kit-build: " FILENAME " needs " $1 " (not found here)"}' FILENAME="$b"
done

# A FER2013 slice: the first files (sorted) of each class, in the class proportions of the
# full split, so the majority-class prior is the full split's.
slice() {  # split total
  local split=$1 total=$2 all c n
  all=$(find "$data/$split" -type f | wc -l)
  for c in "$data/$split"/*/; do
    c=$(basename "$c")
    n=$(find "$data/$split/$c" -type f | wc -l)
    n=$(( (n * total + all / 2) / all ))
    ((n > 0)) || n=1
    mkdir -p "$kit/data/fer2013/$split/$c"
    # (sed -n, not head: head would close the pipe early and pipefail would end the script)
    find "$data/$split/$c" -type f | LC_ALL=C sort | sed -n "1,${n}p" | xargs -d '\n' cp -t "$kit/data/fer2013/$split/$c/"
  done
}
if [[ -d "$data/train" && -d "$data/val" ]]; then
  slice train "$train_total"
  slice val "$val_total"
else
  echo "gpu-kit-build: no FER2013 at $data: the kit's nano step will be skipped" >&2
fi
if [[ -d "$retina" ]]; then
  mkdir -p "$kit/data/retinaface"
  cp "$retina"/* "$kit/data/retinaface/"
fi

{
  echo "adnn GPU kit, commit $(cat "$kit/COMMIT"), built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
  echo "nvcc: $(nvcc --version | tail -2 | head -1)"
  echo "cmake: -DCMAKE_BUILD_TYPE=Release -DADNN_CUDA=ON -DADNN_CUDA_ARCHS=$(cache_value ADNN_CUDA_ARCHS) (build dir $build)"
  echo
  echo "files (bytes):"
  (cd "$kit" && find . -path ./data -prune -o -type f -printf '%s %p\n' | sort -k2)
  echo "data: $(find "$kit/data" -type f | wc -l) files, $(du -sb "$kit/data" | cut -f1) bytes"
} > "$kit/MANIFEST.txt"

# One xz archive: the five binaries each link the same kernels (~7 MB of sm_90 code), which
# xz's 64 MiB window stores once; 105 MiB of files become ~17 MiB.
echo "== pack gpu-kit/kit.tar.xz"
rm -rf gpu-kit
mkdir -p gpu-kit
tar -C "$kit" -cf - . | xz -9 -T"$jobs" > gpu-kit/kit.tar.xz
cp "$kit/MANIFEST.txt" gpu-kit/
echo "staged (unpacked) bytes: $(du -sb "$kit" | cut -f1)" >> gpu-kit/MANIFEST.txt
# What travels: tracked + untracked-not-ignored files of the working tree, and gpu-kit/.
tree_bytes=$( { git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s+=$1} END {print s+0}')
kit_bytes=$(du -sb gpu-kit | cut -f1)
total=$((tree_bytes + kit_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "== sizes"
du -sh --apparent-size "$kit"/bin/* "$kit/lib" "$kit/data" gpu-kit/kit.tar.xz | sed 's/^/  /'
echo "  working tree (git ls-files, tracked + untracked): $(mib "$tree_bytes")"
echo "  gpu-kit/: $(mib "$kit_bytes")"
echo "  total that travels: $(mib "$total") of 64 MiB"
echo "total bytes that travel: $total" >> gpu-kit/MANIFEST.txt
if ((total > 64 * 1048576)); then
  echo "gpu-kit-build: over the device tool's 64 MiB limit" >&2
  exit 1
fi
