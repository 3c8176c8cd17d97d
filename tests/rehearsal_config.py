r"""The full-size category_attribute config (configs/default.py:gpu, VGG-16 at 224 px, bf16,
SGD, dropout, init_from required) with its stages cut to a few steps and batch 2, for
the CPU rehearsal of the real user's path (tests/test_rehearsal.py).

  python -m fashionnet_jax.main --config=tests/rehearsal_config.py --workdir=RUN \
      --config.dataset.manual_dir=DIR --config.dataset.data_dir=TFDS --config.init_from=W
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import default  # noqa: E402


def get_config():
  config = default.get_config("gpu")
  config.batch_size = 2
  config.eval_batch_size = 2
  config.input.worker_count = 0
  config.input.prefetch_buffer_size = 1
  config.optimizer.warmup_steps = 1
  for stage in config.stages:
    stage.steps = 2
  config.num_rounds = 1
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.log_every_steps = 1
  return config
