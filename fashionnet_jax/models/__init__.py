"""Models: FashionNet's backbones, landmark pooling and the three-branch network.

It imports `schema`, `errors` and data/transforms (input normalisation); never
training/, evaluation/ or inference/.

Modules: vgg, resnet, xception (backbones), activations (ReLU for cuDNN fusion),
landmark_pooling, heatmap (the heatmap landmark head), fashionnet (the network), cascade
(HDC's embeddings at several depths), embedding (L2 normalisation of embeddings),
functional (split/merge into pure pytrees and the one eval-mode predict step),
pretrained (ImageNet weight conversion and placement).
"""

from flax import nnx

from fashionnet_jax.models.fashionnet import FashionNet, embedding_width
from fashionnet_jax.models.landmark_pooling import landmark_pool


def create_model(model_config, seed=0):
  """FashionNet from `config.model`, parameters drawn from `seed`."""
  return FashionNet(model_config, rngs=nnx.Rngs(seed))


__all__ = ["FashionNet", "create_model", "embedding_width", "landmark_pool"]
