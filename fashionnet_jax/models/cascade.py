"""Embedding heads at several depths, for the Hard-Aware Deeply Cascaded embedding
(HDC: Yuan, Yang, Zhang, ICCV 2017) adapted to FashionNet.

HDC hangs an L2-normalised embedding on GoogLeNet at three depths and trains
the deeper ones on the pairs the shallower ones found hard (training/losses.py,
`cascaded_embedding_loss`); at test time the levels are concatenated. Here the
depths are FashionNet's: `pool4` (the shared trunk's output; ResNet: stage 3),
`conv5_global` (the global branch's conv5) and `fc7_fusion` (the existing
retrieval embedding). The two convolutional levels are global-average-pooled
and projected by one linear layer (HDC's side heads, without their extra fc).
All of it computes in float32, as the Heads do.
"""

import jax.numpy as jnp
from flax import nnx

from fashionnet_jax.errors import ConfigError
from fashionnet_jax.models.embedding import l2_normalize

# Shallow to deep; config.model.cascade_levels lists some of them in this order.
CASCADE_LEVELS = ("pool4", "conv5_global", "fc7_fusion")


def check_levels(levels) -> tuple:
  levels = tuple(levels)
  unknown = [name for name in levels if name not in CASCADE_LEVELS]
  if unknown:
    raise ConfigError(
        f"config.model.cascade_levels: unknown {unknown}; use some of "
        f"{', '.join(CASCADE_LEVELS)}"
    )
  if list(levels) != sorted(set(levels), key=CASCADE_LEVELS.index):
    raise ConfigError(
        f"config.model.cascade_levels={levels}: list each level once, shallow "
        f"to deep ({', '.join(CASCADE_LEVELS)})"
    )
  return levels


class CascadeEmbedding(nnx.Module):
  """GAP → linear → L2 for each convolutional level (`embedding_<level>`, under `heads`)."""

  def __init__(self, levels, channels: dict, embedding_dim, *, rngs):
    self.levels = check_levels(levels)
    for name in self.levels:
      if name != "fc7_fusion":
        setattr(
            self,
            f"embedding_{name}",
            nnx.Linear(
                channels[name], embedding_dim, dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs
            ),
        )

  def __call__(self, features: dict, fc7_embedding):
    """features: {level: [B, H, W, C]}; fc7_embedding: the fc7_fusion level, normalised.

    Returns (levels [B, K, D], their concatenation [B, K·D] scaled to unit length:
    its cosine is the mean of the levels' cosines).
    """
    levels = []
    for name in self.levels:
      if name == "fc7_fusion":
        levels.append(fc7_embedding)
        continue
      pooled = jnp.mean(features[name].astype(jnp.float32), axis=(1, 2))
      levels.append(l2_normalize(getattr(self, f"embedding_{name}")(pooled)))
    stacked = jnp.stack(levels, axis=1)
    concat = stacked.reshape(stacked.shape[0], -1) / jnp.sqrt(float(len(levels)))
    return stacked, concat
