r"""Ablation: FashionNet without the landmark branch (global branch only).

  python -m fashionnet_jax.main --config=configs/no_landmarks.py --workdir=/tmp/fashionnet_nolm
  python -m fashionnet_jax.main --config=configs/no_landmarks.py:gpu --workdir=RUN \
      --config.init_from=vgg16_imagenet.npz        # full size (configs/full_size.py); :tpu too

default.py (demo or full size) with the pose and local branches removed, and
nothing else changed, so that the two arms differ only in the branch:
- the same stages and rounds: the pose-led stage's landmark and visibility terms
  have no branch to train (the model returns constant zeros), the category and
  attribute terms keep FashionNet's weights step by step;
- the same initialisation: fc7_fusion (here over fc6_global alone) is not filled
  from ImageNet's fc7, which FashionNet's (fc6_global + fc6_local inputs) cannot
  take (models/pretrained.py), so in both arms it starts at random and learns at
  the new-layer rate.
"""

from configs import default


def get_config(arg=None):
  config = default.get_config(arg)
  config.model.use_landmark_branch = False
  return config
