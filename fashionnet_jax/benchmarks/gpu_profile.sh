#!/usr/bin/env bash
# A kernel profile of the b128 step joined to its optimised HLO, and a few
# single-lever variants (each predicted in NOTES.md before the run).
#
#   bash fashionnet_jax/benchmarks/gpu_profile.sh   # carry .whl; writes $OUT/{profile.txt,profile.json,step.hlo,results.jsonl,run.log}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
rm -rf /tmp/site/flax /tmp/site/flax-*  # the device's flax matches its jax (gpu_run.sh found 0.12.8 does not)
set -x
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
OUT=${OUT:-/tmp/fashionnet_bench_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
BUDGET=${BUDGET:-230}

run_within() {
  local limit=$1; shift
  if (( SECONDS + limit > BUDGET )); then echo "SKIPPED (budget): $*"; return 0; fi
  timeout "$limit" "$@"
  echo "exit $? after ${SECONDS}s: $*"
}
bench() {  # label, timeout, then benchmark flags
  local label=$1 limit=$2; shift 2
  run_within "$limit" python3 -m fashionnet_jax.benchmarks.train_step --config=configs/gpu.py \
      --label="$label" --steps=20 --warmup=3 --matmul_size=-1 "$@" | tee "/tmp/$label.out"
  grep '^{"label"' "/tmp/$label.out" >> "$OUT/results.jsonl"
}

# 1. The working tree at b128 with a 5-step kernel trace; train_step writes the
#    step's optimised HLO beside it (step.hlo) and profile_summary joins each kernel
#    to its HLO op: achieved TFLOP/s per convolution, GB/s per memory-bound kernel.
bench b128_profile 80 --batch=128 --profile_dir=/tmp/prof
python3 -m fashionnet_jax.benchmarks.profile_summary /tmp/prof --steps 5 --top 60 | tee "$OUT/profile.txt"
tail -n 1 "$OUT/profile.txt" > "$OUT/profile.json"
cp /tmp/prof/step.hlo "$OUT/step.hlo"
# 2. No dropout (the torch reference has none).
bench b128_no_dropout 45 --batch=128 --config.model.dropout_rate=0.0
# 3. CUDA graphs (command buffers) off: what ~450 kernel launches cost.
bench b128_no_command_buffer 45 --batch=128 --config.xla_flags=--xla_gpu_enable_command_buffer=
cat "$OUT/results.jsonl"
