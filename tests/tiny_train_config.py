r"""A tiny end-to-end training config for the subprocess tests (synthetic data, 32 px).

  python -m fashionnet_jax.main --config=tests/tiny_train_config.py --workdir=/tmp/tiny \
      --config.dataset.data_dir=/tmp/tiny_tfds
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiny import tiny_config  # noqa: E402


def get_config():
  config = tiny_config(
      **{
          "dataset.synthetic_images": 60,
          "model.num_attributes": 1000,
          "loss.attribute_weighting": True,
          "checkpoint_every_steps": 4,
          "log_every_steps": 4,
      }
  )
  config.stages[0].steps = 6
  config.stages[1].steps = 6
  config.stages[1].weights.triplet = 0.0
  config.num_rounds = 2
  return config
