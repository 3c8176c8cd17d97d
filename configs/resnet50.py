r"""FashionNet with a ResNet-50 backbone (stages 1-3 shared, stage 4 per branch).

The source notes' first proposed improvement. CPU demo size here:

  python -m fashionnet_jax.main --config=configs/resnet50.py --workdir=/tmp/fashionnet_resnet50

For full size: --config.model.width_multiplier=1 --config.image_size=224 (see gpu.py).
"""
from configs import default


def get_config():
  config = default.get_config()
  config.model.backbone = "resnet50"
  config.model.width_multiplier = 0.125
  config.optimizer.learning_rate = 0.05
  return config
