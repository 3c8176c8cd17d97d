r"""Category and attributes on the 2020 `Anno_fine/` re-labelling: 26 attributes of 6 types.

  python -m fashionnet_jax.main --config=configs/fine.py --workdir=/tmp/fashionnet_fine
  python -m fashionnet_jax.main --config=configs/fine.py:gpu --workdir=RUN \
      --config.init_from=vgg16_imagenet.npz        # full size (configs/full_size.py); :tpu too

Builder config `category_attribute_fine` (texture, sleeve, length, neckline, fabric,
fit; its own train / val / test files): what mmfashion and most recent work train
on. Build it with `tfds build datasets/deepfashion --config=category_attribute_fine
--manual_dir=DIR` (DIR holding `Category and Attribute Prediction Benchmark/` with
`Anno_fine/` and `Img/`). Evaluation: category top-k and attribute recall per
fine type, in both protocols; FashionNet's paper has no numbers for it.
"""

from configs import default
from fashionnet_jax import schema

# Anno_fine/train.txt lines as commonly counted (14,000 of its 20,000 images).
TRAIN_IMAGES = 14_000


def get_config(arg=None):
  # mmfashion's Anno_fine recipe runs 50 epochs (lr steps at 10 and 20); here the
  # paper's alternation as for the 1000 attributes (default.py), on this split's size.
  config = default.category_config(arg, TRAIN_IMAGES)
  config.dataset.name = "deepfashion/category_attribute_fine"
  config.model.num_attributes = schema.NUM_FINE_ATTRIBUTES
  return config
