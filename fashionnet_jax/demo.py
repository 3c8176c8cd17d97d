r"""The two-minute tour: synthetic DeepFashion → TFDS → train → evaluate → table.

  python -m fashionnet_jax.demo                       # category, attributes, landmarks
  python -m fashionnet_jax.demo --config=configs/inshop.py   # retrieval (In-shop)

On a fresh machine this writes synthetic DeepFashion, builds it with the TFDS
builder, trains the config (a small FashionNet, a few minutes on 2 CPU cores),
evaluates it with the paper's protocols and prints the untrained and trained
numbers side by side.
"""
from __future__ import annotations

import json
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from fashionnet_jax.cli import config_flag, parse_absl_flags
from fashionnet_jax.errors import PREEMPTED_EXIT, exit_on_user_error

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/default.py", "Demo config.")
flags.DEFINE_string("workdir", "/tmp/fashionnet_demo", "Run folder (deleted runs start over).")

# (metric key, label, higher is better)
ROWS = (
    ("category_top1", "category top-1", True),
    ("category_top3", "category top-3", True),
    ("category_top5", "category top-5", True),
    ("attribute_top5_recall", "attribute top-5 recall", True),
    ("landmark_ne", "landmark NE (lower is better)", False),
    ("retrieval_top1", "retrieval top-1", True),
    ("retrieval_top20", "retrieval top-20", True),
)


def table(untrained: dict, trained: dict) -> str:
  lines = ["| metric | untrained | trained |", "|---|---|---|"]
  for key, label, _ in ROWS:
    if key in trained and trained[key] is not None:
      before = untrained.get(key)
      lines.append(f"| {label} | {before:.4f} | {trained[key]:.4f} |" if before is not None
                   else f"| {label} | n/a | {trained[key]:.4f} |")
  return "\n".join(lines)


@exit_on_user_error
def main(argv):
  del argv
  from etils import epath

  from fashionnet_jax import train
  config = config_flag()
  start = time.perf_counter()
  try:
    train.train_and_evaluate(config, FLAGS.workdir)
  except train.Preempted as e:
    print(str(e), file=sys.stderr)
    sys.exit(PREEMPTED_EXIT)
  evals = epath.Path(FLAGS.workdir) / "eval"
  steps = sorted(int(p.stem) for p in evals.glob("*.json"))
  untrained = json.loads((evals / "0.json").read_text()) if 0 in steps else {}
  trained = json.loads((evals / f"{steps[-1]}.json").read_text())
  chance = 1.0 / config.model.num_categories
  print(f"\nFashionNet demo: {config.dataset.name} ({trained.get('split')}), "
        f"{steps[-1]} steps, {time.perf_counter() - start:.0f} s wall")
  print(table(untrained, trained))
  if "category_top1" in trained:
    print(f"(category chance: {chance:.3f})")
  print(f"Full report: {evals / f'{steps[-1]}.md'}")


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main, flags_parser=parse_absl_flags)
