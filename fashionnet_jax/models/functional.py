"""FashionNet as pure functions of plain pytrees, and its eval-mode predict step.

As in flax/examples/gemma, the NNX model is split once into a static graph and
plain dicts of arrays (float32 parameters; other model state such as batch
statistics and dropout keys); compiled code merges them back. The train step
(training/), the evaluation loop (evaluation/) and the Predictor (inference/)
all go through `split_model` / `merge_model`, and the last two share
`make_predict_fn`, the one eval-mode forward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from fashionnet_jax.data import transforms


def _is_key(x) -> bool:
  return jnp.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)


def split_model(model):
  """(graphdef, params, model_state) as plain dicts of arrays.

  RNG keys that NNX keeps in the model (dropout streams) become raw uint32 key
  data, so that the state is an ordinary pytree for Orbax, optax and sharding.
  """
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  rest = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, rest.to_pure_dict())
  return graphdef, params.to_pure_dict(), rest


def _is_rng_key_path(path) -> bool:
  # NNX keeps a stream's key at .../rngs/<stream>/key or .../rngs/key.
  names = [getattr(p, "key", getattr(p, "name", None)) for p in path]
  return names[-1] == "key" and "rngs" in names


def merge_model(graphdef, params, model_state):
  model_state = jax.tree_util.tree_map_with_path(
      lambda path, x: jax.random.wrap_key_data(x) if _is_rng_key_path(path) else x, model_state
  )
  return nnx.merge(graphdef, nnx.State(params), nnx.State(model_state))


def abstract_graphdef(model_fn):
  """The static graph of the model, without creating any parameter."""
  return nnx.split(nnx.eval_shape(model_fn), nnx.Param, ...)[0]


def make_predict_fn(
    graphdef,
    *,
    params_sharding=None,
    model_state_sharding=None,
    batch_sharding=None,
    out_sharding=None,
):
  """The jitted eval-mode forward pass: predict(params, model_state, images) -> outputs.

  `images` are uint8 (normalised here, on the device) or float32 already
  ImageNet-normalised; outputs are the model's dict (landmarks,
  visibility_logits, category_logits, attribute_logits, embedding). Shardings
  are optional (evaluation passes the mesh's; the Predictor runs on one device).
  """

  def predict(params, model_state, images):
    model = merge_model(graphdef, params, model_state)
    return model(transforms.normalize_on_device(images), train=False)

  if params_sharding is None:
    return jax.jit(predict)
  return jax.jit(
      predict,
      in_shardings=(params_sharding, model_state_sharding, batch_sharding),
      out_shardings=out_sharding,
  )
