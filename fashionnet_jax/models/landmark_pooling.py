"""Landmark pooling (FashionNet's local branch): max over a window of conv5 cells
around each landmark, as a gather + max (no dense [B, L, H, W] masks)."""
import jax
import jax.numpy as jnp


def landmark_cells(landmarks, height, width):
  """Cell (row, col) = (floor(y·H), floor(x·W)) of each landmark, clipped into the map.

  landmarks: [B, L, 2] (x, y) in [0, 1] of the network input; returns two int32 [B, L].
  x = 1 exactly falls on the last column (clipped), as does anything past the border.
  """
  landmarks = jax.lax.stop_gradient(landmarks).astype(jnp.float32)
  col = jnp.clip(jnp.floor(landmarks[..., 0] * width), 0, width - 1).astype(jnp.int32)
  row = jnp.clip(jnp.floor(landmarks[..., 1] * height), 0, height - 1).astype(jnp.int32)
  return row, col


def landmark_pool(features, landmarks, visible, window=3):
  """Max-pools `features` over a window×window block of cells centred on each landmark.

  Args:
    features: [B, H, W, C] feature map (conv5_local).
    landmarks: [B, L, 2] (x, y) in [0, 1] of the network input. Only used as
      integer cell indices, so no gradient reaches them.
    visible: [B, L] bool; an invisible landmark pools to zeros.
    window: odd window side in cells; cells of the window outside the map are ignored.

  Returns:
    [B, L, C] in the dtype of `features`. Autodiff of gather + max sends each
    output's gradient to the cell that holds the max (split evenly on exact ties).
  """
  if window < 1 or window % 2 != 1:
    raise ValueError(f'landmark_pool: window must be a positive odd number, got {window}')
  b, h, w, c = features.shape
  num_landmarks = landmarks.shape[1]
  row, col = landmark_cells(landmarks, h, w)
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
