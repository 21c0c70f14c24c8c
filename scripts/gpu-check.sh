#!/usr/bin/env bash
# The GPU kit's run (issue 21, docs/gpu.md): on a lent GPU machine, turn at most ~9 minutes of
# device time into checked results. Runs prebuilt sm_90 binaries from gpu-kit/ (made on the
# CPU machine by scripts/gpu-kit-build.sh); builds nothing.
#
#   scripts/gpu-check.sh OUT_DIR [--kit DIR] [--budget SECONDS] [--steps 0,1,3] [--bench-cudnn-seconds 200]
#   scripts/gpu-check.sh --dry-run OUT_DIR [--bin-dir build/bin] [--data DIR]
#
# Steps, in order of value; each has its own time limit (capped by what is left of --budget,
# default 540 s) and, when it ends, its result is added to OUT_DIR/summary.json, which is
# rewritten after every step, as is OUT_DIR/logs.tar.gz (every log) — so a run cut off by
# the device tool's limit still returns what it did. Exactly these two files are written to
# OUT_DIR (the tool returns at most 8).
#   0 device: nvidia-smi, driver and CUDA versions, the binaries' libraries, bench_hbm
#     (device-to-device copy GB/s, an f32 cuBLAS GEMM and bf16 cuBLASLt GEMMs: the ceilings)
#   1 tests: adnn_tests --test-suite=cuda with CUDA_LAUNCH_BLOCKING=1, then without
#   2 sanitizer: compute-sanitizer memcheck + synccheck on one op per kernel family,
#     racecheck on the shared-memory kernels
#   3 kernels: bench_cudnn at the paper's shapes (vs cuDNN/cuBLAS), bench_kernels (GB/s)
#   4 end to end: adnn-fer bench, adnn_fer_paper training img/s (f32, then bf16 autocast),
#     the PyTorch twin bench/pytorch/adnn_fer_twin.py (f32 and AMP bf16 channels_last) in the
#     same run, and batch-1 latency (eager, then a CUDA graph replay)
#   5 nano: a short adnn_fer_nano training run on the kit's FER2013 slice: the loss falls and
#     val accuracy beats the majority-class prior
# --steps: run only these steps (the others are recorded as skipped: a second run after fixes);
# --bench-cudnn-seconds: step 3's limit for bench_cudnn (default 200: 99 of its 105 rows took 151 s on an
# H200; they run in order of value, so a lower limit keeps the comparisons that matter most).
# --dry-run: the same steps on the emulated device (an -DADNN_CUDA_EMULATION=ON build) at
# tiny sizes; what needs a GPU is recorded as "skipped: no GPU". scripts/test.sh runs it.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

dry=0
out=""
kit=gpu-kit
bin_dir=""
data=""
budget=540
steps=0,1,2,3,4,5
cudnn_s=200
while (($#)); do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --steps) steps="$2"; shift 2 ;;
    --bench-cudnn-seconds) cudnn_s="$2"; shift 2 ;;
    --kit) kit="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --budget) budget="$2"; shift 2 ;;
    -h|--help) sed -n 2,29p "$0"; exit 0 ;;
    -*) echo "gpu-check: unknown option $1" >&2; exit 2 ;;
    *) out="$1"; shift ;;
  esac
done
[[ -n "$out" ]] || { echo "usage: scripts/gpu-check.sh [--dry-run] OUT_DIR [options]" >&2; exit 2; }
mkdir -p "$out"
out=$(cd "$out" && pwd)
if ((dry)); then
  bin_dir=${bin_dir:-build/bin}
  [[ -n "$data" ]] || for d in "$kit/data/fer2013" ../shared/data/fer2013 shared/data/fer2013; do
    [[ -d "$d/train" ]] && { data=$d; break; }
  done
else
  # the kit travels as gpu-kit/kit.tar.xz (scripts/gpu-kit-build.sh): unpack it once
  if [[ ! -d "$kit/bin" && -f "$kit/kit.tar.xz" ]]; then
    unpacked=${TMPDIR:-/tmp}/adnn-gpu-kit
    if [[ ! -d "$unpacked/bin" ]]; then
      mkdir -p "$unpacked"
      tar -xJf "$kit/kit.tar.xz" -C "$unpacked" 2>/dev/null ||
        python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$kit/kit.tar.xz" "$unpacked" ||
        { echo "gpu-check: cannot unpack $kit/kit.tar.xz" >&2; exit 2; }
    fi
    kit=$unpacked
  fi
  kit=$(cd "$kit" && pwd)
  bin_dir=${bin_dir:-$kit/bin}
  data=${data:-$kit/data/fer2013}
fi
bin_dir=$(cd "$bin_dir" 2>/dev/null && pwd) || { echo "gpu-check: no binaries in $bin_dir (run scripts/gpu-kit-build.sh, or build/ for --dry-run)" >&2; exit 2; }
[[ -n "$data" && -d "$data" ]] && data=$(cd "$data" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
logs=$work/logs
mkdir -p "$logs" "$work/steps"
t_start=$SECONDS
# the commit the binaries were built from (the kit's COMMIT); the checkout's in a dry run
if ((dry)); then
  commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
else
  commit=$(cat "$kit/COMMIT" 2>/dev/null || git rev-parse HEAD 2>/dev/null || echo unknown)
fi
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) > 8 ? 8 : $(nproc) ))}
log() { echo "[gpu-check $(date -u +%H:%M:%S) +$((SECONDS - t_start))s] $*" | tee -a "$logs/gpu-check.log"; }

# ---------------------------------------------------------------- JSON helpers
jstr() {  # a JSON string
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\t'/ }
  s=${s//$'\r'/}
  printf '"%s"' "$(printf '%s' "$s" | tr -d '\000-\037')"
}
jnum() {  # a JSON number, or null
  if [[ "${1:-}" =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then printf '%s' "$1"; else printf null; fi
}
jfile() {  # a file that holds one JSON value (a benchmark's --benchmark_out), or null
  [[ -s "$1" ]] && head -c 1 "$1" | grep -q '[{[]' || { printf null; return; }
  if ! command -v python3 > /dev/null; then cat "$1"; return; fi
  # a Google-benchmark file cut off by a time limit: keep its complete rows ("truncated": true)
  python3 - "$1" <<'PY' || printf null
import json, sys
t = open(sys.argv[1]).read()
try:
    json.loads(t)
    print(t)
except ValueError:
    i = t.rfind("\n    }")
    while i > 0:
        try:
            obj = json.loads(t[: i + 6] + "\n  ]\n}")
            obj["truncated"] = True
            print(json.dumps(obj))
            break
        except ValueError:
            i = t.rfind("\n    }", 0, i)
    else:
        print("null")
PY
}
asked() { [[ ",$steps," == *",$1,"* ]]; }  # step N is in --steps
jlist() {  # JSON list of strings
  local first=1
  printf '['
  for x in "$@"; do ((first)) || printf ', '; first=0; jstr "$x"; done
  printf ']'
}

meta_gpu=""; meta_driver=""; meta_cuda=""
write_summary() {  # summary.json from the step files; then logs.tar.gz
  local tmp=$out/summary.json.tmp
  {
    printf '{\n"kit": "adnn gpu-check", "version": 1,\n'
    printf '"mode": %s,\n' "$(jstr "$( ((dry)) && echo dry-run || echo gpu)")"
    printf '"commit": %s, "started": %s, "updated": %s,\n' "$(jstr "$commit")" "$(jstr "$started")" \
      "$(jstr "$(date -u +%Y-%m-%dT%H:%M:%SZ)")"
    printf '"command": %s,\n' "$(jstr "scripts/gpu-check.sh $( ((dry)) && echo '--dry-run ')OUT_DIR")"
    printf '"host": %s, "gpu": %s, "driver": %s, "cuda": %s,\n' "$(jstr "$(uname -srm)")" "$(jstr "$meta_gpu")" \
      "$(jstr "$meta_driver")" "$(jstr "$meta_cuda")"
    printf '"budget_s": %s, "elapsed_s": %s,\n' "$budget" "$((SECONDS - t_start))"
    printf '"steps": [\n'
    local first=1 f
    for f in "$work"/steps/*.json; do
      [[ -e "$f" ]] || continue
      ((first)) || printf ',\n'
      first=0
      cat "$f"
    done
    printf '\n]\n}\n'
  } > "$tmp" && mv -f "$tmp" "$out/summary.json"
  tar -czf "$out/logs.tar.gz.tmp" -C "$work" logs 2>/dev/null && mv -f "$out/logs.tar.gz.tmp" "$out/logs.tar.gz"
}

# step_record N NAME STATUS SECONDS COMMANDS_JSON RESULTS_JSON [NOTE]
step_record() {
  printf '{"step": %s, "name": %s, "status": %s, "seconds": %s, "commands": %s, "results": %s, "note": %s}' \
    "$1" "$(jstr "$2")" "$(jstr "$3")" "$4" "$5" "${6:-null}" "$(jstr "${7:-}")" > "$work/steps/$(printf %02d "$1")-$2.json"
  write_summary
  log "step $1 ($2): $3 in $4 s${7:+ — $7}"
}

# limit WANTED: the step's limit, capped by what is left of the budget (0: no time left)
limit() {
  local left=$((budget - (SECONDS - t_start) - 5))
  ((left < 10)) && { echo 0; return; }
  ((left < $1)) && echo "$left" || echo "$1"
}
# run LIMIT LOG CMD...: run with a time limit; the command line goes to the log; rc returned
run() {
  local lim=$1 lg=$2
  shift 2
  printf '$ %s\n' "$*" >> "$lg"
  timeout -k 5 "$lim" "$@" >> "$lg" 2>&1
}
rc_status() { case "$1" in 0) echo ok ;; 124|137) echo timeout ;; *) echo "fail" ;; esac; }
worst() {  # the worse of two statuses
  local a=$1 b=$2
  for s in fail timeout skipped ok; do [[ $a == "$s" || $b == "$s" ]] && { echo "$s"; return; }; done
  echo "$a"
}

# ---------------------------------------------------------------- libraries (GPU mode)
# The kit's binaries need libcublas/libcublasLt, libnccl (data-parallel) and bench_cudnn libcudnn: too big to carry,
# so they come from the machine — the CUDA toolkit, or PyTorch's nvidia-* pip packages.
orig_ld=${LD_LIBRARY_PATH:-}
if ((!dry)); then
  libpath=$kit/lib
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    [[ -e $d/libcublas.so.13 || -e $d/libnccl.so.2 ]] && libpath+=:$d
  done
  if nv=$(python3 -c 'import nvidia, os; print("\n".join(nvidia.__path__))' 2>/dev/null); then
    while read -r dir; do
      [[ -n "$dir" ]] || continue
      while read -r f; do libpath+=:$(dirname "$f"); done < <(find "$dir" \( -name 'libcublas.so.13' -o -name 'libcublasLt.so.13' \
        -o -name 'libcudnn.so.9' -o -name 'libcudart.so.13' -o -name 'libnvJitLink.so.13' -o -name 'libnccl.so.2' \) \
        2>/dev/null | sort -u)
    done <<< "$nv"
  fi
  export LD_LIBRARY_PATH=$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  # the kit carries Debian 12's libstdc++ only as a fallback for an older system one
  if ! "$bin_dir/adnn-fer" > /dev/null 2>"$work/probe.err" && grep -q 'GLIBCXX\|CXXABI\|GCC_' "$work/probe.err"; then
    export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$kit/lib/compat
  fi
  log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi
B=$bin_dir
# python3 with torch (the GPU image's plain python3; here Debian's, when a pyenv shim comes first)
py=${PYTHON:-python3}
if ! "$py" -c 'import torch' 2>/dev/null && [[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  py=/usr/bin/python3
fi

# Ops for the sanitizer and the dry run's test pass: one per kernel family (docs/kernels.md)
family_ops=gelu,add_broadcast,sum_dims,log_softmax,batch_norm_silu_train,layer_norm,group_norm,conv2d_3x3,conv2d_depthwise_k5_s2,max_pool2d_overlap_pad,interp_bicubic,gather,compound_loss,adamw_multi_tensor,sdpa_tiles,channel_pool2d,sigmoid_gate_spatial,squeeze_excite,matmul_batched_broadcast
shared_ops=sum_dims,log_softmax,batch_norm_silu_train,layer_norm,group_norm,sdpa_tiles,channel_pool2d,spatial_pool2d,squeeze_excite
registry_cases='every op: cpu and cuda agree (forward and gradients),every op in f16 and bf16: cpu and cuda forward agree'
doctest_counts() {  # "cases passed failed skipped assertions_failed" from a doctest log
  local l a
  l=$(grep '^\[doctest\] test cases:' "$1" | tail -1)
  a=$(grep '^\[doctest\] assertions:' "$1" | tail -1)
  printf '{"test_cases": %s, "passed": %s, "failed": %s, "skipped": %s, "assertions": %s, "assertions_failed": %s}' \
    "$(jnum "$(sed -E 's/.*test cases: *([0-9]+).*/\1/' <<< "$l")")" \
    "$(jnum "$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<< "$l")")" \
    "$(jnum "$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<< "$l")")" \
    "$(jnum "$(sed -E 's/.*\| *([0-9]+) skipped.*/\1/' <<< "$l")")" \
    "$(jnum "$(sed -E 's/.*assertions: *([0-9]+).*/\1/' <<< "$a")")" \
    "$(jnum "$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<< "$a")")"
}

log "mode $( ((dry)) && echo dry-run || echo gpu), binaries $B, data ${data:-none}, budget ${budget}s, out $out"
write_summary

# ================================================================ step 0: the device
s0=$SECONDS
lg=$logs/0-device.log
cmds=()
st=ok
if ((dry)); then
  meta_gpu="none (dry run: SIMT emulator)"
  note="nvidia-smi skipped: no GPU"
  hbm_args=(--bytes 1048576 --iters 3 --gemm 64 --bf16-gemms 64x48x40)
else
  note=""
  cmds+=("nvidia-smi")
  run 20 "$lg" nvidia-smi || st=fail
  cmds+=("nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit --format=csv")
  run 20 "$lg" nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.max.mem,power.limit,compute_cap --format=csv
  meta_gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  meta_driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1)
  meta_cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -1)
  { echo "$ nvcc --version"; nvcc --version 2>&1 || true; echo "$ uname -a"; uname -a; echo "$ cat /etc/os-release"; cat /etc/os-release 2>&1 || true
    echo "$ python3 torch"; LD_LIBRARY_PATH=$orig_ld python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())' 2>&1 || true; } >> "$lg"
  # bf16: 8192³ (the ceiling), then ADNN-FER paper's encoder GEMMs at batch 32 (1568 token rows):
  # QKV in-projection, out-projection, FF1, FF2 forward, and the QKV weight gradient
  hbm_args=(--bytes $((2 << 30)) --iters 20 --gemm 8192
    --bf16-gemms 8192x8192x8192,1568x6144x2048,1568x2048x2048,1568x4096x2048,1568x2048x4096,6144x2048x1568)
fi
missing=""
for b in "$B"/*; do
  [[ -x "$b" && -f "$b" ]] || continue
  { echo "$ ldd $b"; ldd "$b" 2>&1; } >> "$lg"
  m=$(ldd "$b" 2>/dev/null | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
  [[ -n "$m" ]] && missing+="$(basename "$b"): $m; "
done
[[ -n "$missing" ]] && { st=fail; log "missing libraries: $missing"; }
cmds+=("bench_hbm ${hbm_args[*]}")
lim=$(limit 60)
run "$lim" "$lg" "$B/bench_hbm" "${hbm_args[@]}"
rc=$?
st=$(worst "$st" "$(rc_status $rc)")
hbm=$(grep '^{' "$lg" | tail -1)
[[ "$hbm" == *copy_GBps* ]] || hbm=null
torch_v=$(LD_LIBRARY_PATH=$orig_ld "$py" -c 'import torch; print(torch.__version__)' 2>/dev/null)
step_record 0 device "$st" $((SECONDS - s0)) "$(jlist "${cmds[@]}")" \
  "{\"gpu\": $(jstr "$meta_gpu"), \"driver\": $(jstr "$meta_driver"), \"cuda_driver_api\": $(jstr "$meta_cuda"), \"nvcc\": $(jstr "$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"), \"torch\": $(jstr "$torch_v"), \"missing_libraries\": $(jstr "$missing"), \"hbm\": $hbm}" \
  "$note"

# ================================================================ step 1: the cuda test suite
if asked 1; then
s1=$SECONDS
lg=$logs/1-tests.log
cmds=()
if ((dry)); then
  # tiny: the registry cases for one op per family, and the allocator/copy cases
  export ADNN_TEST_OPS=$family_ops
  sel=(--test-case="$registry_cases,device memory*,copies between devices*")
  note="dry run: ADNN_TEST_OPS=one op per family"
else
  unset ADNN_TEST_OPS
  sel=()
  note=""
fi
cmds+=("CUDA_LAUNCH_BLOCKING=1 adnn_tests --test-suite=cuda ${sel[*]}")
lim=$(limit 150)
if ((lim == 0)); then
  step_record 1 tests skipped 0 "[]" null "skipped: out of time budget"
else
  CUDA_LAUNCH_BLOCKING=1 run "$lim" "$lg.blocking" "$B/adnn_tests" --test-suite=cuda "${sel[@]}" --duration=true
  rc1=$?
  r1=$(doctest_counts "$lg.blocking")
  st=$(rc_status $rc1)
  r2=null
  # second pass, asynchronous launches, when the first left time for it
  lim=$(limit 90)
  if ((lim > 0 && SECONDS - s1 < 90)); then
    cmds+=("adnn_tests --test-suite=cuda ${sel[*]}")
    run "$lim" "$lg.async" "$B/adnn_tests" --test-suite=cuda "${sel[@]}" --duration=true
    rc2=$?
    r2=$(doctest_counts "$lg.async")
    st=$(worst "$st" "$(rc_status $rc2)")
  else
    note+="${note:+; }second (asynchronous) pass skipped: time"
  fi
  step_record 1 tests "$st" $((SECONDS - s1)) "$(jlist "${cmds[@]}")" "{\"blocking\": $r1, \"async\": $r2}" "$note"
fi
unset ADNN_TEST_OPS

else
  step_record 1 tests skipped 0 "[]" null "skipped: not in --steps $steps"
fi

# ================================================================ step 2: compute-sanitizer
if asked 2; then
s2=$SECONDS
if ((dry)) || ! command -v compute-sanitizer > /dev/null; then
  step_record 2 sanitizer skipped 0 "[]" null "skipped: no GPU$( ((dry)) || echo ' (compute-sanitizer not found)')"
else
  cmds=()
  res="{"
  st=ok
  first=1
  for spec in "memcheck:$family_ops:70" "synccheck:$family_ops:45" "racecheck:$shared_ops:45"; do
    IFS=: read -r tool ops want <<< "$spec"
    lg=$logs/2-sanitizer-$tool.log
    lim=$(limit "$want")
    ((first)) || res+=", "
    first=0
    if ((lim == 0)); then res+="\"$tool\": {\"status\": \"skipped\"}"; st=$(worst "$st" skipped); continue; fi
    extra=()
    [[ $tool == memcheck ]] && extra=(--leak-check no)
    cmds+=("ADNN_TEST_OPS=$ops compute-sanitizer --tool $tool ${extra[*]} --error-exitcode 3 adnn_tests --test-suite=cuda --test-case='$registry_cases'")
    ADNN_TEST_OPS=$ops run "$lim" "$lg" compute-sanitizer --tool "$tool" "${extra[@]}" --error-exitcode 3 \
      "$B/adnn_tests" --test-suite=cuda --test-case="$registry_cases"
    rc=$?
    errs=$(sed -n 's/.*ERROR SUMMARY: *\([0-9]*\).*/\1/p' "$lg" | tail -1)
    hazards=$(sed -n 's/.*RACECHECK SUMMARY: *\([0-9]*\) hazard.*/\1/p' "$lg" | tail -1)
    s=$(rc_status $rc)
    st=$(worst "$st" "$s")
    res+="\"$tool\": {\"status\": \"$s\", \"rc\": $rc, \"errors\": $(jnum "$errs"), \"hazards\": $(jnum "$hazards"), \"tests\": $(doctest_counts "$lg")}"
  done
  res+="}"
  step_record 2 sanitizer "$st" $((SECONDS - s2)) "$(jlist "${cmds[@]}")" "$res"
fi

else
  step_record 2 sanitizer skipped 0 "[]" null "skipped: not in --steps $steps"
fi

# ================================================================ step 3: kernels vs baselines
if asked 3; then
s3=$SECONDS
cmds=()
st=ok
note=""
bj_cudnn=null
bj_kernels=null
if ((dry)); then bmt=(--benchmark_min_time=0.01); else bmt=(--benchmark_min_time=0.05 --benchmark_repetitions=1); fi
# run_bench NAME SECONDS: one Google-benchmark binary with JSON out; sets bj (its JSON, or null)
run_bench() {
  local name=$1 lg=$logs/3-$1.log lim
  bj=null
  lim=$(limit "$2")
  ((lim > 0)) || return 0
  cmds+=("$name ${bmt[*]} --benchmark_out=$name.json --benchmark_out_format=json")
  run "$lim" "$lg" "$B/$name" "${bmt[@]}" --benchmark_out="$logs/$name.json" --benchmark_out_format=json
  st=$(worst "$st" "$(rc_status $?)")
  bj=$(jfile "$logs/$name.json")
  if grep -q 'no GPU' "$lg"; then note+="$name: skipped: no GPU; "; fi
}
if [[ -x "$B/bench_cudnn" ]]; then
  run_bench bench_cudnn "$cudnn_s"
  bj_cudnn=$bj
else
  note+="bench_cudnn: not built$( ((dry)) && echo ' (an emulated build has no cuDNN)'); "
fi
run_bench bench_kernels 50
bj_kernels=$bj
[[ "$bj_cudnn" == null && "$bj_kernels" == null ]] && ((dry)) && st=skipped
step_record 3 kernels "$st" $((SECONDS - s3)) "$(jlist "${cmds[@]}")" \
  "{\"bench_cudnn\": $bj_cudnn, \"bench_kernels\": $bj_kernels}" "${note%; }"

else
  step_record 3 kernels skipped 0 "[]" null "skipped: not in --steps $steps"
fi

# ================================================================ step 4: end to end
if asked 4; then
s4=$SECONDS
lg=$logs/4-e2e.log
cmds=()
st=ok
note=""
if ((dry)); then
  # tiny: the same commands with the nano model (the paper's B5 + 2048-wide encoder is far too
  # slow for the emulator); the twin at its --tiny size on the CPU, if torch is installed
  fer_model=adnn_fer_nano; tb=(--batch 2 --iters 1); ib=(--batch 1 --iters 1)
  twin=(--tiny --device cpu --iters 1 --threads 2)
  note="dry run: adnn_fer_nano on the emulated device; twin --tiny on the CPU"
else
  fer_model=adnn_fer_paper; tb=(--batch 32 --iters 8); ib=(--batch 1 --iters 30)
  twin=(--device cuda --batch 32 --iters 8 --latency-iters 30)
fi
ext() { sed -n "s/^$1: *\([0-9.eE+-]*\).*/\1/p" "$2" | tail -1; }
train_ips=null; infer_ms=null; infer_ips=null; train_mem=null
lim=$(limit 75)
if ((lim > 0)); then
  cmds+=("adnn-fer bench --model $fer_model --train --device cuda ${tb[*]}")
  run "$lim" "$lg.train" "$B/adnn-fer" bench --model "$fer_model" --train --device cuda "${tb[@]}"
  st=$(worst "$st" "$(rc_status $?)")
  train_ips=$(jnum "$(ext 'img\/s' "$lg.train")")
  train_mem=$(jnum "$(ext 'peak device memory MiB' "$lg.train")")
fi
# the same step in bf16 (#15's goal: against the twin's AMP bf16 below): autocast forward and
# loss, f32 master weights and AdamW state, as `adnn-fer train --precision bf16`
train_bf16_ips=null; train_bf16_mem=null
lim=$(limit 75)
if ((lim > 0)); then
  cmds+=("adnn-fer bench --model $fer_model --train --device cuda ${tb[*]} --precision bf16")
  run "$lim" "$lg.train-bf16" "$B/adnn-fer" bench --model "$fer_model" --train --device cuda "${tb[@]}" --precision bf16
  st=$(worst "$st" "$(rc_status $?)")
  train_bf16_ips=$(jnum "$(ext 'img\/s' "$lg.train-bf16")")
  train_bf16_mem=$(jnum "$(ext 'peak device memory MiB' "$lg.train-bf16")")
fi
twin_json=null
lim=$(limit 110)
if ((lim > 0)) && "$py" -c 'import torch' 2>/dev/null; then
  cmds+=("python3 bench/pytorch/adnn_fer_twin.py ${twin[*]}")
  # the machine's own libraries for PyTorch, not the kit's
  LD_LIBRARY_PATH=$orig_ld PYTHONUNBUFFERED=1 run "$lim" "$lg.twin" "$py" bench/pytorch/adnn_fer_twin.py "${twin[@]}" --json-out "$work/twin.json"
  st=$(worst "$st" "$(rc_status $?)")
  twin_json=$(jfile "$work/twin.json")
else
  note+="${note:+; }PyTorch twin skipped: $( ((lim > 0)) && echo 'python3 has no torch' || echo 'out of time budget')"
fi
# batch-1 latency last: the least of #15's and #16's questions
lim=$(limit 40)
if ((lim > 0)); then
  cmds+=("adnn-fer bench --model $fer_model --device cuda ${ib[*]}")
  run "$lim" "$lg.infer" "$B/adnn-fer" bench --model "$fer_model" --device cuda "${ib[@]}"
  st=$(worst "$st" "$(rc_status $?)")
  infer_ms=$(jnum "$(ext 'ms\/step (median)' "$lg.infer")")
  infer_ips=$(jnum "$(ext 'img\/s' "$lg.infer")")
fi
# the same batch-1 forward replayed as a CUDA graph (cuda::Graph: capture once, replay)
graph_ms=null
lim=$(limit 40)
if ((lim > 0)); then
  cmds+=("adnn-fer bench --model $fer_model --device cuda ${ib[*]} --graph")
  run "$lim" "$lg.graph" "$B/adnn-fer" bench --model "$fer_model" --device cuda "${ib[@]}" --graph
  st=$(worst "$st" "$(rc_status $?)")
  # "graph: N nodes; ms/step eager (median): E, graph replay (median): G, speed-up Sx"
  graph_ms=$(jnum "$(sed -n 's/^graph: .*graph replay (median): *\([0-9.]*\).*/\1/p' "$lg.graph" | tail -1)")
fi
step_record 4 e2e "$st" $((SECONDS - s4)) "$(jlist "${cmds[@]}")" \
  "{\"model\": $(jstr "$fer_model"), \"adnn_train_f32_img_s\": $train_ips, \"adnn_train_peak_MiB\": $train_mem, \"adnn_infer_b1_eager_ms\": $infer_ms, \"adnn_infer_b1_img_s\": $infer_ips, \"adnn_infer_b1_graph_ms\": $graph_ms, \"adnn_train_bf16_img_s\": $train_bf16_ips, \"adnn_train_bf16_peak_MiB\": $train_bf16_mem, \"torch_twin\": $twin_json}" \
  "$note"

else
  step_record 4 e2e skipped 0 "[]" null "skipped: not in --steps $steps"
fi

# ================================================================ step 5: nano training
if asked 5; then
s5=$SECONDS
lg=$logs/5-nano.log
if [[ -z "$data" || ! -d "$data/train" ]]; then
  step_record 5 nano skipped 0 "[]" null "skipped: no FER2013 data (run scripts/gpu-kit-build.sh, or --data DIR)"
else
  if ((dry)); then nano=(--epochs 1 --batch 16 --train-limit 80 --val-limit 8); else nano=(--epochs 6 --batch 64); fi
  lim=$(limit 120)
  if ((lim == 0)); then
    step_record 5 nano skipped 0 "[]" null "skipped: out of time budget"
  else
    rm -rf "$work/nano"
    cmd=("$B/adnn-fer" train --config adnn_fer_nano --data "$data" --device cuda --seed 1 --out "$work/nano" "${nano[@]}")
    run "$lim" "$lg" "${cmd[@]}"
    st=$(rc_status $?)
    csv=$work/nano/log.csv
    [[ -f "$csv" ]] && cp "$csv" "$logs/5-nano-log.csv"
    # epoch,step,lr,train_loss,train_acc,val_loss,val_acc,macro_f1,macro_auc,...
    first_loss=$(awk -F, 'NR==2 {print $4}' "$csv" 2>/dev/null)
    last_loss=$(awk -F, 'NR>1 {l=$4} END {print l}' "$csv" 2>/dev/null)
    last_acc=$(awk -F, 'NR>1 {a=$7} END {print a}' "$csv" 2>/dev/null)
    best_acc=$(awk -F, 'NR>1 && $7>b {b=$7} END {print b}' "$csv" 2>/dev/null)
    epochs=$(awk 'END {print NR-1}' "$csv" 2>/dev/null)
    # the majority-class prior of the val folder (the slice keeps its class proportions)
    prior=$(for c in "$data"/val/*/; do ls "$c" | wc -l; done | awk '{t+=$1; if ($1>m) m=$1} END {if (t) printf "%.4f", m/t}')
    ips=$(grep -o '[0-9.]* img/s' "$lg" | tail -1 | cut -d' ' -f1)
    checks=$(awk -v f="$first_loss" -v l="$last_loss" -v a="$best_acc" -v p="$prior" -v e="$epochs" 'BEGIN {
      lf = (e > 1 && f != "" && l != "" && l < f) ? "true" : "false";
      ab = (a != "" && p != "" && a > p) ? "true" : "false";
      printf "\"loss_fell\": %s, \"acc_above_prior\": %s", lf, ab }')
    note=""
    if ((dry)); then
      note="dry run: 1 epoch on 80 images (the fewest whose stratified slice holds a disgust face, which the label-smoothing prior needs); the checks are recorded, not required"
    elif [[ $st == ok && $checks != *'"loss_fell": true, "acc_above_prior": true'* ]]; then
      st=fail
      note="the nano run did not learn"
    fi
    step_record 5 nano "$st" $((SECONDS - s5)) "$(jlist "adnn-fer train --config adnn_fer_nano --data DATA --device cuda --seed 1 --out RUN ${nano[*]}")" \
      "{\"epochs\": $(jnum "$epochs"), \"train_loss_first\": $(jnum "$first_loss"), \"train_loss_last\": $(jnum "$last_loss"), \"val_acc_last\": $(jnum "$last_acc"), \"val_acc_best\": $(jnum "$best_acc"), \"prior\": $(jnum "$prior"), \"train_img_s\": $(jnum "$ips"), \"train_images\": $(find "$data/train" -type f | wc -l), \"val_images\": $(find "$data/val" -type f | wc -l), $checks}" \
      "$note"
  fi
fi

else
  step_record 5 nano skipped 0 "[]" null "skipped: not in --steps $steps"
fi

log "done in $((SECONDS - t_start)) s; summary $out/summary.json, logs $out/logs.tar.gz"
write_summary
rm -rf "$work"
# exit status: 0 when no step failed or timed out (skipped steps are fine)
if grep -q '"status": "\(fail\|timeout\)"' "$out/summary.json"; then exit 1; fi
exit 0
