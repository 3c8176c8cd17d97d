"""VGG building blocks written for speed compute the same functions as the plain ones:
the 2×2 max pool and its gradient (against PyTorch's, ties included), the ReLU
whose gradient reads its output, and conv1_1 with its channels padded to 8."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from fashionnet_jax.models import vgg
from fashionnet_jax.models.activations import relu


@pytest.mark.parametrize("shape", [(2, 6, 6, 3), (2, 7, 5, 4)])  # even and odd maps
def test_max_pool_and_gradient_match_pytorch_with_ties(shape):
  rng = np.random.default_rng(0)
  x = rng.integers(-2, 3, shape).astype(np.float32)  # small integers: many tied maxima
  g = rng.normal(size=(shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype(np.float32)
  y, vjp = jax.vjp(vgg.max_pool_2x2, jnp.asarray(x))
  (dx,) = vjp(jnp.asarray(g))

  xt = torch.tensor(x).permute(0, 3, 1, 2).requires_grad_()
  yt = torch.nn.functional.max_pool2d(xt, 2, 2)
  yt.backward(torch.tensor(g).permute(0, 3, 1, 2))
  np.testing.assert_array_equal(np.asarray(y), yt.detach().permute(0, 2, 3, 1).numpy())
  # PyTorch (and Caffe) route each window's gradient to its first maximum.
  np.testing.assert_array_equal(np.asarray(dx), xt.grad.permute(0, 2, 3, 1).numpy())
  assert np.sum(np.asarray(dx) != 0) <= g.size  # one position per window, never split
  jitted = jax.jit(lambda v, t: jax.vjp(vgg.max_pool_2x2, v)[1](t)[0])
  np.testing.assert_array_equal(np.asarray(jitted(jnp.asarray(x), jnp.asarray(g))), np.asarray(dx))


def test_max_pool_matches_reduce_window_in_bfloat16():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 5), jnp.bfloat16)
  expected = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  np.testing.assert_array_equal(np.asarray(vgg.max_pool_2x2(x)), np.asarray(expected))


def test_relu_value_and_gradient_equal_jax_nn_relu():
  x = jax.random.normal(jax.random.key(1), (64,)).at[:8].set(0.0)  # ReLU'(0) = 0 in both
  weights = jnp.arange(64.0)
  ours = jax.value_and_grad(lambda v: jnp.sum(relu(v) * weights))(x)
  reference = jax.value_and_grad(lambda v: jnp.sum(jax.nn.relu(v) * weights))(x)
  np.testing.assert_array_equal(np.asarray(ours[0]), np.asarray(reference[0]))
  np.testing.assert_array_equal(np.asarray(ours[1]), np.asarray(reference[1]))


def test_conv_with_padded_channels_equals_the_conv_and_its_gradients():
  conv = nnx.Conv(3, 8, (3, 3), padding="SAME", rngs=nnx.Rngs(0))
  conv.bias.value = jax.random.normal(jax.random.key(3), (8,))
  x = jax.random.normal(jax.random.key(2), (2, 6, 6, 3))

  def loss(module, fn):
    return jnp.sum(fn(module, x) ** 2)

  padded = nnx.value_and_grad(lambda m: loss(m, vgg.conv_padded_channels))(conv)
  plain = nnx.value_and_grad(lambda m: loss(m, lambda c, v: c(v)))(conv)
  np.testing.assert_allclose(padded[0], plain[0], rtol=1e-5)
  np.testing.assert_allclose(padded[1].kernel.value, plain[1].kernel.value, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(padded[1].bias.value, plain[1].bias.value, rtol=1e-4, atol=1e-5)
  assert padded[1].kernel.value.shape == (3, 3, 3, 8)  # the parameter keeps its shape
