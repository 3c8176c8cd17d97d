r"""Where a profiled train step spends its device time, by kernel and by kind.

  python -m fashionnet_jax.benchmarks.train_step --config=configs/gpu.py --profile_dir=/tmp/prof
  python -m fashionnet_jax.benchmarks.profile_summary /tmp/prof [--top 25]

Reads the jax.profiler trace (XSpace) with `jax.profiler.ProfileData`, sums the
device plane's kernel durations by name and by kind (convolution, matmul,
elementwise fusion, reduction, gather/scatter, copy) and prints the shares; the
last line is one JSON object.
"""
from __future__ import annotations

import collections
import json
import pathlib
import re

from absl import app, flags

KINDS = (  # first match wins
    ("convolution", re.compile(r"conv|cudnn|xmma_fprop|xmma_dgrad|xmma_wgrad|implicit_gemm|fprop|dgrad|wgrad", re.I)),
    ("matmul", re.compile(r"gemm|cutlass|cublas|matmul|dot|nvjet|sm90_xmma", re.I)),
    ("gather/scatter", re.compile(r"gather|scatter|dynamic.slice|dynamic.update", re.I)),
    ("reduction", re.compile(r"reduce|reduction", re.I)),
    ("copy/transpose", re.compile(r"copy|transpose|memcpy|memset", re.I)),
    ("elementwise fusion", re.compile(r"fusion|loop|input_", re.I)),
)


def kind_of(name: str) -> str:
  for kind, pattern in KINDS:
    if pattern.search(name):
      return kind
  return "other"


def summarise(profile_dir: str, top: int = 25, steps: int = 1) -> dict:
  from jax.profiler import ProfileData
  files = sorted(pathlib.Path(profile_dir).rglob("*.xplane.pb"))
  if not files:
    raise FileNotFoundError(f"{profile_dir}: no *.xplane.pb trace")
  data = ProfileData.from_file(str(files[-1]))
  planes = [p for p in data.planes if "/device:GPU" in p.name or "/device:TPU" in p.name]
  if not planes:
    raise ValueError(f"{files[-1]}: no GPU/TPU device plane (CPU traces have no kernels)")
  by_name, by_kind = collections.Counter(), collections.Counter()
  for line in planes[0].lines:
    if "Stream" not in line.name and "stream" not in line.name:
      continue
    for event in line.events:
      ns = event.duration_ns
      by_name[event.name] += ns
      by_kind[kind_of(event.name)] += ns
  total = sum(by_kind.values()) or 1
  result = {
      "plane": planes[0].name, "kernel_ms_per_step": total / 1e6 / steps,
      "by_kind": {k: round(v / total, 4) for k, v in by_kind.most_common()},
      "top": [{"name": n[:120], "ms_per_step": round(v / 1e6 / steps, 3),
               "share": round(v / total, 4), "kind": kind_of(n)}
              for n, v in by_name.most_common(top)],
  }
  return result


def main(argv):
  FLAGS = flags.FLAGS
  if len(argv) != 2:
    raise app.UsageError("usage: profile_summary PROFILE_DIR")
  result = summarise(argv[1], FLAGS.top, FLAGS.steps)
  print(f"{result['plane']}: {result['kernel_ms_per_step']:.2f} ms of kernels per step")
  for kind, share in result["by_kind"].items():
    print(f"  {kind:20s} {share:6.1%}")
  for row in result["top"]:
    print(f"  {row['ms_per_step']:8.3f} ms {row['share']:6.1%} {row['kind']:18s} {row['name']}")
  print(json.dumps(result))


if __name__ == "__main__":
  flags.DEFINE_integer("top", 25, "How many kernels to list.")
  flags.DEFINE_integer("steps", 1, "Steps in the trace (durations are divided by it).")
  app.run(main)
