r"""Consumer-to-shop retrieval: triplet + batch-hard over P items x K (consumer and shop) images.

  python -m fashionnet_jax.main --config=configs/consumer2shop.py --workdir=/tmp/fashionnet_c2s
  python -m fashionnet_jax.main --config=configs/consumer2shop.py:gpu --workdir=RUN \
      --config.init_from=vgg16_imagenet.npz        # full size (configs/full_size.py); :tpu too

Evaluation: the split's consumer images query a gallery of its shop images. The
full-size run keeps the step with the best validation retrieval top-20 and tests it.

Full size: In-shop's (configs/inshop.py, retrieval_config): 128 images per batch at
configs/full_size.py's rate, 5e-4. mmfashion's recipe (open-mmlab/mmfashion, configs/
retriever_consumer_to_shop/roi_retriever_vgg.py) trains 100 epochs with SGD lr 1e-3
at 8 triplets x 3 GPUs = 24 triplets (72 images), decays at epochs 20 and 40; as for
In-shop, we keep the one rate rule.
"""

from configs import full_size, inshop

# Images in the train pairs, deduplicated (the split holds ~half of the 239,557
# images); only the stage lengths depend on it.
TRAIN_IMAGES = 120_000


def get_config(arg=None):
  config = inshop.retrieval_config(arg, TRAIN_IMAGES)
  config.dataset.name = "deepfashion/consumer2shop"
  # eval_split stays "test": its consumer images query its shop images.
  if arg:
    full_size.select_on_validation(
        config, "retrieval_top20", full_size.steps(arg, TRAIN_IMAGES, 10)
    )
  return config
