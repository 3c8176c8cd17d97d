"""Analytic FLOP count of FashionNet: convolutions and fully-connected layers.

Counts 2 FLOPs per multiply-add of every conv and fc layer of the network built
from `config.model` (VGG-16, ResNet-50 or Xception backbone, any width multiplier) at a
given input size; biases, activations, pooling, landmark pooling, normalisation
and the losses are left out (well under 1% at the paper's size). A train step is
counted as 3× the forward pass (backward = gradients w.r.t. activations and
weights, each as costly as the forward), the convention of the PyTorch
reference (benchmarks/torch_reference.py), whose `flops_per_image` this matches for the paper's VGG-16 config: 36.7 GFLOP forward, 110 GFLOP per trained
image at 224 px.

  from fashionnet_jax.benchmarks import flops
  flops.train_flops_per_image(config.model, config.image_size)
"""

from __future__ import annotations

from fashionnet_jax.models import heatmap, resnet, vgg, xception


def conv_flops(out_size: int, in_channels: int, out_channels: int, kernel: int) -> int:
  """A square conv's FLOPs for one image: 2 · H_out · W_out · C_in · C_out · k²."""
  return 2 * out_size * out_size * in_channels * out_channels * kernel * kernel


def dense_flops(in_features: int, out_features: int) -> int:
  return 2 * in_features * out_features


def _strided(size: int, kernel: int, stride: int) -> int:
  """Output side of a conv/pool with torch's symmetric padding kernel // 2."""
  pad = kernel // 2
  return (size + 2 * pad - kernel) // stride + 1


def vgg_trunk(size: int, width: float):
  """(FLOPs, output side, output channels) of conv1_1..conv4_3 with pool1..pool4."""
  total, channels = 0, 3
  for layer in vgg.TRUNK_LAYERS:
    if layer == "pool":
      size //= 2
      continue
    out = vgg.scaled(layer[1], width)
    total += conv_flops(size, channels, out, 3)
    channels = out
  return total, size, channels


def vgg_conv5(size: int, in_channels: int, width: float):
  """(FLOPs, output side, output channels) of one branch's conv5_1..conv5_3."""
  total, channels = 0, in_channels
  for _, out in vgg.CONV5_LAYERS:
    out = vgg.scaled(out, width)
    total += conv_flops(size, channels, out, 3)
    channels = out
  return total, size, channels


def _bottleneck_stage(size: int, in_channels: int, blocks: int, planes: int, stride: int):
  """A torchvision v1.5 stage (stride on the 3×3, projection shortcut on the first block)."""
  total = 0
  for i in range(blocks):
    s = stride if i == 0 else 1
    out_size = _strided(size, 3, s)
    out = planes * resnet.EXPANSION
    total += conv_flops(size, in_channels, planes, 1)
    total += conv_flops(out_size, planes, planes, 3)
    total += conv_flops(out_size, planes, out, 1)
    if s != 1 or in_channels != out:
      total += conv_flops(out_size, in_channels, out, 1)
    size, in_channels = out_size, out
  return total, size, in_channels


def resnet_trunk(size: int, width: float):
  """(FLOPs, output side, output channels) of the stem and layer1..layer3."""
  stem = vgg.scaled(64, width)
  size = _strided(size, 7, 2)
  total = conv_flops(size, 3, stem, 7)
  size = _strided(size, 3, 2)  # 3×3/2 max pool
  channels = stem
  for _, blocks, planes, stride in resnet.STAGES[:3]:
    flops, size, channels = _bottleneck_stage(
        size, channels, blocks, vgg.scaled(planes, width), stride
    )
    total += flops
  return total, size, channels


def resnet_conv5(size: int, in_channels: int, width: float):
  _, blocks, planes, stride = resnet.STAGES[3]
  return _bottleneck_stage(size, in_channels, blocks, vgg.scaled(planes, width), stride)


def separable_flops(size: int, in_channels: int, out_channels: int) -> int:
  """A 3×3 'same' separable conv: depthwise 3×3 per input channel, then pointwise 1×1."""
  return conv_flops(size, 1, in_channels, 3) + conv_flops(size, in_channels, out_channels, 1)


def _xception_blocks(size: int, channels: int, specs, width: float):
  """(FLOPs, side, channels) of Xception blocks (models/xception.py's specs)."""
  total = 0
  for _, outs, downsample, _ in specs:
    block_in = channels
    for out in outs:
      out = vgg.scaled(out, width)
      total += separable_flops(size, channels, out)
      channels = out
    if downsample:  # 3×3/2 'same' max pool and the 1×1/2 shortcut conv
      size = (size + 1) // 2
      total += conv_flops(size, block_in, channels, 1)
  return total, size, channels


def xception_trunk(size: int, width: float):
  """(FLOPs, output side, output channels) of the entry and middle flow."""
  c1, c2 = vgg.scaled(32, width), vgg.scaled(64, width)
  size = (size - 3) // 2 + 1  # block1_conv1, 3×3/2 'valid'
  total = conv_flops(size, 3, c1, 3)
  size -= 2  # block1_conv2, 3×3 'valid'
  total += conv_flops(size, c1, c2, 3)
  flops, size, channels = _xception_blocks(
      size, c2, xception.ENTRY_BLOCKS + xception.MIDDLE_BLOCKS, width
  )
  return total + flops, size, channels


def xception_conv5(size: int, in_channels: int, width: float):
  """(FLOPs, output side, output channels) of one branch's exit flow."""
  total, size, channels = _xception_blocks(size, in_channels, (xception.EXIT_BLOCK,), width)
  for _, out in xception.EXIT_CONVS:
    out = vgg.scaled(out, width)
    total += separable_flops(size, channels, out)
    channels = out
  return total, size, channels


_BACKBONES = {
    "vgg16": (vgg_trunk, vgg_conv5),
    "resnet50": (resnet_trunk, resnet_conv5),
    "xception": (xception_trunk, xception_conv5),
}


def _backbone(model_config, image_size: int):
  """(trunk FLOPs, trunk side, trunk channels, conv5 FLOPs, conv5 side, conv5 channels)."""
  backbone = model_config.get("backbone", "vgg16")
  if backbone not in _BACKBONES:
    raise ValueError(f"config.model.backbone: unknown {backbone!r}")
  trunk_fn, conv5_fn = _BACKBONES[backbone]
  width = float(model_config.get("width_multiplier", 1.0))
  trunk, size, channels = trunk_fn(image_size, width)
  return (trunk, size, channels) + conv5_fn(size, channels, width)


def heatmap_head_flops(trunk_side: int, trunk_channels: int, landmarks: int, width: float) -> int:
  """models/heatmap.HeatmapHead: two 3×3 convs on the trunk's map, two 4×4/2 transposed
  convs (each input cell scattered over 4×4 outputs), the 1×1 map layer."""
  c = vgg.scaled(heatmap.HEAD_CHANNELS, width)
  total = conv_flops(trunk_side, trunk_channels, c, 3) + conv_flops(trunk_side, c, c, 3)
  side = trunk_side
  for _ in range(2):
    total += conv_flops(side, c, c, 4)
    side *= 2
  return total + conv_flops(side, c, landmarks, 1)


def forward_flops_per_image(model_config, image_size: int) -> dict[str, int]:
  """Forward FLOPs of one image, by part of the network, and their 'total'."""
  get = model_config.get
  fc_dim, local_dim = int(get("fc6_dim", 4096)), int(get("fc6_local_dim", 1024))
  landmarks = int(get("num_landmarks", 8))
  use_landmarks = bool(get("use_landmark_branch", True))
  trunk, trunk_side, trunk_channels, conv5, _, c5 = _backbone(model_config, image_size)
  # VGG: pool5 resampled to 7×7, flattened; ResNet, Xception: global average pool.
  pooled = vgg.POOL5_GRID**2 * c5 if get("backbone", "vgg16") == "vgg16" else c5
  parts = dict(trunk=trunk, global_branch=conv5 + dense_flops(pooled, fc_dim))
  if use_landmarks:
    parts["pose_branch"] = (
        conv5
        + dense_flops(pooled, fc_dim)
        + dense_flops(fc_dim, fc_dim)
        + 2 * dense_flops(fc_dim, landmarks * 2)
    )
    if get("landmark_head", "regression") == "heatmap":  # maps in place of the landmark fc
      parts["pose_branch"] += heatmap_head_flops(
          trunk_side, trunk_channels, landmarks, float(get("width_multiplier", 1.0))
      ) - dense_flops(fc_dim, landmarks * 2)
    parts["local_branch"] = conv5 + dense_flops(landmarks * c5, local_dim)
  fusion_in = fc_dim + (local_dim if use_landmarks else 0)
  parts["fusion"] = dense_flops(fusion_in, fc_dim)
  parts["heads"] = dense_flops(
      fc_dim,
      int(get("num_categories", 50))
      + int(get("num_attributes", 1000))
      + int(get("embedding_dim", 128)),
  )
  parts["total"] = sum(parts.values())
  return parts


def train_flops_per_image(model_config, image_size: int) -> int:
  """FLOPs of one trained image: forward + backward = 3 × forward."""
  return 3 * forward_flops_per_image(model_config, image_size)["total"]


def conv5_shape(model_config, image_size: int) -> tuple[int, int]:
  """(side, channels) of a branch's conv5 map: what landmark pooling reads."""
  _, _, _, _, size, channels = _backbone(model_config, image_size)
  return size, channels
