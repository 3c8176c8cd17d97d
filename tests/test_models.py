"""FashionNet outputs, parameter groups and count, and where gradients flow."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from fashionnet_jax.training import losses
from fashionnet_jax.models import FashionNet, create_model

IMAGE = 32


def tiny_config(**overrides):
  config = ml_collections.ConfigDict(
      dict(
          backbone="vgg16",
          width_multiplier=1 / 16,
          fc6_dim=32,
          fc6_local_dim=16,
          num_landmarks=8,
          num_categories=5,
          num_attributes=7,
          embedding_dim=8,
          use_landmark_branch=True,
          pooling_window=3,
          dropout_rate=0.0,
          dtype="float32",
      )
  )
  config.update(overrides)
  return config


@functools.lru_cache(maxsize=None)
def _build(items):
  # 'rbg' keys: same model, but far cheaper per-parameter init on a 2-core CPU.
  return FashionNet(tiny_config(**dict(items)), rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))


def build(**overrides):
  """Tiny FashionNet, built once per configuration for the whole module."""
  return _build(tuple(sorted(overrides.items())))


def images(batch=2, seed=0):
  return jax.random.normal(jax.random.key(seed), (batch, IMAGE, IMAGE, 3))


@nnx.jit(static_argnames="train")
def forward(model, x, train=False):
  return model(x, train=train)


@pytest.mark.parametrize(
    "backbone,dtype,use_landmark_branch",
    [
        ("vgg16", "float32", True),
        ("vgg16", "bfloat16", False),
        ("resnet50", "bfloat16", True),
        ("resnet50", "float32", False),
    ],
)
def test_output_shapes_dtypes_and_groups(backbone, dtype, use_landmark_branch):
  model = build(backbone=backbone, dtype=dtype, use_landmark_branch=use_landmark_branch)
  out = forward(model, images(batch=3))
  want = {
      "landmarks": (3, 8, 2),
      "visibility_logits": (3, 8, 2),
      "category_logits": (3, 5),
      "attribute_logits": (3, 7),
      "embedding": (3, 8),
  }
  assert {k: v.shape for k, v in out.items()} == want
  assert all(v.dtype == jnp.float32 for v in out.values())
  assert all(np.all(np.isfinite(v)) for v in out.values())
  np.testing.assert_allclose(np.linalg.norm(out["embedding"], axis=-1), 1.0, rtol=1e-5)
  assert np.all((out["landmarks"] >= 0) & (out["landmarks"] <= 1))
  params = nnx.state(model, nnx.Param)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  groups = {"trunk", "global_branch", "fusion", "heads"}
  if use_landmark_branch:
    groups |= {"pose_branch", "local_branch"}
  assert set(params.to_pure_dict()) == groups
  # Compute dtype reaches every conv and fc but the output layers, which are float32.
  outputs = [model.heads.embedding, model.heads.category, model.heads.attributes]
  if use_landmark_branch:
    outputs += [model.pose_branch.landmarks, model.pose_branch.visibility]
  layers = [m for _, m in nnx.iter_graph(model) if isinstance(m, (nnx.Conv, nnx.Linear))]
  assert {m.dtype for m in layers if all(m is not o for o in outputs)} == {jnp.dtype(dtype)}
  assert {jnp.dtype(m.dtype) for m in outputs} == {jnp.dtype(jnp.float32)}


def test_bf16_trunk_keeps_1000_distinct_attribute_scores():
  # In bf16 the 1,000 attribute logits would collapse onto a few hundred values and
  # top-k ties would break toward low attribute indices (biasing attribute recall).
  model = build(dtype="bfloat16", num_attributes=1000)
  out = forward(model, images(batch=2))
  for row in np.asarray(out["attribute_logits"]):
    assert len(np.unique(row)) > 990


def test_fusion_input_width_follows_the_ablation():
  full = nnx.eval_shape(lambda: create_model(tiny_config()))
  ablated = nnx.eval_shape(lambda: create_model(tiny_config(use_landmark_branch=False)))
  assert full.fusion.fc7_fusion.fc.kernel.shape == (32 + 16, 32)
  assert ablated.fusion.fc7_fusion.fc.kernel.shape == (32, 32)


def conv(k, cin, cout):
  return k * k * cin * cout + cout


def fc(n_in, n_out):
  return n_in * n_out + n_out


def test_vgg16_parameter_count_at_paper_widths():
  config = ml_collections.ConfigDict(
      dict(backbone="vgg16", width_multiplier=1.0)
  )  # defaults elsewhere
  model = nnx.eval_shape(lambda: FashionNet(config, rngs=nnx.Rngs(0)))
  trunk = (
      conv(3, 3, 64)
      + conv(3, 64, 64)
      + conv(3, 64, 128)
      + conv(3, 128, 128)
      + conv(3, 128, 256)
      + 2 * conv(3, 256, 256)
      + conv(3, 256, 512)
      + 2 * conv(3, 512, 512)
  )
  conv5 = 3 * conv(3, 512, 512)
  pool5 = 7 * 7 * 512
  pose = conv5 + fc(pool5, 4096) + fc(4096, 4096) + fc(4096, 16) + fc(4096, 16)
  local = conv5 + fc(8 * 512, 1024)
  global_ = conv5 + fc(pool5, 4096)
  fusion = fc(4096 + 1024, 4096)
  heads = fc(4096, 50) + fc(4096, 1000) + fc(4096, 128)
  counts = {
      k: sum(p.size for p in jax.tree.leaves(v))
      for k, v in nnx.state(model, nnx.Param).to_pure_dict().items()
  }
  assert counts == {
      "trunk": trunk,
      "pose_branch": pose,
      "local_branch": local,
      "global_branch": global_,
      "fusion": fusion,
      "heads": heads,
  }
  assert trunk == 7_635_264  # torchvision vgg16 features[:24]


def test_width_multiplier_rounds_with_minimum_eight():
  model = nnx.eval_shape(lambda: create_model(tiny_config(width_multiplier=1 / 16)))
  assert model.trunk.conv1_1.kernel.shape == (3, 3, 3, 8)  # 64/16 = 4 -> 8
  assert model.trunk.conv4_3.kernel.shape == (3, 3, 32, 32)
  assert model.local_branch.fc6_local.fc.kernel.shape == (8 * 32, 16)


def test_gradients_stop_at_the_predicted_landmarks():
  """Category loss trains trunk/local/global/fusion/heads but not the pose branch:
  the local branch pools at stop_gradient(landmarks) with argmax visibility."""
  model = build()
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = images(batch=4)

  def loss(p, which):
    out = nnx.merge(graphdef, p, rest)(x)
    if which == "category":
      return losses.category_loss(out["category_logits"], jnp.array([0, 1, 2, 3]))
    return losses.landmark_loss(
        out["landmarks"], jnp.full((4, 8, 2), 0.5), jnp.zeros((4, 8), jnp.int32)
    )

  norms = {}
  for which in ("category", "landmark"):
    grads = jax.jit(jax.grad(loss), static_argnums=1)(params, which)
    norms[which] = {
        k: float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(v)))
        for k, v in grads.to_pure_dict().items()
    }
  assert norms["category"]["pose_branch"] == 0.0
  assert all(norms["category"][k] > 0 for k in ("trunk", "global_branch", "fusion", "heads"))
  assert norms["landmark"]["pose_branch"] > 0 and norms["landmark"]["trunk"] > 0
  assert all(
      norms["landmark"][k] == 0 for k in ("local_branch", "global_branch", "fusion", "heads")
  )


def test_train_mode_dropout_and_batch_norm():
  model = create_model(tiny_config(dropout_rate=0.5, width_multiplier=1 / 32))
  x = images()
  a, b = forward(model, x, train=True), forward(model, x, train=True)
  assert not np.allclose(a["category_logits"], b["category_logits"])  # fresh dropout masks
  np.testing.assert_array_equal(
      forward(model, x)["category_logits"], forward(model, x)["category_logits"]
  )
  resnet = build(backbone="resnet50", dtype="float32", use_landmark_branch=False)
  before = np.asarray(resnet.trunk.bn1.mean.value)
  forward(resnet, x, train=True)
  assert not np.allclose(before, resnet.trunk.bn1.mean.value)  # running statistics updated


def test_unknown_backbone_is_a_clear_error():
  with pytest.raises(ValueError, match="config.model.backbone: unknown 'vgg19'"):
    create_model(tiny_config(backbone="vgg19"))
