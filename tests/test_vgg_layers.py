"""VGG building blocks written for speed compute the same functions as the plain ones."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from fashionnet_jax.models import vgg
from fashionnet_jax.models.activations import relu


def test_relu_value_and_gradient_equal_jax_nn_relu():
  x = jax.random.normal(jax.random.key(1), (64,)).at[:8].set(0.0)  # ReLU'(0) = 0 in both
  weights = jnp.arange(64.0)
  ours = jax.value_and_grad(lambda v: jnp.sum(relu(v) * weights))(x)
  reference = jax.value_and_grad(lambda v: jnp.sum(jax.nn.relu(v) * weights))(x)
  np.testing.assert_array_equal(np.asarray(ours[0]), np.asarray(reference[0]))
  np.testing.assert_array_equal(np.asarray(ours[1]), np.asarray(reference[1]))
