r"""Consumer-to-shop retrieval with the Hard-Aware Deeply Cascaded embedding (HDC).

  python -m fashionnet_jax.main --config=configs/consumer2shop_cascaded.py --workdir=/tmp/fashionnet_c2s_hdc
  python -m fashionnet_jax.main --config=configs/consumer2shop_cascaded.py:gpu --workdir=RUN \
      --config.init_from=vgg16_imagenet.npz        # full size (configs/full_size.py); :tpu too

The cascade of configs/inshop_cascaded.py on configs/consumer2shop.py; the
full-size run keeps the step with the best validation top-20 of the concatenation.
"""

from configs import consumer2shop, inshop_cascaded


def get_config(arg=None):
  return inshop_cascaded.cascaded(consumer2shop.get_config(arg))
