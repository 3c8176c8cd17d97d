r"""Consumer-to-shop retrieval: triplet + batch-hard over P items x K (consumer and shop) images.

  python -m fashionnet_jax.main --config=configs/consumer2shop.py --workdir=/tmp/fashionnet_c2s

Evaluation: the split's consumer images query a gallery of its shop images.
"""
from configs import inshop


def get_config():
  config = inshop.get_config()
  config.dataset.name = "deepfashion/consumer2shop"
  config.dataset.eval_split = "test"
  return config
