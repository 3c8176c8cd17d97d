"""FashionNet (Liu et al., DeepFashion, CVPR 2016) in JAX/Flax NNX."""

__version__ = "0.1.0"
