r"""The paper's table, end to end: build real DeepFashion, convert ImageNet weights, train
every benchmark with its full-size config, evaluate, and write one table.

  python -m fashionnet_jax.reproduce --manual_dir /data/deepfashion \
      --imagenet /data/weights/vgg16-397923af.pth --workdir /data/runs [--dry-run]
  python -m fashionnet_jax.reproduce ... --benchmarks inshop,landmarks --platform tpu
  python -m fashionnet_jax.reproduce ... --imagenet xception_weights_tf_dim_ordering_tf_kernels_notop.h5 \
      --backbone xception --landmark_head heatmap --workdir /data/runs_xception_heatmap

It runs the project's own commands, one process each, and skips what is done:
  1. `tfds build datasets/deepfashion --config=B --manual_dir=... --data_dir=...`
     for each benchmark not yet prepared in --data_dir;
  2. `python -m fashionnet_jax.weights` once (RUNS/weights/<backbone>_imagenet.npz);
  3. `python -m fashionnet_jax.main --config=configs/<B>.py:<platform>` into RUNS/<B>:
     model selection on the validation split where the benchmark has one, then one
     test evaluation (an interrupted run resumes where it stopped when reproduce is
     run again). Category/attribute and landmarks start from the converted ImageNet
     weights; In-shop and consumer-to-shop start from the category/attribute run
     (its selected step), which is trained first when they are asked for. The
     paper's retrieval numbers (0.764, 0.188) come from the one FashionNet that also
     learnt the 1000 attributes, and its annotation study shows retrieval rising with
     the attributes learnt: a retrieval run from ImageNet alone would sit beside them
     trained another way;
  4. RUNS/results.md: each benchmark's test numbers beside FashionNet's (Tables 2-5).
--backbone and --landmark_head train another FashionNet than the paper's (VGG-16,
regressed landmarks) through the same configs (`--config.model.backbone=...`,
`--config.model.landmark_head=...`); give each model its own --workdir: runs already
in a workdir are reused whatever model they hold, and results.md names the model.
--dry-run prints every command it would run, and runs none.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

from fashionnet_jax import console  # first: quiet before TensorFlow loads
from fashionnet_jax.cli import Parser, UsageError, add_verbose_argument
from fashionnet_jax.errors import PREEMPTED_EXIT, exit_on_user_error
from fashionnet_jax.schema import BACKBONES, LANDMARK_HEADS

# Benchmark (builder config) -> its config file (configs/<file>.py:<platform>).
CONFIGS = {
    "category_attribute": "default",
    "inshop": "inshop",
    "consumer2shop": "consumer2shop",
    "landmarks": "fld",
}
# Benchmark -> the run it fine-tunes from (the others start from the ImageNet weights).
STARTS_FROM = {"inshop": "category_attribute", "consumer2shop": "category_attribute"}
RESULTS_FILE = "results.md"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_parser() -> argparse.ArgumentParser:
  parser = Parser(
      prog="python -m fashionnet_jax.reproduce",
      description="Reproduce the paper's table on real DeepFashion.",
  )
  parser.add_argument(
      "--manual_dir", required=True, help="folder holding the released benchmark folders (README)"
  )
  parser.add_argument(
      "--imagenet",
      required=True,
      help="downloaded ImageNet weights of --backbone (vgg16-397923af.pth or Keras' .h5; "
      "resnet50-*.pth; xception_weights_tf_dim_ordering_tf_kernels_notop.h5)",
  )
  parser.add_argument(
      "--backbone",
      choices=BACKBONES,
      default="vgg16",
      help="FashionNet's backbone (default vgg16, the paper's)",
  )
  parser.add_argument(
      "--landmark_head",
      "--landmark-head",
      dest="landmark_head",
      choices=LANDMARK_HEADS,
      default="regression",
      help="regressed landmarks (default, the paper's) or heatmaps (models/heatmap.py)",
  )
  parser.add_argument("--workdir", required=True, help="where runs, weights and results.md go")
  parser.add_argument(
      "--data_dir",
      default=None,
      help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)",
  )
  parser.add_argument(
      "--benchmarks",
      default=",".join(CONFIGS),
      help="comma-separated subset of " + ",".join(CONFIGS),
  )
  parser.add_argument(
      "--platform",
      choices=("gpu", "tpu"),
      default="gpu",
      help="full-size config variant (configs/full_size.py)",
  )
  parser.add_argument(
      "--dry-run",
      "--dry_run",
      dest="dry_run",
      action="store_true",
      help="print the commands, run nothing",
  )
  add_verbose_argument(parser)  # the runs inherit it (FASHIONNET_VERBOSE)
  return parser


def _data_dir(args) -> str:
  return (
      args.data_dir
      or os.environ.get("TFDS_DATA_DIR")
      or os.path.expanduser("~/tensorflow_datasets")
  )


def _prepared(data_dir: str, benchmark: str) -> bool:
  root = os.path.join(data_dir, "deepfashion", benchmark)
  return os.path.isdir(root) and any(
      os.path.exists(os.path.join(root, v, "dataset_info.json")) for v in os.listdir(root)
  )


def final_metrics(run_dir: str) -> dict | None:
  """The run's final test evaluation (eval/<step>.json of the selected or last step)."""
  folder = os.path.join(run_dir, "eval")
  if not os.path.isdir(folder):
    return None
  steps = sorted(
      int(f[:-5]) for f in os.listdir(folder) if f.endswith(".json") and f[:-5].isdigit()
  )
  records = []
  for s in steps:
    with open(os.path.join(folder, f"{s}.json")) as f:
      records.append(json.load(f))
  chosen = [r for r in records if "selected_step" in r]
  final = chosen[-1] if chosen else (records[-1] if records and records[-1]["step"] > 0 else None)
  return final


def _requested(args) -> list[str]:
  benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
  unknown = sorted(set(benchmarks) - set(CONFIGS))
  if unknown or not benchmarks:
    raise UsageError(f"--benchmarks: unknown {unknown}; choose from {','.join(CONFIGS)}")
  return benchmarks


def _to_train(benchmarks, workdir) -> list[str]:
  """The runs to train, in order: a retrieval benchmark's source run comes first."""
  order = []
  for b in benchmarks:
    source = STARTS_FROM.get(b)
    if source and final_metrics(os.path.join(workdir, b)) is None and source not in order:
      order.append(source)
    if b not in order:
      order.append(b)
  return [b for b in order if final_metrics(os.path.join(workdir, b)) is None]


def plan(args) -> list[tuple[str, list[str]]]:
  """(what, argv) for every command still to run, in order."""
  data_dir = _data_dir(args)
  weights = os.path.join(args.workdir, "weights", f"{args.backbone}_imagenet.npz")
  train = _to_train(_requested(args), args.workdir)
  steps = []
  for b in train:
    if not _prepared(data_dir, b):
      steps.append(
          (
              f"build {b}",
              [
                  "tfds",
                  "build",
                  os.path.join(ROOT, "datasets", "deepfashion"),
                  f"--config={b}",
                  f"--manual_dir={args.manual_dir}",
                  f"--data_dir={data_dir}",
                  "--file_format=array_record",
              ],
          )
      )
  if not os.path.exists(weights) and any(b not in STARTS_FROM for b in train):
    steps.append(
        (
            "convert ImageNet weights",
            [
                sys.executable,
                "-m",
                "fashionnet_jax.weights",
                f"--source={args.imagenet}",
                f"--out={os.path.dirname(weights)}",
                f"--backbone={args.backbone}",
            ],
        )
    )
  for b in train:
    source = STARTS_FROM.get(b)
    init_from = os.path.join(args.workdir, source) if source else weights
    what = f"train and evaluate {b}" + (
        f" from the {source} run (the paper's retrieval network also learnt the attributes)"
        if source
        else " from the ImageNet weights"
    )
    steps.append(
        (
            what,
            [
                sys.executable,
                "-m",
                "fashionnet_jax.main",
                f"--config={os.path.join(ROOT, 'configs', CONFIGS[b] + '.py')}:{args.platform}",
                f"--workdir={os.path.join(args.workdir, b)}",
                f"--config.init_from={init_from}",
                f"--config.dataset.data_dir={data_dir}",
            ]
            + model_overrides(args),
        )
    )
  return steps


def model_overrides(args) -> list[str]:
  """The config flags that make another FashionNet than the paper's (none for the paper's)."""
  flags = []
  if args.backbone != "vgg16":
    flags.append(f"--config.model.backbone={args.backbone}")
  if args.landmark_head != "regression":
    flags.append(f"--config.model.landmark_head={args.landmark_head}")
  return flags


def model_name(args) -> str:
  head = "regressed landmarks" if args.landmark_head == "regression" else "heatmap landmarks"
  return f"FashionNet on {args.backbone}, {head}"


def write_results(args) -> str:
  from fashionnet_jax.evaluation import report

  benchmarks = _requested(args)
  results = {b: final_metrics(os.path.join(args.workdir, b)) for b in benchmarks}
  path = os.path.join(args.workdir, RESULTS_FILE)
  text = (
      f"# {model_name(args)} (test splits; model selected on validation where the "
      "benchmark has one)\n\n" + report.reproduction_table(results)
  )
  os.makedirs(args.workdir, exist_ok=True)
  with open(path, "w") as f:
    f.write(text)
  return path


def run(argv=None, stdout=None, stderr=None) -> int:
  stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
  parser = build_parser()
  args = parser.parse_args(argv)
  console.set_verbose(args.verbose)
  try:
    if not args.dry_run:
      for given, what in ((args.manual_dir, "--manual_dir"), (args.imagenet, "--imagenet")):
        if not os.path.exists(given):
          raise UsageError(f"{what} {given}: no such file or folder")
    steps = plan(args)
  except UsageError as e:
    print(f"{parser.prog}: error: {e}", file=stderr)
    return 2
  for what, argv_ in steps:
    print(f"# {what}\n{shlex.join(argv_)}", file=stdout, flush=True)
    if args.dry_run:
      continue
    status = subprocess.call(argv_, cwd=ROOT)
    if status == PREEMPTED_EXIT:  # a checkpoint was saved: the same command resumes
      print(f"{parser.prog}: {what} was preempted; rerun to resume", file=stderr)
      return PREEMPTED_EXIT
    if status:
      print(
          f"{parser.prog}: error: {what} failed (exit status {status}); rerun to resume",
          file=stderr,
      )
      return 1
  if args.dry_run:
    print(f"# then write {os.path.join(args.workdir, RESULTS_FILE)}", file=stdout)
    return 0
  print(f"results: {write_results(args)}", file=stdout)
  return 0


@exit_on_user_error
def main():
  sys.exit(run())


if __name__ == "__main__":
  main()
