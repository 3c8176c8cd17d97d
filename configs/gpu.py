r"""FashionNet (VGG-16, the paper's) on full DeepFashion `category_attribute`, one H100/H200.

  python -m fashionnet_jax.main --config=configs/gpu.py --workdir=/data/runs/fashionnet \
      --config.dataset.data_dir=/data/tensorflow_datasets \
      --config.init_from=/data/weights/vgg16_imagenet.npz

The same as --config=configs/default.py:gpu: batch 128 at 224x224, bf16 compute
with float32 parameters and optimiser state, SGD at mmfashion's fine-tuning rate
(configs/full_size.py says where each number comes from). Build the dataset first
(README, "Build real DeepFashion"). ImageNet initialisation is required: convert
torchvision's vgg16 weights with `python -m fashionnet_jax.weights` and set
--config.init_from=PATH (or --config.init_from=scratch to train from random
weights on purpose).
"""

from configs import default
from fashionnet_jax.errors import ConfigError


def get_config(arg=None):
  """default.py:gpu; the argument, like every config file's, may name it ('gpu')."""
  if arg not in (None, "gpu"):
    raise ConfigError(
        f"configs/gpu.py:{arg}: this file is configs/default.py:gpu and takes "
        "no other argument (configs/default.py takes gpu or tpu)"
    )
  return default.get_config("gpu")
