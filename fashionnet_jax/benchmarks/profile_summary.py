r"""Where a profiled train step spends its device time: by kernel, by kind, and per HLO op.

  python -m fashionnet_jax.benchmarks.train_step --config=configs/gpu.py --profile_dir=/tmp/prof
  python -m fashionnet_jax.benchmarks.profile_summary /tmp/prof --steps 5 [--top 25]

Reads the jax.profiler trace (XSpace) with `jax.profiler.ProfileData`, sums the
device plane's kernel durations by name and by kind (convolution, matmul,
elementwise fusion, reduction, gather/scatter, copy) and prints the shares.
When the profile directory holds the step's optimised HLO (`step.hlo`, written
by train_step --profile_dir; or --hlo FILE), the kernels are also joined to the
HLO instructions that launched them (the trace's `hlo_op`) and each op gets its
achieved rate: TFLOP/s for cuDNN convolutions, GB/s for memory-bound kernels
(bytes from benchmarks/hlo_census.py), against --peak_tflops and --bandwidth_gbs.
The last line is one JSON object.
"""

from __future__ import annotations

import collections
import json
import pathlib
import re

from absl import app, flags

KINDS = (  # first match wins; 'conv' must not match 'convert'
    (
        "convolution",
        re.compile(
            r"conv(?!ert)|cudnn|xmma_fprop|xmma_dgrad|xmma_wgrad|implicit_gemm|fprop|dgrad|wgrad",
            re.I,
        ),
    ),
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


def read_trace(profile_dir: str, device: str = "gpu"):
  """(kernel ns by name, kernel ns by hlo_op, plane name) of the last trace in profile_dir.

  device 'gpu' (or 'tpu') reads the device plane's stream lines; 'cpu' reads the
  host's XLA thunks, which carry the same `hlo_op` stat (for tests on CPU).
  """
  from jax.profiler import ProfileData

  files = sorted(pathlib.Path(profile_dir).rglob("*.xplane.pb"))
  if not files:
    raise FileNotFoundError(f"{profile_dir}: no *.xplane.pb trace")
  data = ProfileData.from_file(str(files[-1]))
  if device == "cpu":
    planes = [p for p in data.planes if p.name == "/host:CPU"]
  else:
    planes = [p for p in data.planes if "/device:GPU" in p.name or "/device:TPU" in p.name]
  if not planes:
    raise ValueError(f"{files[-1]}: no {device.upper()} plane with kernels")
  by_name, by_op = collections.Counter(), collections.Counter()
  for line in planes[0].lines:
    if device != "cpu" and "stream" not in line.name.lower():
      continue
    for event in line.events:
      stats = dict(event.stats)
      if device == "cpu" and "hlo_op" not in stats:
        continue  # host events that are not XLA kernels
      by_name[event.name] += event.duration_ns
      if "hlo_op" in stats:
        by_op[str(stats["hlo_op"])] += event.duration_ns
  return by_name, by_op, planes[0].name


def join_hlo(op_ns, hlo_text: str, steps: int, peak_tflops: float, bandwidth_gbs: float) -> dict:
  """Per HLO op: time per step and achieved rate; per kind: time and achieved rate."""
  from fashionnet_jax.benchmarks import hlo_census

  ops = {op.name: op for op in hlo_census.census(hlo_text)}
  rows, by_kind = [], collections.defaultdict(lambda: dict(ms=0.0, flops=0.0, bytes=0.0))
  unmatched = 0.0
  for name, ns in op_ns.items():
    op = ops.get(name)
    ms = ns / 1e6 / steps
    if op is None:
      unmatched += ms
      continue
    row = dict(
        op=name,
        kind=op.kind,
        detail=op.detail[:40],
        ms=round(ms, 4),
        shape=op.shape[:60],
        op_name=op.op_name[-60:],
    )
    if op.flops:
      row["gflop"] = round(op.flops / 1e9, 6)
      row["tflops"] = round(op.flops / (ms / 1e3) / 1e12, 3)
      row["of_peak"] = round(row["tflops"] / peak_tflops, 3)
    elif op.kind not in ("convolution", "matmul"):
      row["gbs"] = round(op.bytes / (ms / 1e3) / 1e9, 2)
      row["of_peak"] = round(row["gbs"] / bandwidth_gbs, 3)
    rows.append(row)
    agg = by_kind[op.kind]
    agg["ms"] += ms
    agg["flops"] += op.flops
    agg["bytes"] += op.bytes
  kinds = {}
  for kind, agg in sorted(by_kind.items(), key=lambda kv: -kv[1]["ms"]):
    entry = dict(ms=round(agg["ms"], 3))
    if agg["flops"]:
      entry["tflops"] = round(agg["flops"] / (agg["ms"] / 1e3) / 1e12, 3)
    if kind not in ("convolution", "matmul") and agg["ms"]:
      entry["gbs"] = round(agg["bytes"] / (agg["ms"] / 1e3) / 1e9, 2)
    kinds[kind] = entry
  rows.sort(key=lambda r: -r["ms"])
  return dict(ops=rows, kinds=kinds, unmatched_ms=round(unmatched, 3))


def summarise(
    profile_dir: str,
    top: int = 25,
    steps: int = 1,
    hlo: str | None = None,
    device: str = "gpu",
    peak_tflops: float = 799.0,
    bandwidth_gbs: float = 3352.0,
) -> dict:
  by_name, by_op, plane = read_trace(profile_dir, device)
  by_kind = collections.Counter()
  for name, ns in by_name.items():
    by_kind[kind_of(name)] += ns
  total = sum(by_kind.values()) or 1
  result = {
      "plane": plane,
      "kernel_ms_per_step": total / 1e6 / steps,
      "by_kind": {k: round(v / total, 4) for k, v in by_kind.most_common()},
      "top": [
          {
              "name": n[:120],
              "ms_per_step": round(v / 1e6 / steps, 3),
              "share": round(v / total, 4),
              "kind": kind_of(n),
          }
          for n, v in by_name.most_common(top)
      ],
  }
  hlo_path = pathlib.Path(hlo) if hlo else pathlib.Path(profile_dir) / "step.hlo"
  if hlo_path.is_file():
    joined = join_hlo(by_op, hlo_path.read_text(), steps, peak_tflops, bandwidth_gbs)
    result["hlo"] = dict(joined, ops=joined["ops"][:top])
  return result


def _print(result):
  print(f"{result['plane']}: {result['kernel_ms_per_step']:.2f} ms of kernels per step")
  for kind, share in result["by_kind"].items():
    print(f"  {kind:20s} {share:6.1%}")
  for row in result["top"]:
    print(f"  {row['ms_per_step']:8.3f} ms {row['share']:6.1%} {row['kind']:18s} {row['name']}")
  if "hlo" in result:
    joined = result["hlo"]
    print("per HLO op kind (time per step; achieved rate):")
    for kind, entry in joined["kinds"].items():
      rate = (
          f"{entry['tflops']:.0f} TFLOP/s"
          if "tflops" in entry
          else f"{entry['gbs']:.0f} GB/s"
          if "gbs" in entry
          else ""
      )
      print(f"  {kind:16s} {entry['ms']:8.3f} ms  {rate}")
    print(f"  (kernels with no HLO op in the dump: {joined['unmatched_ms']:.3f} ms)")
    for row in joined["ops"]:
      rate = (
          f"{row['tflops']:7.1f} TFLOP/s"
          if "tflops" in row
          else f"{row['gbs']:7.0f} GB/s"
          if "gbs" in row
          else " " * 14
      )
      share = f"{row['of_peak']:5.0%}" if "of_peak" in row else "     "
      print(
          f"  {row['ms']:8.3f} ms {rate} {share} {row['kind']:12s} {row['detail']:24s} "
          f"{row['op']} {row['shape']}"
      )


def main(argv):
  FLAGS = flags.FLAGS
  if len(argv) != 2:
    raise app.UsageError("usage: profile_summary PROFILE_DIR")
  result = summarise(
      argv[1],
      FLAGS.top,
      FLAGS.steps,
      FLAGS.hlo,
      FLAGS.device,
      FLAGS.peak_tflops,
      FLAGS.bandwidth_gbs,
  )
  _print(result)
  print(json.dumps(result))


if __name__ == "__main__":
  flags.DEFINE_integer("top", 25, "How many kernels (and HLO ops) to list.")
  flags.DEFINE_integer("steps", 1, "Steps in the trace (durations are divided by it).")
  flags.DEFINE_string("hlo", None, "Optimised HLO text of the step (default PROFILE_DIR/step.hlo).")
  flags.DEFINE_enum("device", "gpu", ["gpu", "tpu", "cpu"], "Which plane holds the kernels.")
  flags.DEFINE_float(
      "peak_tflops", 799.0, "Matmul peak for the achieved share (H100: 799 measured)."
  )
  flags.DEFINE_float("bandwidth_gbs", 3352.0, "Memory bandwidth for the achieved share (H100 SXM).")
  app.run(main)
