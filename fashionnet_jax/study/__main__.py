r"""Train a named set of variants on the same data, seed and step budget; one table and plot.

  python -m fashionnet_jax.study --preset=landmarks   # FashionNet vs no landmark branch
  python -m fashionnet_jax.study --preset=mining      # random vs batch-hard vs cascaded (In-shop)
  python -m fashionnet_jax.study --preset=backbone    # VGG-16 vs ResNet-50
  python -m fashionnet_jax.study --preset=landmark_head  # regressed vs heatmap landmarks
  python -m fashionnet_jax.study --preset=smoke       # two tiny variants (the tests)
  python -m fashionnet_jax.study --preset=landmarks --platform=gpu \
      --data_dir=/data/tensorflow_datasets --init_from=vgg16_imagenet.npz   # real DeepFashion

Without --platform the variants are demo-sized and train on synthetic DeepFashion
written under the study folder (as the demo does); with it, the full-size configs
on the prepared real dataset. Each variant is a run folder STUDY_DIR/<variant>;
run the same command again and finished variants are reused, an interrupted one
resumes. The table: STUDY_DIR/study.md (+ study.json, study.png).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging

from fashionnet_jax.cli import VERBOSE_FLAG_HELP, UsageError, parse_absl_flags
from fashionnet_jax.errors import PREEMPTED_EXIT, exit_on_user_error

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", None, "landmarks | mining | backbone | landmark_head | smoke")
flags.DEFINE_string("study_dir", None, "Study folder (default /tmp/fashionnet_study/<preset>).")
flags.DEFINE_integer(
    "steps",
    None,
    "Step budget of every variant (default: the preset's; "
    "full size: each config's own schedule).",
)
flags.DEFINE_integer("seed", 0, "Seed of every variant.")
flags.DEFINE_string(
    "data_dir", None, "TFDS data dir (default: synthetic data in the study folder)."
)
flags.DEFINE_enum("platform", None, ["gpu", "tpu"], "Full-size configs (configs/full_size.py).")
flags.DEFINE_string("init_from", None, "Full size: ImageNet weights, a run folder, or 'scratch'.")
flags.DEFINE_bool("verbose", False, VERBOSE_FLAG_HELP)


@exit_on_user_error
def main(argv):
  if len(argv) > 1:
    raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  from fashionnet_jax.study import presets, runner

  if not FLAGS.preset:
    raise UsageError(f"--preset is required: one of {', '.join(presets.PRESETS)}")
  preset = presets.get_preset(FLAGS.preset)
  from fashionnet_jax import train

  try:
    runner.run_study(
        preset,
        FLAGS.study_dir or f"/tmp/fashionnet_study/{preset.name}",
        train.train_and_evaluate,
        steps=FLAGS.steps,
        seed=FLAGS.seed,
        data_dir=FLAGS.data_dir,
        platform=FLAGS.platform,
        init_from=FLAGS.init_from,
        log=lambda line: print(line, flush=True),
    )
  except train.Preempted as e:  # finished variants are kept; the same command goes on
    print(str(e), file=sys.stderr)
    sys.exit(PREEMPTED_EXIT)


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main, flags_parser=parse_absl_flags)
