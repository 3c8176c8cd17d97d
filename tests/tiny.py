"""Tiny configs and batches shared by the training tests (2-core CPU sized)."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from configs import default  # noqa: E402

# The benchmark commands' flags for tiny_config's network (width 1/16, 32 px, batch 8).
TINY_BENCHMARK_FLAGS = [
    f"--config={ROOT / 'configs' / 'default.py'}",
    "--config.image_size=32",
    "--config.model.width_multiplier=0.0625",
    "--config.model.fc6_dim=32",
    "--config.model.fc6_local_dim=16",
    "--config.model.num_attributes=12",
    "--config.model.embedding_dim=16",
    "--batch=8",
]


def tiny_config(**overrides):
  config = default.get_config()
  config.image_size = 32
  config.batch_size = 8
  config.eval_batch_size = 8
  config.model.width_multiplier = 1 / 16
  config.model.fc6_dim = 32
  config.model.fc6_local_dim = 16
  config.model.num_attributes = 12
  config.model.embedding_dim = 16
  config.loss.attribute_weighting = False
  config.optimizer.name = "sgd"  # the paper's; the tests' step sizes assume it
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_steps = 0
  config.optimizer.learning_rate = 0.05
  config.stages = [
      default.stage("pose", 2, ("trunk", "pose_branch"), landmark=10.0, visibility=1.0),
      default.stage(
          "recognition",
          2,
          ("trunk", "local_branch", "global_branch", "fusion", "heads"),
          landmark=1.0,
          category=1.0,
          attribute=1.0,
          triplet=1.0,
      ),
  ]
  config.num_rounds = 1
  config.log_every_steps = 2
  config.checkpoint_every_steps = 2
  config.eval_at_start = False
  config.update_from_flattened_dict(overrides)
  return config


def fake_batch(config, seed=0, batch=None):
  """A host batch in the input pipeline's contract, random but well-formed."""
  rng = np.random.default_rng(seed)
  b = batch or config.batch_size
  s = config.image_size
  return dict(
      image=rng.normal(size=(b, s, s, 3)).astype(np.float32),
      landmarks=rng.uniform(size=(b, 8, 2)).astype(np.float32),
      landmark_visibility=rng.integers(0, 4, (b, 8)).astype(np.int32),
      category=rng.integers(0, config.model.num_categories, b).astype(np.int32),
      attributes=rng.choice(np.array([-1, 0, 1], np.int8), (b, config.model.num_attributes)),
      clothes_type=rng.integers(0, 3, b).astype(np.int32),
      item=np.repeat(np.arange(b // 2), 2).astype(np.int32),
      mask=np.ones(b, bool),
  )
