r"""The two-minute tour: synthetic DeepFashion → TFDS → train → evaluate → table.

  python -m fashionnet_jax.demo                       # category, attributes, landmarks
  python -m fashionnet_jax.demo --config=configs/inshop.py   # retrieval (In-shop)
  python -m fashionnet_jax.demo --record=docs/demo_numbers.json --workdir=/tmp/fresh_demo

On a fresh machine this writes synthetic DeepFashion, builds it with the TFDS
builder, trains the config (a small FashionNet, a few minutes on 2 CPU cores),
evaluates it with the paper's protocols and prints the untrained and trained
numbers side by side: the README's table. Each phase says what it does and how
long it took.

--record measures the numbers the README shows: it runs the demo in a fresh
--workdir and writes them to the record file (docs/demo_numbers.json) under the
config's name, with the commit, the machine and the `fingerprint` of what they
depend on (the resolved config without paths, the synthetic generator's output
for a small sample at the config's seed, the step count). tests/test_first_minutes.py
recomputes the fingerprint and checks the README's table against the record, so
a change to the demo's config, data or schedule fails until the numbers are
re-measured.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from fashionnet_jax import console  # first: quiet before TensorFlow loads
from fashionnet_jax.cli import VERBOSE_FLAG_HELP, UsageError, config_flag, parse_absl_flags
from fashionnet_jax.errors import PREEMPTED_EXIT, exit_on_user_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORD_FILE = "docs/demo_numbers.json"
# Images per benchmark of the generator sample in the fingerprint (~0.2 s to write).
FINGERPRINT_IMAGES = 16

# (metric key, label, higher is better)
ROWS = (
    ("category_top1", "category top-1 (chance {chance})", True),
    ("category_top3", "category top-3", True),
    ("category_top5", "category top-5", True),
    ("attribute_top5_recall", "attribute top-5 recall", True),
    ("landmark_ne", "landmark NE (lower is better)", False),
    ("retrieval_top1", "retrieval top-1", True),
    ("retrieval_top20", "retrieval top-20", True),
)


def _number(value) -> str:
  return "n/a" if value is None else f"{float(value):.3f}"


def table(untrained: dict, trained: dict, num_categories: int = 50) -> str:
  """The demo's table (what it prints and the README shows): one row per metric it has."""
  split = trained.get("split")
  where = "query vs gallery" if split == "query" else f"{split} split"
  lines = [f"| metric (synthetic {where}) | untrained | trained |", "|---|---|---|"]
  for key, label, _ in ROWS:
    if trained.get(key) is not None:
      label = label.format(chance=f"{1.0 / num_categories:.2f}")
      lines.append(f"| {label} | {_number(untrained.get(key))} | {_number(trained[key])} |")
  return "\n".join(lines)


def readme_table(entry: dict) -> str:
  """The table of a record entry (`record`): what the README shows for that config."""
  return table(
      entry["untrained"], dict(entry["trained"], split=entry["split"]), entry["num_categories"]
  )


def caption(entry: dict) -> str:
  """The line under the README's table: where and when the numbers were measured."""
  return (
      f"Measured by `python -m fashionnet_jax.demo --record` at commit {entry['commit']} "
      f"on {entry['machine']} ({entry['date']}; {entry['steps']} steps; "
      f"{entry['train_eval_s']:.0f} s of training and evaluation, {entry['total_s']:.0f} s "
      "in all)."
  )


def _without_paths(tree):
  """A config dict without the fields that name places (`*_dir`): they change no number."""
  if isinstance(tree, dict):
    return {k: _without_paths(v) for k, v in tree.items() if not str(k).endswith("_dir")}
  return tree


def fingerprint(config) -> str:
  """sha256 of what the demo's numbers depend on: the resolved config as JSON without
  paths, the step count, and the synthetic generator's files (annotations and images)
  for FINGERPRINT_IMAGES images at the config's seed."""
  from fashionnet_jax import synthetic
  from fashionnet_jax.data.prepare import dataset_builder_config
  from fashionnet_jax.training.schedule import Schedule

  digest = hashlib.sha256()
  digest.update(json.dumps(_without_paths(config.to_dict()), sort_keys=True, default=repr).encode())
  digest.update(f"steps={Schedule(config.stages, config.num_rounds).total_steps}".encode())
  with tempfile.TemporaryDirectory() as tmp:
    synthetic.generate(
        tmp,
        images=FINGERPRINT_IMAGES,
        seed=int(config.seed),
        benchmarks=[dataset_builder_config(config)],
    )
    for folder, _, files in sorted(os.walk(tmp)):
      for name in sorted(files):
        path = os.path.join(folder, name)
        digest.update(os.path.relpath(path, tmp).encode())
        with open(path, "rb") as f:
          digest.update(f.read())
  return digest.hexdigest()


def machine() -> str:
  """'2 CPU cores (x86_64, Linux), jax cpu'."""
  import jax

  return (
      f"{os.cpu_count()} CPU cores ({platform.machine()}, {platform.system()}), "
      f"jax {jax.default_backend()}"
  )


def commit() -> str:
  """The checkout's commit (short), '+changes' when the tree differs from it."""

  def git(*args):
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()

  try:
    head = git("rev-parse", "--short=12", "HEAD")
    changed = git(
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "fashionnet_jax",
        "configs",
        "datasets",
    )
  except (OSError, subprocess.CalledProcessError):
    return "unknown (not a git checkout)"
  return head + ("+changes" if changed else "")


def config_name(flag) -> str:
  """The --config file as the record names it: relative to the repository when inside it."""
  from ml_collections import config_flags

  path = os.path.abspath(config_flags.get_config_filename(flag).split(":")[0])
  return os.path.relpath(path, ROOT) if path.startswith(ROOT + os.sep) else path


def record(
    path: str,
    name: str,
    config,
    untrained: dict,
    trained: dict,
    train_eval_s: float,
    total_s: float,
) -> dict:
  """Writes the demo's numbers for config `name` into the record file; returns its entry."""
  from fashionnet_jax.training.schedule import Schedule

  data = {}
  if os.path.exists(path):
    with open(path) as f:
      data = json.load(f)
  keys = [key for key, _, _ in ROWS if trained.get(key) is not None]
  entry = {
      "fingerprint": fingerprint(config),
      "commit": commit(),
      "machine": machine(),
      "date": datetime.date.today().isoformat(),
      "steps": Schedule(config.stages, config.num_rounds).total_steps,
      "train_eval_s": round(train_eval_s, 1),
      "total_s": round(total_s, 1),
      "split": trained.get("split"),
      "num_categories": int(config.model.num_categories),
      "untrained": {k: untrained.get(k) for k in keys},
      "trained": {k: trained[k] for k in keys},
  }
  data.setdefault("demos", {})[name] = entry
  with open(path, "w") as f:
    f.write(json.dumps(data, indent=1) + "\n")
  return entry


def _define_flags():
  """The command's flags, defined when it runs (importing the module for `fingerprint` and
  `table`, as the tests do, defines none)."""
  from absl import flags
  from ml_collections import config_flags

  config_flags.DEFINE_config_file("config", "configs/default.py", "Demo config.")
  flags.DEFINE_string(
      "workdir",
      "/tmp/fashionnet_demo",
      "Run folder: a finished run there is reused (delete it to start over).",
  )
  flags.DEFINE_string(
      "record",
      None,
      f"Measure the README's numbers into this file "
      f"({RECORD_FILE}); needs a --workdir that holds no run yet.",
  )
  flags.DEFINE_bool("verbose", False, VERBOSE_FLAG_HELP)


@exit_on_user_error
def main(argv):
  del argv
  from absl import flags
  from etils import epath

  flags_ = flags.FLAGS
  start = time.perf_counter()
  config = config_flag()
  workdir = epath.Path(flags_.workdir)
  if flags_.record and (workdir / "config.json").exists():
    raise UsageError(
        f"--record measures a fresh run: --workdir {workdir} already holds one "
        "(remove it or name another)"
    )
  console.say(
      f"FashionNet demo: {config.dataset.name}, config {config_name(flags_['config'])}, "
      f"run folder {workdir}"
  )
  from fashionnet_jax import train

  try:
    t_train = time.perf_counter()
    train.train_and_evaluate(config, workdir)
  except train.Preempted as e:
    print(str(e), file=sys.stderr)
    sys.exit(PREEMPTED_EXIT)
  train_eval_s = time.perf_counter() - t_train
  evals = workdir / "eval"
  steps = sorted(int(p.stem) for p in evals.glob("*.json"))
  untrained = json.loads((evals / "0.json").read_text()) if 0 in steps else {}
  trained = json.loads((evals / f"{steps[-1]}.json").read_text())
  total_s = time.perf_counter() - start
  print(
      f"\nFashionNet demo: {config.dataset.name}, {steps[-1]} steps, "
      f"{console.duration(total_s)} in all"
  )
  print(table(untrained, trained, int(config.model.num_categories)))
  print(f"Full report: {evals / f'{steps[-1]}.md'}")
  if flags_.record:
    entry = record(
        flags_.record,
        config_name(flags_["config"]),
        config,
        untrained,
        trained,
        train_eval_s,
        total_s,
    )
    print(f"Recorded in {flags_.record}: {caption(entry)}")


if __name__ == "__main__":
  from absl import app, logging

  _define_flags()
  logging.set_verbosity(logging.WARNING)
  app.run(main, flags_parser=parse_absl_flags)
