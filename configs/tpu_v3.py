r"""FashionNet (VGG-16) on full DeepFashion `category_attribute`, Cloud TPU v3-8.

  python -m fashionnet_jax.main --config=configs/tpu_v3.py --workdir=gs://BUCKET/fashionnet/v3-8 \
      --config.init_from=gs://BUCKET/weights/vgg16_imagenet.npz

(launch/tpu_vm.sh train runs exactly this on every worker; see README, "Train on
Cloud TPU".) The same as --config=configs/default.py:tpu: global batch 256 = 32 per
TPU core over the 8 cores of a v3-8, the learning rate scaled linearly with the
batch (configs/full_size.py), the same epochs as gpu.py. On a pod slice keep 32
per core (v4-32: --config.batch_size=512) and scale the learning rate and stage
steps with it; keep warm-up near one epoch when the batch grows beyond 1024.
"""

from configs import default
from fashionnet_jax.errors import ConfigError


def get_config(arg=None):
  """default.py:tpu; the argument, like every config file's, may name it ('tpu')."""
  if arg not in (None, "tpu"):
    raise ConfigError(
        f"configs/tpu_v3.py:{arg}: this file is configs/default.py:tpu and takes "
        "no other argument (configs/default.py takes gpu or tpu)"
    )
  return default.get_config("tpu")
