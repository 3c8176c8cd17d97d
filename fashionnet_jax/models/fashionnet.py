"""FashionNet (Liu et al., CVPR 2016): shared trunk, three conv5 branches (pose,
local, global), fusion and heads. Top-level attributes are the parameter groups
the trainer's optax.partition labels: trunk, pose_branch, local_branch,
global_branch, fusion, heads."""

import jax
import jax.numpy as jnp
from flax import nnx

from fashionnet_jax.models import resnet, vgg, xception
from fashionnet_jax.schema import BACKBONES, LANDMARK_HEADS
from fashionnet_jax.models import heatmap
from fashionnet_jax.models.activations import relu
from fashionnet_jax.models.cascade import CascadeEmbedding
from fashionnet_jax.models.embedding import l2_normalize
from fashionnet_jax.models.landmark_pooling import landmark_pool


def _linear(in_features, out_features, dtype, rngs):
  return nnx.Linear(in_features, out_features, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


class _Dense(nnx.Module):
  """fc + ReLU (+ dropout when rate > 0), the paper's fc6/fc7 layers."""

  def __init__(self, in_features, out_features, dropout_rate, dtype, *, rngs):
    self.fc = _linear(in_features, out_features, dtype, rngs)
    self.dropout = nnx.Dropout(dropout_rate, rngs=rngs) if dropout_rate > 0 else None

  def __call__(self, x, *, train=False):
    x = relu(self.fc(x))
    return self.dropout(x, deterministic=not train) if self.dropout is not None else x


def pool_conv5(backbone, conv5):
  """What fc6 sees: VGG: pool5 flattened (NHWC order); ResNet, Xception: global average pool."""
  if backbone == "vgg16":
    return vgg.pool5_flatten(conv5)
  return jnp.mean(conv5, axis=(1, 2))


def conv5_cells(backbone, image_size):
  """Where the backbone's conv5 cells sit on an input of `image_size` (height, width):
  landmark pooling picks cells by it. Xception's depend on the size (models/xception.py)."""
  if backbone == "xception":
    return xception.conv5_cells(image_size)
  return vgg.CONV5_CELLS if backbone == "vgg16" else resnet.CONV5_CELLS


class Backbone:
  """Which trunk/conv5 to build and how a branch pools conv5 for its fc6."""

  def __init__(self, config, dtype, rngs):
    self.name = config.backbone
    self.width = float(config.get("width_multiplier", 1.0))
    self.dtype, self.rngs = dtype, rngs
    if self.name not in BACKBONES:
      raise ValueError(f"config.model.backbone: unknown {self.name!r}; choose one of {BACKBONES}")

  def trunk(self):
    cls = {
        "vgg16": vgg.VGGTrunk,
        "resnet50": resnet.ResNetTrunk,
        "xception": xception.XceptionTrunk,
    }
    return cls[self.name](self.width, self.dtype, rngs=self.rngs)

  def conv5(self, in_channels):
    if self.name == "vgg16":
      return vgg.VGGConv5(in_channels, self.width, self.dtype, rngs=self.rngs)
    if self.name == "xception":
      return xception.XceptionExitFlow(in_channels, self.width, self.dtype, rngs=self.rngs)
    return resnet.resnet_conv5(in_channels, self.width, self.dtype, rngs=self.rngs)

  def pooled_dim(self, channels):
    return vgg.POOL5_GRID**2 * channels if self.name == "vgg16" else channels


class PoseBranch(nnx.Module):
  """conv5_pose → pool5 → fc6_pose → fc7_pose → visibility logits (8×2), and landmarks (8×(x, y)).

  landmark_head "regression" (the paper's): the landmarks are a sigmoid fc over fc7_pose.
  "heatmap" (models/heatmap.py): a map per landmark at stride 4 from the trunk's features,
  decoded to the same [0, 1] coordinates; fc7_pose still predicts the visibility.
  """

  def __init__(
      self,
      backbone,
      in_channels,
      fc_dim,
      num_landmarks,
      dropout_rate,
      dtype,
      *,
      rngs,
      landmark_head="regression",
  ):
    if landmark_head not in LANDMARK_HEADS:
      raise ValueError(
          f"config.model.landmark_head: unknown {landmark_head!r}; "
          f"choose one of {LANDMARK_HEADS}"
      )
    self.conv5 = backbone.conv5(in_channels)
    self.fc6_pose = _Dense(
        backbone.pooled_dim(self.conv5.out_channels), fc_dim, dropout_rate, dtype, rngs=rngs
    )
    self.fc7_pose = _Dense(fc_dim, fc_dim, dropout_rate, dtype, rngs=rngs)
    # Output layers in float32 whatever the trunk's dtype (as the Heads).
    if landmark_head == "heatmap":
      self.heatmaps = heatmap.HeatmapHead(
          in_channels, num_landmarks, backbone.width, dtype, rngs=rngs
      )
    else:
      self.landmarks = _linear(fc_dim, num_landmarks * 2, jnp.float32, rngs)
    self.visibility = _linear(fc_dim, num_landmarks * 2, jnp.float32, rngs)
    self.num_landmarks = num_landmarks
    self.landmark_head = landmark_head

  def __call__(self, trunk_features, pool, *, train=False):
    """(landmarks [B, L, 2], visibility logits [B, L, 2], maps [B, h, w, L] or None)."""
    x = pool(self.conv5(trunk_features, train=train))
    x = self.fc7_pose(self.fc6_pose(x, train=train), train=train).astype(jnp.float32)
    shape = (x.shape[0], self.num_landmarks, 2)
    visibility_logits = self.visibility(x).reshape(shape)
    if self.landmark_head == "heatmap":
      maps = self.heatmaps(trunk_features)
      return heatmap.decode_heatmaps(maps), visibility_logits, maps
    landmarks = jax.nn.sigmoid(self.landmarks(x)).reshape(shape)
    return landmarks, visibility_logits, None


class LocalBranch(nnx.Module):
  """conv5_local → landmark pooling at the predicted landmarks → flatten [B, L·C] → fc6_local."""

  def __init__(
      self,
      backbone,
      in_channels,
      fc_dim,
      num_landmarks,
      pooling_window,
      dropout_rate,
      dtype,
      *,
      rngs,
  ):
    self.conv5 = backbone.conv5(in_channels)
    self.fc6_local = _Dense(
        num_landmarks * self.conv5.out_channels, fc_dim, dropout_rate, dtype, rngs=rngs
    )
    self.pooling_window = pooling_window

  def __call__(
      self, trunk_features, landmarks, visible, *, cells=None, image_size=None, train=False
  ):
    """cells, image_size: conv5's CellGeometry and the input's (height, width) (landmark_pool)."""
    features = self.conv5(trunk_features, train=train)
    pooled = landmark_pool(
        features,
        landmarks,
        visible,
        window=self.pooling_window,
        geometry=cells,
        image_size=image_size,
    )
    return self.fc6_local(pooled.reshape(pooled.shape[0], -1), train=train)


class GlobalBranch(nnx.Module):
  """conv5_global → pool5 → fc6_global."""

  def __init__(self, backbone, in_channels, fc_dim, dropout_rate, dtype, *, rngs):
    self.conv5 = backbone.conv5(in_channels)
    self.fc6_global = _Dense(
        backbone.pooled_dim(self.conv5.out_channels), fc_dim, dropout_rate, dtype, rngs=rngs
    )

  def __call__(self, trunk_features, pool, *, train=False):
    """(fc6_global, conv5_global's feature map)."""
    conv5 = self.conv5(trunk_features, train=train)
    return self.fc6_global(pool(conv5), train=train), conv5


class Fusion(nnx.Module):
  """fc7_fusion over concat(fc6_global, fc6_local)."""

  def __init__(self, in_features, fc_dim, dropout_rate, dtype, *, rngs):
    self.fc7_fusion = _Dense(in_features, fc_dim, dropout_rate, dtype, rngs=rngs)

  def __call__(self, x, *, train=False):
    return self.fc7_fusion(x, train=train)


class Heads(nnx.Module):
  """Category logits, attribute logits and the L2-normalised retrieval embedding.

  All three compute in float32 whatever the trunk's dtype: in bf16 the 1,000
  attribute logits collapse onto a few hundred values (top-k ties then break
  toward low indices), and the embedding feeds distance comparisons. With a
  `cascade` (models/cascade.py) 'embedding_levels' [B, K, D] holds each level's
  embedding and 'embedding' their concatenation, what HDC retrieves with.
  """

  def __init__(self, fc_dim, num_categories, num_attributes, embedding_dim, *, rngs, cascade=None):
    self.category = _linear(fc_dim, num_categories, jnp.float32, rngs)
    self.attributes = _linear(fc_dim, num_attributes, jnp.float32, rngs)
    self.embedding = _linear(fc_dim, embedding_dim, jnp.float32, rngs)
    self.cascade = cascade

  def __call__(self, x, level_features=None):
    x = x.astype(jnp.float32)
    outputs = {
        "category_logits": self.category(x),
        "attribute_logits": self.attributes(x),
        "embedding": l2_normalize(self.embedding(x)),
    }
    if self.cascade is not None:
      outputs["embedding_levels"], outputs["embedding"] = self.cascade(
          level_features, outputs["embedding"]
      )
    return outputs


def embedding_width(config) -> int:
  """Columns of outputs['embedding'] for `config.model`: embedding_dim, times the number
  of cascade levels when HDC's levels are concatenated."""
  levels = tuple(config.get("cascade_levels", ()) or ())
  return int(config.get("embedding_dim", 128)) * max(len(levels), 1)


class FashionNet(nnx.Module):
  """FashionNet on a VGG-16, ResNet-50 or Xception backbone (schema.BACKBONES); see docs/design.md.

  `config` is `config.model` (backbone, width_multiplier, fc6_dim, fc6_local_dim,
  num_landmarks, num_categories, num_attributes, embedding_dim,
  use_landmark_branch, pooling_window, dropout_rate, dtype; optional
  cascade_levels: HDC's embedding depths, models/cascade.py; landmark_head: "regression"
  (default) or "heatmap", models/heatmap.py).
  """

  def __init__(self, config, *, rngs: nnx.Rngs):
    get = config.get
    self.dtype = jnp.dtype(get("dtype", "float32"))
    self.num_landmarks = get("num_landmarks", 8)
    self.use_landmark_branch = bool(get("use_landmark_branch", True))
    fc_dim, local_dim = get("fc6_dim", 4096), get("fc6_local_dim", 1024)
    dropout = float(get("dropout_rate", 0.0))
    backbone = Backbone(config, self.dtype, rngs)  # a builder; not kept on the module
    self.backbone = backbone.name
    self.trunk = backbone.trunk()
    channels = self.trunk.out_channels
    self.global_branch = GlobalBranch(backbone, channels, fc_dim, dropout, self.dtype, rngs=rngs)
    if self.use_landmark_branch:
      self.pose_branch = PoseBranch(
          backbone,
          channels,
          fc_dim,
          self.num_landmarks,
          dropout,
          self.dtype,
          rngs=rngs,
          landmark_head=get("landmark_head", "regression"),
      )
      self.local_branch = LocalBranch(
          backbone,
          channels,
          local_dim,
          self.num_landmarks,
          get("pooling_window", 3),
          dropout,
          self.dtype,
          rngs=rngs,
      )
    fusion_in = fc_dim + (local_dim if self.use_landmark_branch else 0)
    self.fusion = Fusion(fusion_in, fc_dim, dropout, self.dtype, rngs=rngs)
    levels = tuple(get("cascade_levels", ()) or ())
    cascade = (
        CascadeEmbedding(
            levels,
            {"pool4": channels, "conv5_global": self.global_branch.conv5.out_channels},
            get("embedding_dim", 128),
            rngs=rngs,
        )
        if levels
        else None
    )
    self.heads = Heads(
        fc_dim,
        get("num_categories", 50),
        get("num_attributes", 1000),
        get("embedding_dim", 128),
        rngs=rngs,
        cascade=cascade,
    )

  def pool(self, conv5):
    return pool_conv5(self.backbone, conv5)

  def __call__(self, images, *, train: bool = False):
    """images [B, H, W, 3] -> dict of landmarks, visibility_logits, category_logits,
    attribute_logits, embedding (all float32); with cascade_levels also
    embedding_levels [B, K, D] ('embedding' is then their concatenation); with
    landmark_head "heatmap" also landmark_heatmaps [B, S/4, S/4, L], which 'landmarks' decode.

    Without the landmark branch, 'landmarks' and 'visibility_logits' are constant
    zeros (no parameters, no gradient) so every variant returns the same keys.
    """
    x = self.trunk(images.astype(self.dtype), train=train)
    fc6_global, conv5_global = self.global_branch(x, self.pool, train=train)
    batch = images.shape[0]
    if self.use_landmark_branch:
      landmarks, visibility_logits, maps = self.pose_branch(x, self.pool, train=train)
      visible = jnp.argmax(visibility_logits, axis=-1) == 0
      fc6_local = self.local_branch(
          x,
          jax.lax.stop_gradient(landmarks),
          visible,
          cells=conv5_cells(self.backbone, images.shape[1:3]),
          image_size=images.shape[1:3],
          train=train,
      )
      fused = jnp.concatenate([fc6_global, fc6_local.astype(fc6_global.dtype)], axis=-1)
    else:
      landmarks = jnp.zeros((batch, self.num_landmarks, 2), jnp.float32)
      visibility_logits = jnp.zeros((batch, self.num_landmarks, 2), jnp.float32)
      fused, maps = fc6_global, None
    outputs = self.heads(
        self.fusion(fused, train=train), level_features=dict(pool4=x, conv5_global=conv5_global)
    )
    outputs.update(landmarks=landmarks, visibility_logits=visibility_logits)
    if maps is not None:
      outputs["landmark_heatmaps"] = maps
    return outputs
