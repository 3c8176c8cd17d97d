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
from configs import default, full_size
from fashionnet_jax import schema

# Anno_fine/train.txt lines as commonly counted (14,000 of its 20,000 images).
TRAIN_IMAGES = 14_000


def get_config(arg=None):
  config = default.demo_config()
  config.dataset.name = "deepfashion/category_attribute_fine"
  config.model.num_attributes = schema.NUM_FINE_ATTRIBUTES
  if arg:
    full_size.apply(config, arg)
    steps = lambda epochs: full_size.epochs_to_steps(epochs, TRAIN_IMAGES, config.batch_size)
    # mmfashion's Anno_fine recipe runs 50 epochs (lr steps at 10 and 20); here the
    # paper's alternation twice, 5 epochs pose-led and 10 recognition-led.
    config.stages = [
        default.stage("pose", steps(5), landmark=10.0, visibility=1.0, category=0.1,
                      attribute=0.1),
        default.stage("recognition", steps(10), landmark=1.0, visibility=0.1, category=1.0,
                      attribute=1.0),
    ]
    config.num_rounds = 2
    full_size.select_on_validation(config, "attribute_top3_recall", steps(5))
  return config
