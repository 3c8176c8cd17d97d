"""ResNet-50 pieces for FashionNet (torchvision v1.5 layout, stride on the 3×3):
the shared trunk (stem + conv2_x..conv4_x = layer1..layer3) and a conv5_x stage
(layer4) per branch. NHWC; BatchNorm uses batch statistics when train=True."""

import jax.numpy as jnp
from flax import nnx

from fashionnet_jax.models.landmark_pooling import cell_geometry
from fashionnet_jax.models.vgg import scaled

EXPANSION = 4
# (stage name, blocks, paper planes, stride of the first block)
STAGES = (("layer1", 3, 64, 1), ("layer2", 4, 128, 2), ("layer3", 6, 256, 2), ("layer4", 3, 512, 2))
# Where conv5_x's cells sit on the input: the stem (conv1 7×7/2 pad 3, max pool
# 3×3/2 pad 1), then each bottleneck's 1×1, 3×3 (the stage's stride, pad 1), 1×1.
# Symmetric padding centres cell j on pixel index 32·j (continuous 32·j + 0.5),
# not on 32·j + 16 as cells tiling the input would.
CONV5_CELLS = cell_geometry(
    [(7, 2, 3), (3, 2, 1)]
    + [
        layer
        for _, blocks, _, stride in STAGES
        for i in range(blocks)
        for layer in ((1, 1, 0), (3, stride if i == 0 else 1, 1), (1, 1, 0))
    ]
)


def conv(in_channels, out_channels, kernel, stride, dtype, rngs):
  pad = kernel // 2  # torch's symmetric padding; 'SAME' would pad stride-2 convs on one side only
  return nnx.Conv(
      in_channels,
      out_channels,
      (kernel, kernel),
      strides=stride,
      padding=((pad, pad), (pad, pad)),
      use_bias=False,
      dtype=dtype,
      param_dtype=jnp.float32,
      rngs=rngs,
  )


def batch_norm(channels, dtype, rngs):
  # torch momentum 0.1 == flax momentum 0.9; eps as torchvision.
  return nnx.BatchNorm(
      channels, momentum=0.9, epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32, rngs=rngs
  )


class Bottleneck(nnx.Module):
  """1×1 → 3×3 (stride) → 1×1·4, BatchNorm after each, projection shortcut when shapes change."""

  def __init__(self, in_channels, planes, stride, dtype, *, rngs: nnx.Rngs):
    out = planes * EXPANSION
    self.conv1, self.bn1 = conv(in_channels, planes, 1, 1, dtype, rngs), batch_norm(
        planes, dtype, rngs
    )
    self.conv2, self.bn2 = conv(planes, planes, 3, stride, dtype, rngs), batch_norm(
        planes, dtype, rngs
    )
    self.conv3, self.bn3 = conv(planes, out, 1, 1, dtype, rngs), batch_norm(out, dtype, rngs)
    if stride != 1 or in_channels != out:
      self.downsample_conv = conv(in_channels, out, 1, stride, dtype, rngs)
      self.downsample_bn = batch_norm(out, dtype, rngs)
    else:
      self.downsample_conv = self.downsample_bn = None

  def __call__(self, x, *, train=False):
    bn = dict(use_running_average=not train)
    y = nnx.relu(self.bn1(self.conv1(x), **bn))
    y = nnx.relu(self.bn2(self.conv2(y), **bn))
    y = self.bn3(self.conv3(y), **bn)
    if self.downsample_conv is not None:
      x = self.downsample_bn(self.downsample_conv(x), **bn)
    return nnx.relu(x + y)


class ResNetStage(nnx.Module):
  """One stage (torchvision `layerN`) of bottleneck blocks."""

  def __init__(self, in_channels, num_blocks, planes, stride, dtype, *, rngs: nnx.Rngs):
    blocks = []
    for i in range(num_blocks):
      blocks.append(Bottleneck(in_channels, planes, stride if i == 0 else 1, dtype, rngs=rngs))
      in_channels = planes * EXPANSION
    self.blocks = nnx.List(blocks)
    self.out_channels = in_channels

  def __call__(self, x, *, train=False):
    for block in self.blocks:
      x = block(x, train=train)
    return x


class ResNetTrunk(nnx.Module):
  """Stem (conv1 7×7/2, bn1, 3×3/2 max pool) + layer1..layer3: [B, S, S, 3] -> [B, S/16, S/16, 1024·w]."""

  def __init__(self, width_multiplier=1.0, dtype=jnp.float32, *, rngs: nnx.Rngs):
    stem = scaled(64, width_multiplier)
    self.conv1 = conv(3, stem, 7, 2, dtype, rngs)
    self.bn1 = batch_norm(stem, dtype, rngs)
    channels = stem
    for name, blocks, planes, stride in STAGES[:3]:
      stage = ResNetStage(
          channels, blocks, scaled(planes, width_multiplier), stride, dtype, rngs=rngs
      )
      setattr(self, name, stage)
      channels = stage.out_channels
    self.out_channels = channels

  def __call__(self, x, *, train=False, return_features=False):
    x = nnx.relu(self.bn1(self.conv1(x), use_running_average=not train))
    x = nnx.max_pool(x, window_shape=(3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    features = {}
    for name, *_ in STAGES[:3]:
      x = getattr(self, name)(x, train=train)
      features[name] = x
    return (x, features) if return_features else x


def resnet_conv5(in_channels, width_multiplier=1.0, dtype=jnp.float32, *, rngs: nnx.Rngs):
  """A branch's copy of conv5_x (layer4): [B, S/16, S/16, 1024·w] -> [B, S/32, S/32, 2048·w]."""
  _, blocks, planes, stride = STAGES[3]
  return ResNetStage(
      in_channels, blocks, scaled(planes, width_multiplier), stride, dtype, rngs=rngs
  )
