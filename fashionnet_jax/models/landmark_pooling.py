"""Landmark pooling (FashionNet's local branch): max over a window of conv5 cells
around each landmark, as a gather + max (no dense [B, L, H, W] masks).

Which cell holds a landmark comes from where the backbone's conv5 cells sit on
the input (`CellGeometry`, declared by models/vgg.py and models/resnet.py):
the cell whose centre is nearest. Landmarks are continuous coordinates of the
input normalised by its size, pixel-centre convention (pixel p spans [p, p + 1),
its centre is p + 0.5; data/transforms.py).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class CellGeometry(NamedTuple):
  """Where a feature map's cells sit on the network input.

  Cell j is centred at `offset + stride·j` input pixels in continuous
  coordinates (pixel p spans [p, p + 1)): the centroid of its receptive field.
  """

  stride: float
  offset: float


def cell_geometry(layers):
  """The CellGeometry at the end of a chain of (kernel, stride, padding_before) layers.

  An output cell i of one layer is centred on input cell `(k - 1)/2 - pad + s·i`
  (symmetric kernels); composing the chain from the input pixels (stride 1,
  pixel 0 centred at 0.5) gives the centre of cell 0 and the total stride.
  """
  stride, offset = 1, 0.5
  for kernel, step, pad in layers:
    offset += stride * ((kernel - 1) / 2 - pad)
    stride *= step
  return CellGeometry(float(stride), float(offset))


def landmark_cells(landmarks, height, width, geometry=None, image_size=None):
  """Cell (row, col) of each landmark: the cell whose centre is nearest, clipped into the map.

  Args:
    landmarks: [B, L, 2] (x, y) in [0, 1] of the network input (continuous, pixel-centre).
    height, width: the feature map's size in cells.
    geometry: the map's CellGeometry; None = cells tiling the input evenly
      ((floor(y·H), floor(x·W)), VGG's cells when the input side is a multiple of 16).
    image_size: (height, width) of the network input in pixels; needed with `geometry`.

  Returns:
    Two int32 [B, L]. Anything past the border falls on the nearest edge cell.
  """
  landmarks = jax.lax.stop_gradient(landmarks).astype(jnp.float32)
  if geometry is None:
    col = jnp.floor(landmarks[..., 0] * width)
    row = jnp.floor(landmarks[..., 1] * height)
  else:
    if image_size is None:
      raise ValueError("landmark_cells: a cell geometry needs the input image_size (height, width)")
    stride, offset = geometry
    # Nearest centre: round((u - offset) / stride) with u in input pixels (ties go up).
    col = jnp.floor((landmarks[..., 0] * image_size[1] - offset) / stride + 0.5)
    row = jnp.floor((landmarks[..., 1] * image_size[0] - offset) / stride + 0.5)
  col = jnp.clip(col, 0, width - 1).astype(jnp.int32)
  row = jnp.clip(row, 0, height - 1).astype(jnp.int32)
  return row, col


def landmark_pool(features, landmarks, visible, window=3, geometry=None, image_size=None):
  """Max-pools `features` over a window×window block of cells centred on each landmark.

  Args:
    features: [B, H, W, C] feature map (conv5_local).
    landmarks: [B, L, 2] (x, y) in [0, 1] of the network input. Only used as
      integer cell indices, so no gradient reaches them.
    visible: [B, L] bool; an invisible landmark pools to zeros.
    window: odd window side in cells; cells of the window outside the map are ignored.
    geometry, image_size: where the cells sit on the input (see `landmark_cells`).

  Returns:
    [B, L, C] in the dtype of `features`. Autodiff of gather + max sends each
    output's gradient to the cell that holds the max (split evenly on exact ties).
  """
  if window < 1 or window % 2 != 1:
    raise ValueError(f"landmark_pool: window must be a positive odd number, got {window}")
  b, h, w, c = features.shape
  num_landmarks = landmarks.shape[1]
  row, col = landmark_cells(landmarks, h, w, geometry, image_size)
  offsets = jnp.arange(window, dtype=jnp.int32) - window // 2
  rows = row[:, :, None, None] + offsets[:, None]  # [B, L, k, 1]
  cols = col[:, :, None, None] + offsets[None, :]  # [B, L, 1, k]
  inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # [B, L, k, k]
  flat_index = jnp.clip(rows, 0, h - 1) * w + jnp.clip(cols, 0, w - 1)
  flat_index = flat_index.reshape(b, num_landmarks * window * window, 1)
  # One gather of L·k² rows of C contiguous channels per example.
  cells = jnp.take_along_axis(features.reshape(b, h * w, c), flat_index, axis=1)
  cells = cells.reshape(b, num_landmarks, window * window, c)
  inside = inside.reshape(b, num_landmarks, window * window, 1)
  # The centre cell is always inside, so the max never sees only -inf.
  pooled = jnp.max(jnp.where(inside, cells, -jnp.inf), axis=2)
  return jnp.where(visible[..., None], pooled, jnp.zeros((), features.dtype))
