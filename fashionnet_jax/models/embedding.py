"""L2 normalisation of embeddings, once: the retrieval head, the cascade's levels,
the gallery index and the nearest-neighbour search all scale rows with it."""

import jax.numpy as jnp


def l2_normalize(x, eps: float = 1e-12):
  """Rows scaled to unit length in float32 (a zero row stays zero), so q @ g.T is cosine."""
  x = jnp.asarray(x, jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
