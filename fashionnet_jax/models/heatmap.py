"""The heatmap landmark head (`config.model.landmark_head="heatmap"`): maps, targets, decoding.

Beside the paper's regression (fc7_pose -> 8 sigmoid (x, y)), FashionNet's pose branch can
predict one map per landmark slot, as the later DeepFashion landmark detectors do (Liu & Lu,
ECCVW18, fdjingyuan/Deep-Fashion-Analysis-ECCV2018 `src/lm_networks.py`; GLE, ICCVW19,
suminlee94/GLE_FLD `models.py`), with the pose-estimation practice those heads lack:

- **Head** (`HeatmapHead`): from the trunk's output, the map every branch sees (VGG pool4,
  stride 16 at any backbone): two 3x3 convolutions, then two 4x4 stride-2 transposed
  convolutions (centre-aligned: an input cell's centre is the mean of its two output cells'),
  each + ReLU, to stride `HEATMAP_STRIDE` = 4 (56x56 at 224 px, 16x16 at the demo's 64), and a
  1x1 float32 layer, one map per slot. The published heads start from conv4_3 (stride 8) and
  go to full resolution; stride 4 with sub-pixel decoding is as exact for a quarter of the
  memory (mmpose's and HRNet's stride). Visibility stays fc7_pose's (`fashionnet.PoseBranch`).
- **Targets** (`gaussian_targets`): a unit-peak Gaussian exp(-d² / 2σ²) per visible landmark,
  σ = `config.loss.heatmap_sigma` map cells (2, mmpose's at stride 4), centred at the
  landmark's continuous position in the pixel-centre convention of data/transforms.py (cell
  j of an M-cell map covers [j, j + 1) / M, centre (j + 0.5) / M); other slots all zero. Built
  inside the compiled step from the batch's landmarks, so crops and flips need nothing new.
  The published targets, exp(-0.5·d / R) of the distance d (not d²), are Laplacian-shaped.
- **Loss** (`training/losses.heatmap_loss`): squared error summed over a visible landmark's
  map cells, over πσ² (the energy of a unit-peak Gaussian, Σ g² ≈ πσ²), summed over visible
  slots, averaged over examples: the regression loss's structure, an all-zero map costing
  ~1 per landmark at any map size or σ. The published mean over every cell of every slot
  (masked ones counted as zeros) shrinks with the map (1/250 of this at 56x56, σ = 2), which
  they offset with loss weights of 10-100. Invisible, truncated and unused slots give nothing.
- **Decoding** (`decode_heatmaps`): argmax, then per axis a parabola through the log of the
  peak and its two neighbours (the window moved inward at the map's edge), its vertex clipped
  to the peak's cell. The log of a Gaussian is exactly quadratic, so a Gaussian's centre is
  recovered exactly, at the borders too; a soft-argmax is pulled inward by a map's truncation
  and its background, the quarter-offset rule leaves up to 1/4 cell. Not differentiable, as
  nothing needs it: the loss is on the maps and landmark pooling stops the gradient.
- **Flip test** (`flip_average`, `config.eval_flip_test`): the maps of the mirrored image,
  mirrored back with left/right slots swapped (schema.FLIP_PERMUTATION, data/transforms.py's
  pairing), averaged with the image's own before decoding; the regression's coordinates are
  averaged the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fashionnet_jax.models import vgg
from fashionnet_jax.models.activations import relu
from fashionnet_jax.schema import FLIP_PERMUTATION, VISIBLE

# Input pixels per map cell; the trunk's output is at 16: two 2x upsamplings.
HEATMAP_STRIDE = 4
TRUNK_STRIDE = 16
HEAD_CHANNELS = 256  # at width 1 (SimpleBaseline's deconvolution width)
HEATMAP_SIGMA = 2.0  # the targets' sigma in map cells (config.loss.heatmap_sigma)

_FLIP = np.array(FLIP_PERMUTATION)
# Below it a map value reads as nothing: log() of it stays finite.
_LOG_FLOOR = 1e-10


class HeatmapHead(nnx.Module):
  """Trunk features [B, S/16, S/16, C] -> float32 maps [B, S/4, S/4, num_landmarks]."""

  def __init__(self, in_channels, num_landmarks, width_multiplier, dtype, *, rngs):
    width = vgg.scaled(HEAD_CHANNELS, width_multiplier)
    self.conv1 = vgg.conv3x3(in_channels, width, dtype, rngs)
    self.conv2 = vgg.conv3x3(width, width, dtype, rngs)
    upsample = lambda: nnx.ConvTranspose(
        width,
        width,
        (4, 4),
        strides=(2, 2),
        padding="SAME",
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )
    self.upconv1, self.upconv2 = upsample(), upsample()
    # Float32 whatever the trunk's dtype: the maps are regressed to 1e-3 and decoded.
    self.maps = nnx.Conv(
        width, num_landmarks, (1, 1), dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs
    )

  def __call__(self, x):
    for layer in (self.conv1, self.conv2, self.upconv1, self.upconv2):
      x = relu(layer(x))
    return self.maps(x.astype(jnp.float32))


def map_size(image_size: int) -> int:
  """Cells per side of the maps at `image_size` input pixels."""
  return int(image_size) // TRUNK_STRIDE * (TRUNK_STRIDE // HEATMAP_STRIDE)


def _centres(n: int) -> jax.Array:
  return jnp.arange(n, dtype=jnp.float32) + 0.5


def gaussian_targets(landmarks, visibility, shape, sigma) -> jax.Array:
  """[B, h, w, L] float32: exp(-d² / 2σ²) around each visible landmark, zeros elsewhere.

  landmarks [B, L, 2] (x, y) in [0, 1] of the input (pixel-centre convention); visibility
  [B, L]; shape (h, w) of the map; sigma in map cells. d is in map cells.
  """
  h, w = shape
  xy = jnp.asarray(landmarks, jnp.float32) * jnp.array([w, h], jnp.float32)
  dx = _centres(w)[None, None, :] - xy[..., 0:1]  # [B, L, w]
  dy = _centres(h)[None, None, :] - xy[..., 1:2]  # [B, L, h]
  scale = -0.5 / jnp.square(jnp.float32(sigma))
  # Separable: exp(a + b) = exp(a) * exp(b), an outer product per slot.
  maps = (
      jnp.exp(scale * jnp.square(dy))[..., :, None] * jnp.exp(scale * jnp.square(dx))[..., None, :]
  )
  visible = (jnp.asarray(visibility) == VISIBLE).astype(jnp.float32)
  return jnp.moveaxis(maps * visible[..., None, None], 1, -1)


def _subpixel(line, peak):
  """Sub-cell position of a 1-D peak: [..., n] values, [...] argmax -> [...] in cells.

  The vertex of the parabola through the log of three neighbouring values (the window at
  [1, n - 2] so that a peak on the edge has two neighbours), clipped to the peak's cell.
  """
  n = line.shape[-1]
  peak_f = peak.astype(jnp.float32)
  if n < 3:
    return peak_f
  k = jnp.clip(peak, 1, n - 2)
  three = jnp.take_along_axis(line, k[..., None] + jnp.arange(-1, 2), axis=-1)
  a, b, c = jnp.moveaxis(jnp.log(jnp.maximum(three, _LOG_FLOOR)), -1, 0)
  curvature = a - 2.0 * b + c
  concave = curvature < 0
  vertex = k + 0.5 * (a - c) / jnp.where(concave, curvature, -1.0)
  return peak_f + jnp.where(concave, jnp.clip(vertex - peak_f, -0.5, 0.5), 0.0)


def decode_heatmaps(heatmaps) -> jax.Array:
  """[B, h, w, L] maps -> [B, L, 2] (x, y) in [0, 1] of the input (pixel-centre convention).

  Argmax, then each axis refined by `_subpixel` along the peak's row and column.
  """
  maps = jnp.moveaxis(jax.lax.stop_gradient(jnp.asarray(heatmaps, jnp.float32)), -1, 1)
  b, l, h, w = maps.shape
  flat = jnp.argmax(maps.reshape(b, l, h * w), axis=-1)
  row, col = flat // w, flat % w
  rows = jnp.take_along_axis(maps, row[..., None, None], axis=2)[..., 0, :]  # [B, L, w]
  cols = jnp.take_along_axis(maps, col[..., None, None], axis=3)[..., 0]  # [B, L, h]
  x = (_subpixel(rows, col) + 0.5) / w
  y = (_subpixel(cols, row) + 0.5) / h
  return jnp.stack([x, y], axis=-1)


def flip_heatmaps(heatmaps) -> jax.Array:
  """Maps of a mirrored image -> the original's: columns reversed, left/right slots swapped."""
  return jnp.asarray(heatmaps)[:, :, ::-1][..., _FLIP]


def flip_landmark_batch(landmarks) -> jax.Array:
  """[B, L, 2] of a mirrored image -> the original's: x -> 1 - x, left/right slots swapped."""
  landmarks = jnp.asarray(landmarks)[:, _FLIP]
  return landmarks * jnp.array([-1.0, 1.0]) + jnp.array([1.0, 0.0])


def flip_average(outputs, flipped) -> dict:
  """The flip test: `outputs` with the landmarks (and maps, visibility logits) averaged with
  those of the mirrored image (`flipped`), mirrored back; the rest is `outputs`' own.

  With maps, the averaged maps are decoded; otherwise the regressed coordinates are averaged.
  """
  averaged = dict(outputs)
  averaged["visibility_logits"] = 0.5 * (
      outputs["visibility_logits"] + flipped["visibility_logits"][:, _FLIP]
  )
  if "landmark_heatmaps" in outputs:
    maps = 0.5 * (outputs["landmark_heatmaps"] + flip_heatmaps(flipped["landmark_heatmaps"]))
    averaged.update(landmark_heatmaps=maps, landmarks=decode_heatmaps(maps))
  else:
    averaged["landmarks"] = 0.5 * (outputs["landmarks"] + flip_landmark_batch(flipped["landmarks"]))
  return averaged
