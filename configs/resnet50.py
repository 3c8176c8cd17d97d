r"""FashionNet with a ResNet-50 backbone (stages 1-3 shared, stage 4 per branch).

The first extension the design proposes (docs/design.md). CPU demo size (the demo's optimiser:
AdamW at 1e-3, which trains both backbones on the synthetic data):

  python -m fashionnet_jax.main --config=configs/resnet50.py --workdir=/tmp/fashionnet_resnet50

Full size (configs/full_size.py; torchvision's resnet50 weights, converted):

  python -m fashionnet_jax.main --config=configs/resnet50.py:gpu --workdir=RUN \
      --config.init_from=resnet50_imagenet.npz

ResNet-50 has no fc6/fc7: fc6_global, fc6_pose and fc7_pose start at random and, like
every layer the weight file does not fill, learn at the new-layer rate (10x).
"""

from configs import default


def get_config(arg=None):
  config = default.get_config(arg)
  config.model.backbone = "resnet50"
  return config
