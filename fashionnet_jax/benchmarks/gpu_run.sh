#!/usr/bin/env bash
# The train-step benchmark on one lent H100, in one call of at most 8 minutes.
#
# Run from the repository root on the device machine, carrying `.whl`, `.bench_data`
# and, optionally, `.bench_ref` (all ignored by git):
#
#   bash fashionnet_jax/benchmarks/gpu_run.sh        # writes $OUT/{results.jsonl,run.log,torch.json}
#
# The PyTorch reference is the project's own (benchmarks/torch_reference.py). To
# measure earlier versions beside the working tree on the same card, put their code
# in .bench_ref/NAME first: mkdir -p .bench_ref/v1 && git archive COMMIT fashionnet_jax
# configs | tar -x -C .bench_ref/v1
#
# It installs nothing from the network. The wheels in .whl/ (12 MB: what the
# device image lacks or holds at another version) were fetched here with
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux1_x86_64 -d .whl \
#     grain==0.2.18 tensorflow-datasets==4.9.10 clu==0.0.12 ml_collections==1.1.0 \
#     array-record==0.8.6 portpicker==1.6.0 dm-tree==0.1.10 immutabledict==4.3.1 \
#     simple-parsing==0.1.9 docstring-parser==0.18.0 tensorflow-metadata==1.21.0 \
#     googleapis-common-protos==1.76.0 termcolor==3.3.0 toml==0.10.2 \
#     importlib-resources==7.1.0 protobuf==6.33.6 flax==0.12.8
#   python3 -m pip wheel --no-deps --no-build-isolation promise==2.3 -w .whl   # sdist only
#
# (protobuf: grain's and tfds's generated code want protobuf 6; flax: the version
# the tests ran with, dropped again below if it does not import on the device's jax.)
# .bench_data/deepfashion is synthetic DeepFashion `category_attribute` (1,200
# images) built here with the TFDS builder (the device has no TensorFlow to build
# it): python -m fashionnet_jax.benchmarks.train_step --input=pipeline
# --data_dir=/tmp/fashionnet_bench_tfds, then cp -r /tmp/fashionnet_bench_tfds/deepfashion .bench_data/.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
set -x
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
OUT=${OUT:-/tmp/fashionnet_bench_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
BUDGET=${BUDGET:-460}  # seconds for the whole script, under the call's 8 minutes

python3 -c "from flax import nnx; nnx.List" || rm -rf /tmp/site/flax /tmp/site/flax-*
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
python3 -c "import jax, jaxlib, flax, torch; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax', flax.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda); print(jax.devices())"

# Runs "$@" under `timeout LIMIT` if LIMIT seconds are left of the budget.
run_within() {
  local limit=$1; shift
  if (( SECONDS + limit > BUDGET )); then
    echo "SKIPPED (budget): $*"; return 0
  fi
  timeout "$limit" "$@"
  echo "exit $? after ${SECONDS}s: $*"
}

bench_in() {  # directory, label, timeout, then benchmark flags: that checkout's benchmark
  local dir=$1 label=$2 limit=$3; shift 3
  (cd "$dir" && run_within "$limit" python3 -m fashionnet_jax.benchmarks.train_step \
      --config=configs/gpu.py --label="$label" --steps=20 --warmup=3 "$@") | tee "/tmp/$label.out"
  grep '^{"label"' "/tmp/$label.out" >> "$OUT/results.jsonl"
}
bench() { bench_in . "$@"; }

# 1. Ours (the working tree) at batch 128, device-resident: the headline figure.
bench b128 150 --batch=128
# 2. The PyTorch reference in the same run: bf16 matmul peak, eager, torch.compile.
run_within 170 python3 -m fashionnet_jax.benchmarks.torch_reference --batch 128 --steps 20 \
    --which peak,torch,torch_compile --out "$OUT/torch.json"
# 3. Earlier versions side by side on this card (.bench_ref/NAME, see the header),
#    oldest first; each row's label is ref_NAME.
for ref in .bench_ref/*/; do
  [[ -d $ref ]] || continue
  name=$(basename "$ref")
  PYTHONPATH=/tmp/site:$PWD/$ref bench_in "$ref" "ref_$name" 90 --batch=128 --matmul_size=-1 --pooling_iters=3
done
# 4. The real grain pipeline (configs/gpu.py's workers) against device-resident data, batch 128.
bench b128_pipeline 130 --batch=128 --input=pipeline --data_dir="$PWD/.bench_data" --matmul_size=-1
# 5. Batch 256.
bench b256 100 --batch=256 --matmul_size=-1
cat "$OUT/results.jsonl"
