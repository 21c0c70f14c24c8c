#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build for that GPU, run the whole test suite on the real
# device, run the kernel tests under compute-sanitizer (memcheck, racecheck, synccheck), run
# every benchmark, and write logs and JSON to one results folder.
#
#   scripts/gpu-run.sh OUT_DIR [--build-dir DIR] [--no-build] [--archs 90]
#
# With --no-build it uses binaries built elsewhere (e.g. with nvcc on a machine without a
# GPU, carried over with the libraries they need; put those in ADNN_LIB_DIR).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/gpu-run.sh OUT_DIR [--build-dir DIR] [--no-build] [--archs LIST]}"
shift
build=build-gpu
archs=native
do_build=1
while (($#)); do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --archs) archs="$2"; shift 2 ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
done
mkdir -p "$out"
if [[ -n "${ADNN_LIB_DIR:-}" ]]; then export LD_LIBRARY_PATH="$ADNN_LIB_DIR:${LD_LIBRARY_PATH:-}"; fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}"
status=0
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/run.log"; }

nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
log "GPU: ${gpu:-none}, driver ${driver:-?}, commit $(git rev-parse --short HEAD 2>/dev/null)"

# cuDNN for bench_cudnn: the toolkit's, or the one inside Python's nvidia-cudnn package
cudnn_args=()
if cudnn_dir=$(python3 -c "import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))" 2>/dev/null); then
  cudnn_lib=$(ls "$cudnn_dir"/lib/libcudnn.so* 2>/dev/null | head -1)
  [[ -n "$cudnn_lib" ]] && cudnn_args=(-DADNN_CUDNN_INCLUDE="$cudnn_dir/include" -DADNN_CUDNN_LIB="$cudnn_lib")
  export LD_LIBRARY_PATH="$cudnn_dir/lib:${LD_LIBRARY_PATH:-}"
fi

if ((do_build)); then
  log "build ($build, archs $archs)"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_CUDA=ON -DADNN_CUDA_ARCHS="$archs" \
    -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=ON ${cudnn_args[@]+"${cudnn_args[@]}"} > "$out/configure.log" 2>&1 &&
    cmake --build "$build" -j "$(nproc)" > "$out/build.log" 2>&1 || { log "build failed"; exit 1; }
fi

log "test suite on the GPU"
"$build/bin/adnn_tests" --reporters=xml --out="$out/tests.xml" > /dev/null 2>&1
"$build/bin/adnn_tests" > "$out/tests.log" 2>&1 || { status=1; log "tests FAILED"; }
tail -3 "$out/tests.log" | tee -a "$out/run.log"

if command -v compute-sanitizer > /dev/null; then
  for tool in memcheck racecheck synccheck; do
    log "compute-sanitizer --tool $tool (cuda suite)"
    compute-sanitizer --tool "$tool" --error-exitcode 3 "$build/bin/adnn_tests" --test-suite=cuda \
      > "$out/sanitizer-$tool.log" 2>&1 || { status=1; log "compute-sanitizer $tool reported errors"; }
    tail -2 "$out/sanitizer-$tool.log" | tee -a "$out/run.log"
  done
else
  log "compute-sanitizer not found"
fi

for b in "$build"/bin/bench_*; do
  name=$(basename "$b")
  log "benchmark $name"
  "$b" --benchmark_format=json --benchmark_out="$out/$name.json" --benchmark_out_format=json \
    > "$out/$name.log" 2>&1 || { status=1; log "$name failed"; }
done

cat > "$out/summary.json" <<JSON
{"date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "gpu": "${gpu:-}", "driver": "${driver:-}",
 "commit": "$(git rev-parse HEAD 2>/dev/null)", "command": "scripts/gpu-run.sh $out", "status": $status}
JSON
log "done, status $status"
exit $status
