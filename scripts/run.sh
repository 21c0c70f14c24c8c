#!/usr/bin/env bash
# The main job: set up (Debian 12), build, train ADNN-FER's nano configuration on FER2013 on
# the CPU for 60 minutes (the cosine schedule runs over the budget, as the PyTorch peer's),
# evaluate it on `val`, and classify a few val faces. Precision auto: bf16 autocast (f32 master
# weights) on a CPU with AVX512-BF16, whose dot product makes the step about 1.3x as fast, so the
# hour trains more steps; f32 on other CPUs, where bf16 would cost time (docs/training.md).
# Usage: scripts/run.sh [--data DIR] [more adnn-fer train options, e.g. --time-budget 10, --precision f32]
#   DIR holds train/<class>/*.jpg and val/<class>/*.jpg (default: ../shared/data/fer2013).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
data="../shared/data/fer2013"
args=()
precision=(--precision auto)
while [[ $# -gt 0 ]]; do
  if [[ "$1" == "--data" ]]; then data="$2"; shift 2
  else
    [[ "$1" == "--precision" ]] && precision=()  # the caller's own
    args+=("$1"); shift
  fi
done
[[ -d "$data/train" && -d "$data/val" ]] || { echo "FER2013 not found at $data (pass --data DIR)"; exit 2; }
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_CUDA=OFF -DADNN_CUDA_EMULATION=ON \
  -DADNN_BUILD_TESTS=ON -DADNN_BUILD_BENCH=ON -DCMAKE_INSTALL_PREFIX="$PWD/build/install" >/dev/null
cmake --build build --target adnn-fer
run=runs/adnn_fer_nano
./build/bin/adnn-fer train --config adnn_fer_nano --data "$data" --out "$run" --force --device cpu --time-budget 60 --schedule time \
  ${precision[@]+"${precision[@]}"} ${args[@]+"${args[@]}"}
# val accuracy of the best checkpoint without and with test-time flip averaging
./build/bin/adnn-fer eval --checkpoint "$run/best.safetensors" --data "$data" --device cpu --tta none \
  --out "$run/eval_plain"
./build/bin/adnn-fer eval --checkpoint "$run/best.safetensors" --data "$data" --device cpu --tta flip
# the first file of three classes, by shell glob (sorted); no `ls | head` pipe, which under
# pipefail dies of SIGPIPE (exit 141) once a folder holds more names than one pipe write
faces=()
for c in angry happy surprise; do
  first=""
  for f in "$data/val/$c"/*; do
    if [[ -f "$f" ]]; then first="$f"; break; fi
  done
  [[ -n "$first" ]] || { echo "no images in $data/val/$c"; exit 2; }
  faces+=("$first")
done
./build/bin/adnn-fer predict --checkpoint "$run/best.safetensors" --tta flip "${faces[@]}"
