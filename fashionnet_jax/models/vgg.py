"""VGG-16 pieces for FashionNet: the shared trunk (conv1_1..conv4_3 + pools) and
one conv5 block (conv5_1..conv5_3) per branch. NHWC, 3×3 'SAME' convs, ReLU."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fashionnet_jax.models.activations import relu
from fashionnet_jax.models.landmark_pooling import cell_geometry

# (layer name, paper output channels); 'pool' = 2×2 max pool, stride 2.
TRUNK_LAYERS = (
    ("conv1_1", 64),
    ("conv1_2", 64),
    "pool",
    ("conv2_1", 128),
    ("conv2_2", 128),
    "pool",
    ("conv3_1", 256),
    ("conv3_2", 256),
    ("conv3_3", 256),
    "pool",
    ("conv4_1", 512),
    ("conv4_2", 512),
    ("conv4_3", 512),
    "pool",
)
CONV5_LAYERS = (("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512))
# Where conv5's cells sit on the input ((kernel, stride, padding) of every layer
# up to conv5_3): stride 16, cell j centred at 16·j + 8 (pixel index 16·j + 7.5).
CONV5_CELLS = cell_geometry(
    [(2, 2, 0) if layer == "pool" else (3, 1, 1) for layer in TRUNK_LAYERS]
    + [(3, 1, 1)] * len(CONV5_LAYERS)
)
# fc6 sees pool5 resampled to this grid (torchvision's AdaptiveAvgPool2d((7, 7))):
# identity at 224 px, and ImageNet fc6 weights fit at any input size.
POOL5_GRID = 7


def scaled(channels, width_multiplier):
  """Conv width at `width_multiplier`: rounded, at least 8."""
  return max(8, int(round(channels * width_multiplier)))


def _windows(x):
  """[B, H, W, C] -> [B, H/2, 2, W/2, 2, C] (an odd last row/column dropped)."""
  b, h, w, c = x.shape
  return x[:, : h // 2 * 2, : w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c)


def max_pool_2x2(x):
  """2×2 max pooling, stride 2 (VALID; an odd last row/column is dropped, as in Caffe).

  As reshape + max rather than XLA's reduce_window, whose gradient is a
  select-and-scatter (~8% of the H100 step at v0, benchmarks/NOTES.md). The
  gradient goes to the first maximum of each window in row-major order, as
  Caffe's and PyTorch's max pooling route it; jnp.max's own gradient splits ties
  and keeps a comparison mask per input element from the forward pass. Here the
  forward keeps one int8 position per window and the gradient is a broadcast
  that XLA fuses into the ReLU-mask + bias-gradient reduction consuming it
  (hlo_audit, H100, batch 128: 25.6 -> 21.0 GB of memory traffic per step).
  """
  return _max_pool(x, x.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool(x, shape):
  del shape  # static: the gradient's size when a row or column was dropped
  return jnp.max(_windows(x), axis=(2, 4))


def _max_pool_fwd(x, shape):
  del shape
  windows = _windows(x)
  y = jnp.max(windows, axis=(2, 4))
  hit = lambda i, j: windows[:, :, i, :, j] == y
  first = jnp.where(hit(0, 0), 0, jnp.where(hit(0, 1), 1, jnp.where(hit(1, 0), 2, 3)))
  return y, first.astype(jnp.int8)


def _max_pool_bwd(shape, first, g):
  b, h, w, c = g.shape
  position = (
      2 * jnp.arange(2).reshape(1, 1, 2, 1, 1, 1) + jnp.arange(2).reshape(1, 1, 1, 1, 2, 1)
  ).astype(jnp.int8)
  dx = jnp.where(
      position == first[:, :, None, :, None, :], g[:, :, None, :, None, :], jnp.zeros((), g.dtype)
  ).reshape(b, 2 * h, 2 * w, c)
  dx = jnp.pad(dx, ((0, 0), (0, shape[1] - 2 * h), (0, shape[2] - 2 * w), (0, 0)))
  return (dx,)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def conv_padded_channels(conv: nnx.Conv, x, multiple=8):
  """conv(x) with x's channels (and the kernel's input rows) zero-padded to `multiple`.

  The same function. conv1_1 sees 3 channels; cuDNN pads them itself on every
  call with a separate kernel and runs slower kernels for it, where here the pad
  fuses into the image's normalisation and the conversion to bf16.
  """
  pad = -x.shape[-1] % multiple
  if pad == 0:
    return conv(x)
  kernel = jnp.pad(conv.kernel.value, ((0, 0), (0, 0), (0, pad), (0, 0)))
  x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, pad)))
  y = jax.lax.conv_general_dilated(
      x.astype(conv.dtype),
      kernel.astype(conv.dtype),
      (1, 1),
      "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
  )
  return y + conv.bias.value.astype(conv.dtype)


def conv3x3(in_channels, out_channels, dtype, rngs):
  return nnx.Conv(
      in_channels,
      out_channels,
      (3, 3),
      padding="SAME",
      dtype=dtype,
      param_dtype=jnp.float32,
      rngs=rngs,
  )


class VGGTrunk(nnx.Module):
  """conv1_1 .. conv4_3 with pool1..pool4: [B, S, S, 3] -> [B, S/16, S/16, 512·w]."""

  def __init__(self, width_multiplier=1.0, dtype=jnp.float32, *, rngs: nnx.Rngs):
    channels = 3
    for layer in TRUNK_LAYERS:
      if layer == "pool":
        continue
      name, out = layer
      setattr(self, name, conv3x3(channels, scaled(out, width_multiplier), dtype, rngs))
      channels = scaled(out, width_multiplier)
    self.out_channels = channels

  def __call__(self, x, *, train=False, return_features=False):
    """Returns pool4 (`train` is unused: no BatchNorm in VGG); with return_features, also a dict of every conv's ReLU output."""
    features = {}
    for layer in TRUNK_LAYERS:
      if layer == "pool":
        x = max_pool_2x2(x)
      else:
        x = relu(conv_padded_channels(getattr(self, layer[0]), x))
        features[layer[0]] = x
    return (x, features) if return_features else x


class VGGConv5(nnx.Module):
  """One branch's conv5_1..conv5_3 (+ReLU): [B, S/16, S/16, 512·w] -> same spatial size."""

  def __init__(self, in_channels, width_multiplier=1.0, dtype=jnp.float32, *, rngs: nnx.Rngs):
    channels = in_channels
    for name, out in CONV5_LAYERS:
      setattr(self, name, conv3x3(channels, scaled(out, width_multiplier), dtype, rngs))
      channels = scaled(out, width_multiplier)
    self.out_channels = channels

  def __call__(self, x, *, train=False):
    del train  # no BatchNorm in VGG
    for name, _ in CONV5_LAYERS:
      x = relu(getattr(self, name)(x))
    return x


@functools.lru_cache(maxsize=None)
def _adaptive_avg_matrix(size, grid):
  """[grid, size] averaging matrix of torch's adaptive_avg_pool1d bins."""
  m = np.zeros((grid, size), np.float32)
  for i in range(grid):
    start, end = (i * size) // grid, -((-(i + 1) * size) // grid)
    m[i, start:end] = 1.0 / (end - start)
  return m


def pool5_flatten(conv5, grid=POOL5_GRID):
  """pool5 (2×2 max), resampled to grid×grid as torchvision does, flattened in NHWC order."""
  x = max_pool_2x2(conv5)
  b, h, w, c = x.shape
  if (h, w) != (grid, grid):
    rows = jnp.asarray(_adaptive_avg_matrix(h, grid), x.dtype)
    cols = jnp.asarray(_adaptive_avg_matrix(w, grid), x.dtype)
    x = jnp.einsum("ih,bhwc,jw->bijc", rows, x, cols)
  return x.reshape(b, grid * grid * c)
