"""Xception pieces for FashionNet (Chollet, CVPR 2017), as keras.applications.Xception
builds it: the shared trunk (entry flow + middle flow) and an exit flow per branch.
NHWC; BatchNorm with Keras' epsilon 1e-3 and momentum 0.99 (batch statistics when
train=True); layer names are Keras' (block1_conv1, block2/sepconv1, ...), so the
weight import (models/pretrained.py) maps one to the other by name.

Where FashionNet is cut. ResNet-50 shares stages 1-3 and gives each branch its own
stage 4, the last stride-2 stage (models/resnet.py). Xception's matching cut is
between the middle and the exit flow: the trunk (`XceptionTrunk`: block1's two
'valid' convs, blocks 2-4 down to stride 16, the eight 728-channel middle blocks)
ends at stride 16 with 728·w channels, where ResNet's layer3 ends with 1024; each
branch gets its own exit flow (`XceptionExitFlow`: block13's separable convs, 3×3/2
max pool and 1×1/2 shortcut, block14's 1536 and 2048 separable convs), stride 32,
2048·w channels, what VGG's conv5_3 and ResNet's layer4 are to FashionNet. The pose
and global branches average-pool it for fc6 (as ResNet's), the local branch
landmark-pools it. The middle flow is not split: a stride-16 stage with an identity
shortcut, it is the trunk's bulk (13 of the trunk's 14 M parameters).

Keras' padding. The separable convs are 3×3 'same' at stride 1 (one pixel each
side), block1's convs 'valid'. A 3×3/2 'same' max pool pads a map of even side 0
before and 1 after, an odd one 1 and 1, so where the exit flow's cells sit on the
input depends on the input's side (`conv5_cells`). The 1×1/2 shortcut convs pad
nothing and sample a window's first position; on an even map the max pool's window
is centred one position later. `conv5_cells` follows the separable-conv path, which
holds the receptive field; the shortcut adds a one-pixel sample of the previous map.
"""

import jax.numpy as jnp
from flax import nnx

from fashionnet_jax.models.landmark_pooling import cell_geometry
from fashionnet_jax.models.vgg import scaled

# (block, Keras output channels of its separable convs, stride 2 with a conv shortcut,
# ReLU before its first separable conv). Block 2 follows block1_conv2's ReLU.
ENTRY_BLOCKS = (
    ("block2", (128, 128), True, False),
    ("block3", (256, 256), True, True),
    ("block4", (728, 728), True, True),
)
MIDDLE_BLOCKS = tuple((f"block{i}", (728, 728, 728), False, True) for i in range(5, 13))
EXIT_BLOCK = ("block13", (728, 1024), True, True)
EXIT_CONVS = (("block14_sepconv1", 1536), ("block14_sepconv2", 2048))
# Keras' BatchNormalization defaults; flax's momentum is the same running-average weight.
BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3


def conv(in_channels, out_channels, kernel, stride, dtype, rngs):
  """A bias-free 'valid' conv: block1's 3×3 and the 1×1/2 shortcuts (Keras' 'same' pads those by nothing)."""
  return nnx.Conv(
      in_channels,
      out_channels,
      (kernel, kernel),
      strides=stride,
      padding="VALID",
      use_bias=False,
      dtype=dtype,
      param_dtype=jnp.float32,
      rngs=rngs,
  )


def batch_norm(channels, dtype, rngs):
  return nnx.BatchNorm(
      channels,
      momentum=BN_MOMENTUM,
      epsilon=BN_EPSILON,
      dtype=dtype,
      param_dtype=jnp.float32,
      rngs=rngs,
  )


class SeparableConv(nnx.Module):
  """Keras' SeparableConv2D, 3×3 'same', depth multiplier 1, no bias: depthwise 3×3, then pointwise 1×1."""

  def __init__(self, in_channels, out_channels, dtype, *, rngs: nnx.Rngs):
    self.depthwise = nnx.Conv(
        in_channels,
        in_channels,
        (3, 3),
        padding=((1, 1), (1, 1)),
        feature_group_count=in_channels,
        use_bias=False,
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )
    self.pointwise = nnx.Conv(
        in_channels,
        out_channels,
        (1, 1),
        use_bias=False,
        dtype=dtype,
        param_dtype=jnp.float32,
        rngs=rngs,
    )

  def __call__(self, x):
    return self.pointwise(self.depthwise(x))


class XceptionBlock(nnx.Module):
  """Blocks 2-13: ([ReLU] → separable conv → BatchNorm) per conv; a stride-2 block then
  max-pools 3×3/2 'same' and adds a 1×1/2 conv + BatchNorm shortcut of its input, a
  middle-flow block adds its input."""

  def __init__(self, in_channels, channels, downsample, relu_first, dtype, *, rngs: nnx.Rngs):
    c = in_channels
    for i, out in enumerate(channels, 1):
      setattr(self, f"sepconv{i}", SeparableConv(c, out, dtype, rngs=rngs))
      setattr(self, f"sepconv{i}_bn", batch_norm(out, dtype, rngs))
      c = out
    if downsample:
      self.residual = conv(in_channels, c, 1, 2, dtype, rngs)
      self.residual_bn = batch_norm(c, dtype, rngs)
    else:
      self.residual = self.residual_bn = None
    self.num_convs, self.relu_first, self.out_channels = len(channels), relu_first, c

  def __call__(self, x, *, train=False):
    bn = dict(use_running_average=not train)
    y = x
    for i in range(1, self.num_convs + 1):
      if i > 1 or self.relu_first:
        y = nnx.relu(y)
      y = getattr(self, f"sepconv{i}_bn")(getattr(self, f"sepconv{i}")(y), **bn)
    if self.residual is None:
      return y + x
    y = nnx.max_pool(y, window_shape=(3, 3), strides=(2, 2), padding="SAME")
    return y + self.residual_bn(self.residual(x), **bn)


def _blocks(module, specs, in_channels, width_multiplier, dtype, rngs):
  """Adds each (name, channels, downsample, relu_first) block to `module`; returns the channels out."""
  for name, channels, downsample, relu_first in specs:
    block = XceptionBlock(
        in_channels,
        tuple(scaled(c, width_multiplier) for c in channels),
        downsample,
        relu_first,
        dtype,
        rngs=rngs,
    )
    setattr(module, name, block)
    in_channels = block.out_channels
  return in_channels


class XceptionTrunk(nnx.Module):
  """Entry + middle flow: [B, S, S, 3] -> [B, ~S/16, ~S/16, 728·w] (block1's convs are 'valid')."""

  def __init__(self, width_multiplier=1.0, dtype=jnp.float32, *, rngs: nnx.Rngs):
    c1, c2 = scaled(32, width_multiplier), scaled(64, width_multiplier)
    self.block1_conv1, self.block1_conv1_bn = conv(3, c1, 3, 2, dtype, rngs), batch_norm(
        c1, dtype, rngs
    )
    self.block1_conv2, self.block1_conv2_bn = conv(c1, c2, 3, 1, dtype, rngs), batch_norm(
        c2, dtype, rngs
    )
    self.out_channels = _blocks(
        self, ENTRY_BLOCKS + MIDDLE_BLOCKS, c2, width_multiplier, dtype, rngs
    )

  def __call__(self, x, *, train=False, return_features=False):
    """With return_features, also {block name: its output} ('block1' after conv2's ReLU)."""
    bn = dict(use_running_average=not train)
    x = nnx.relu(self.block1_conv1_bn(self.block1_conv1(x), **bn))
    x = nnx.relu(self.block1_conv2_bn(self.block1_conv2(x), **bn))
    features = {"block1": x}
    for name, *_ in ENTRY_BLOCKS + MIDDLE_BLOCKS:
      x = getattr(self, name)(x, train=train)
      features[name] = x
    return (x, features) if return_features else x


class XceptionExitFlow(nnx.Module):
  """A branch's exit flow: [B, ~S/16, ~S/16, 728·w] -> [B, ~S/32, ~S/32, 2048·w], after its last ReLU."""

  def __init__(self, in_channels, width_multiplier=1.0, dtype=jnp.float32, *, rngs: nnx.Rngs):
    c = _blocks(self, (EXIT_BLOCK,), in_channels, width_multiplier, dtype, rngs)
    for name, channels in EXIT_CONVS:
      out = scaled(channels, width_multiplier)
      setattr(self, name, SeparableConv(c, out, dtype, rngs=rngs))
      setattr(self, f"{name}_bn", batch_norm(out, dtype, rngs))
      c = out
    self.out_channels = c

  def __call__(self, x, *, train=False):
    x = self.block13(x, train=train)
    for name, _ in EXIT_CONVS:  # block14: separable conv → BatchNorm → ReLU, twice
      x = nnx.relu(
          getattr(self, f"{name}_bn")(getattr(self, name)(x), use_running_average=not train)
      )
    return x


def _cells_1d(side):
  """The exit flow's CellGeometry along one input side of `side` pixels."""
  same_3x3 = (3, 1, 1)
  layers = [(3, 2, 0), (3, 1, 0)]  # block1_conv1, block1_conv2: 'valid'
  side = (side - 3) // 2 + 1 - 2
  for _, channels, downsample, _ in ENTRY_BLOCKS + MIDDLE_BLOCKS + (EXIT_BLOCK,):
    layers += [same_3x3] * len(channels)
    if downsample:  # 3×3/2 'same' max pool: 0 before on an even side, 1 on an odd one
      layers.append((3, 2, side % 2))
      side = (side + 1) // 2
  return cell_geometry(layers + [same_3x3] * len(EXIT_CONVS))


def conv5_cells(image_size):
  """Where the exit flow's cells sit on an input of `image_size` (height, width) pixels.

  Keras' 'same' max pools make it depend on the side's parity at each stride-2
  block (at 224 px: stride 32, cell j centred at 32·j + 27.5; at 299: 32·j + 7.5).

  Raises:
    ValueError: height and width give different centres (CellGeometry has one for both).
  """
  height, width = (int(s) for s in image_size)
  cells = _cells_1d(height)
  if _cells_1d(width) != cells:
    raise ValueError(
        f"xception: an input of {height}x{width} px puts its cells at different offsets "
        f"along height and width ({cells.offset} vs {_cells_1d(width).offset}); use a square input"
    )
  return cells
