r"""Ablation: FashionNet without the landmark branch (global branch only).

  python -m fashionnet_jax.main --config=configs/no_landmarks.py --workdir=/tmp/fashionnet_nolm

One stage: category + attribute on the global features; compare with default.py.
"""
from configs import default


def get_config():
  config = default.get_config()
  config.model.use_landmark_branch = False
  config.stages = [
      default.stage("recognition", 400, ("trunk", "global_branch", "fusion", "heads"),
                    category=1.0, attribute=1.0),
  ]
  return config
