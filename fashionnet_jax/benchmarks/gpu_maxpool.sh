#!/usr/bin/env bash
# Third H100 call: VGG max pooling as reshape + max (v1) at b128, with torch eager as a
# same-card check against the first call's 2,684 images/s.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
rm -rf /tmp/site/flax /tmp/site/flax-*
set -x
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
OUT=${OUT:-/tmp/fashionnet_bench_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
timeout 60 python3 -m fashionnet_jax.benchmarks.train_step --config=configs/gpu.py --label=v1_b128 \
    --steps=20 --warmup=3 --batch=128 | tee /tmp/v1.out
tail -n 1 /tmp/v1.out >> "$OUT/results.jsonl"
timeout 40 python3 benchmarks_ext/torch_fashionnet_reference.py --batch 128 --steps 20 --which torch --out "$OUT/torch.json"
timeout 50 python3 -m fashionnet_jax.benchmarks.train_step --config=configs/gpu.py --label=v1_b256 \
    --steps=20 --warmup=3 --batch=256 --matmul_size=-1 | tee /tmp/v1b256.out
tail -n 1 /tmp/v1b256.out >> "$OUT/results.jsonl"
