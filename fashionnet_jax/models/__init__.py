"""FashionNet networks: backbones, landmark pooling and the three-branch model."""
from flax import nnx

from fashionnet_jax.models.fashionnet import FashionNet
from fashionnet_jax.models.landmark_pooling import landmark_pool


def create_model(model_config, seed=0):
  """FashionNet from `config.model`, parameters drawn from `seed`."""
  return FashionNet(model_config, rngs=nnx.Rngs(seed))


__all__ = ['FashionNet', 'create_model', 'landmark_pool']
