r"""In-shop retrieval with the Hard-Aware Deeply Cascaded embedding (HDC, Yuan et al., ICCV 2017).

  python -m fashionnet_jax.main --config=configs/inshop_cascaded.py --workdir=/tmp/fashionnet_inshop_hdc
  python -m fashionnet_jax.main --config=configs/inshop_cascaded.py:gpu --workdir=RUN \
      --config.init_from=vgg16_imagenet.npz        # full size (configs/full_size.py); :tpu too
  ... --config.loss.cascade.selection=per_level     # the released layer's rule instead of the paper's

Embeddings at pool4, conv5_global and fc7_fusion (models/cascade.py), each
L2-normalised; contrastive pairs, margin 1 on squared distances, hard ratios
1.0 / 0.5 / 0.2, as the released DeepFashion prototxts set them
(training/losses.py, cascaded_embedding_loss). "nested" (the paper): level k keeps
that fraction of the pairs, the hardest first, of those that level k-1 kept;
"per_level" (the released PairFastLoss layer): every level keeps all positive pairs
and its own hardest fraction of the negatives. The eval JSON has each level's
retrieval top-k (`retrieval_<level>_top<k>`) beside the concatenation's
(`retrieval_top<k>`, what is retrieved with).
"""

import ml_collections

from configs import inshop
from fashionnet_jax.models.cascade import CASCADE_LEVELS
from fashionnet_jax.training import losses


def get_config(arg=None):
  return cascaded(inshop.get_config(arg))


def cascaded(config):
  """Turns a retrieval config into its HDC variant, in place (no weight file fills the new
  heads: on the full-size configs they learn at the new layers' rate)."""
  config.model.cascade_levels = CASCADE_LEVELS
  config.loss.cascade = ml_collections.ConfigDict(
      dict(
          kept_fractions=losses.HDC_KEPT_FRACTIONS,
          selection="nested",  # or "per_level" (losses.CASCADE_SELECTIONS)
          pair_loss="contrastive",  # or "triplet" (then margin is the triplet margin)
          margin=losses.HDC_CONTRASTIVE_MARGIN,
      )
  )
  return config
