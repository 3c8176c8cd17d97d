"""Each backbone's declared conv5 cell centres against the receptive-field centroid
measured by autodiff, and landmark -> cell by nearest centre at 224 px.

The centroid: with every kernel a positive constant (no bias, BatchNorm the
identity) and a positive image, each ReLU passes and the network is linear, so
the gradient of one conv5 cell with respect to the image is its receptive field's
weights. A max pool's receptive field is its whole window (with a random input
its gradient lands on each window position alike); its gradient here would go
to the first of many ties, so the test swaps it for the average pool of the same
window, stride and padding. The image is large enough that the field never
reaches the border (checked), where zero padding would cut it.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fashionnet_jax.models import resnet, vgg
from fashionnet_jax.models.landmark_pooling import landmark_cells

WIDTH = 0.01  # 8 channels everywhere: the geometry does not depend on width


def _constant_kernels(model):
  """Every conv kernel = 1 / fan_in (an average), biases and BatchNorm left at their identity init."""

  def constant(path, x):
    if any(getattr(key, "key", None) == "kernel" for key in path):
      return jnp.full_like(x, 1.0 / np.prod(x.shape[:-1]))
    return x

  nnx.update(model, jax.tree_util.tree_map_with_path(constant, nnx.state(model, nnx.Param)))


def _vgg():
  rngs = nnx.Rngs(0)
  trunk = vgg.VGGTrunk(WIDTH, rngs=rngs)
  conv5 = vgg.VGGConv5(trunk.out_channels, WIDTH, rngs=rngs)
  return trunk, conv5, vgg.CONV5_CELLS


def _resnet():
  rngs = nnx.Rngs(0)
  trunk = resnet.ResNetTrunk(WIDTH, rngs=rngs)
  return trunk, resnet.resnet_conv5(trunk.out_channels, WIDTH, rngs=rngs), resnet.CONV5_CELLS


# backbone -> (builder, input side where two interior cells' whole fields fit, those cells (row, col))
BACKBONES = {"vgg16": (_vgg, 256, ((7, 7), (8, 9))), "resnet50": (_resnet, 480, ((7, 7), (8, 8)))}


def _average_pool_2x2(x):
  return nnx.avg_pool(x, (2, 2), (2, 2))


@functools.lru_cache(maxsize=None)
def measured_centroids(backbone):
  """(x, y) receptive-field centroids of BACKBONES' cells, continuous input pixels (pixel p's centre at p + 0.5)."""
  build, size, cells = BACKBONES[backbone]
  trunk, conv5, _ = build()
  _constant_kernels(trunk)
  _constant_kernels(conv5)
  with pytest.MonkeyPatch.context() as patch:  # max pools -> average pools, same windows
    patch.setattr(vgg, "max_pool_2x2", _average_pool_2x2)
    patch.setattr(nnx, "max_pool", nnx.avg_pool)
    net = lambda x: conv5(trunk(x))
    image = jnp.ones((1, size, size, 3), jnp.float32)
    cotangents = np.zeros((len(cells),) + jax.eval_shape(net, image).shape, np.float32)
    for i, (row, col) in enumerate(cells):
      cotangents[i, 0, row, col] = 1.0
    grads = jax.jit(lambda x, g: jax.vmap(jax.vjp(net, x)[1])(g)[0])(image, cotangents)
  centroids = []
  for grad in np.asarray(grads, np.float64):
    weights = grad[0].sum(-1)
    assert weights.min() >= 0 and weights.sum() > 0
    # The whole field inside the image: no zero padding cut it.
    assert not (
        weights[0].any() or weights[-1].any() or weights[:, 0].any() or weights[:, -1].any()
    )
    centres = np.arange(size) + 0.5
    centroids.append(
        (
            np.sum(weights.sum(0) * centres) / weights.sum(),
            np.sum(weights.sum(1) * centres) / weights.sum(),
        )
    )
  return centroids


@pytest.mark.parametrize("backbone", BACKBONES)
def test_declared_cell_centres_are_receptive_field_centroids(backbone):
  build, _, cells = BACKBONES[backbone]
  geometry = build()[2]
  for (row, col), centroid in zip(cells, measured_centroids(backbone)):
    np.testing.assert_allclose(
        centroid,
        [geometry.offset + geometry.stride * col, geometry.offset + geometry.stride * row],
        atol=1e-3,
    )


def test_declared_geometry():
  # VGG: pixel index 16j + 7.5 (= 16(j + 0.5) continuous); ResNet: pixel index 32j.
  assert tuple(vgg.CONV5_CELLS) == (16.0, 8.0)
  assert tuple(resnet.CONV5_CELLS) == (32.0, 0.5)


@pytest.mark.parametrize("backbone, cells", [("vgg16", 14), ("resnet50", 7)])
def test_landmark_maps_to_nearest_cell_at_224(backbone, cells):
  size = 224
  trunk, conv5, geometry = BACKBONES[backbone][0]()
  shape = jax.eval_shape(
      lambda x: conv5(trunk(x)), jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  )
  assert shape.shape[1:3] == (cells, cells)
  # The measured centres (the fields whole, at a larger input; cells repeat every stride).
  (_, col), (x, _) = BACKBONES[backbone][2][0], measured_centroids(backbone)[0]
  centres = x + geometry.stride * (np.arange(cells) - col)
  half = geometry.stride / 2
  marks, want = [], []
  for j, c in enumerate(centres):
    # At the centroid, and 1 px short of the midpoints to either neighbour: this cell.
    marks += [c, c - half + 1, c + half - 1]
    want += [j, j, j]
  # 1 px past a midpoint: the neighbour.
  for j in range(cells - 1):
    marks.append(centres[j] + half + 1)
    want.append(j + 1)
  xy = np.stack([np.asarray(marks) / size, np.full(len(marks), 0.5)], -1)[None].astype(np.float32)
  row, col = landmark_cells(jnp.asarray(xy), cells, cells, geometry, (size, size))
  np.testing.assert_array_equal(np.asarray(col)[0], want)
  # y the same way; a mark past the border falls on the edge cell.
  yx = jnp.asarray(np.array([[[0.5, centres[2] / size], [0.5, -0.1], [0.5, 1.2]]], np.float32))
  row, _ = landmark_cells(yx, cells, cells, geometry, (size, size))
  np.testing.assert_array_equal(np.asarray(row)[0], [2, 0, cells - 1])
