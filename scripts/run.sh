#!/usr/bin/env bash
# The main job: set up, build, and train the example (for now a 2-layer MLP on synthetic
# data; ADNN-FER replaces it once its issues land).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DADNN_CUDA=OFF -DADNN_BUILD_TESTS=OFF -DADNN_BUILD_BENCH=OFF >/dev/null
cmake --build build --target mlp_train
./build/bin/mlp_train "$@"
