"""The Xception backbone: Keras' own Xception with random weights (BatchNorm statistics
included) written in the released .h5 layout, imported, gives the same trunk and exit
flow on the same photo through each side's preprocessing; the exit flow's declared cell
centres are its receptive-field centroids; parameter counts; FashionNet trains on it."""

import h5py
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from test_landmark_geometry import _constant_kernels
from test_train_step import _changed, _run
from tiny import tiny_config

from fashionnet_jax import weights
from fashionnet_jax.data.transforms import normalize_batch
from fashionnet_jax.models import FashionNet, pretrained, xception
from fashionnet_jax.models.fashionnet import conv5_cells
from fashionnet_jax.training.train_setup import TrainSetup

# Keras' minimum is 71 px; at 96 the stride-2 max pools see odd (45, 23) and even (12, 6) maps.
KERAS_SIDE = 96
RELEASED = "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _model(**overrides):
  config = ml_collections.ConfigDict(
      dict(
          backbone="xception",
          width_multiplier=1.0,
          fc6_dim=16,
          fc6_local_dim=8,
          num_categories=5,
          num_attributes=7,
          embedding_dim=8,
          dtype="float32",
          use_landmark_branch=False,
      )
  )
  config.update(overrides)
  return FashionNet(config, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))


@pytest.fixture(scope="module")
def keras_xception(tmp_path_factory):
  """keras.applications.Xception, every weight random (BatchNorm's too), saved as the released file is."""
  pytest.importorskip("tensorflow")
  keras = pytest.importorskip("keras")
  from keras.src.legacy.saving import legacy_h5_format  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  ref = keras.applications.Xception(
      weights=None, include_top=False, input_shape=(KERAS_SIDE, KERAS_SIDE, 3)
  )
  rng = np.random.default_rng(0)
  for layer in ref.layers:
    values = layer.get_weights()
    if isinstance(layer, keras.layers.BatchNormalization):
      ranges = ((0.5, 1.5), (-0.2, 0.2), (-0.5, 0.5), (0.5, 2.0))  # gamma, beta, mean, variance
      layer.set_weights([rng.uniform(*r, v.shape) for r, v in zip(ranges, values)])
    elif values:  # He-scaled kernels keep 36 layers' activations in range
      layer.set_weights(
          [rng.normal(size=v.shape) * (2 / np.prod(v.shape[:-1])) ** 0.5 for v in values]
      )
  path = tmp_path_factory.mktemp("keras") / RELEASED
  with h5py.File(path, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, ref)
  return keras, ref, path


def _relative_error(got, want):
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  assert got.shape == want.shape
  return np.max(np.abs(got - want)) / np.max(np.abs(want))


def test_imported_xception_matches_keras_on_a_photo(keras_xception, real_photos, tmp_path, capsys):
  keras, ref, path = keras_xception
  # The command guesses the backbone from the released name and writes what init_from loads.
  assert weights.main(["--source", str(path), "--out", str(tmp_path)]) == 0
  assert "xception: " in capsys.readouterr().out
  model = _model()
  written = pretrained.load_pretrained(model, str(tmp_path / "xception_imagenet.npz"))
  assert "trunk/block1_conv1_bn/mean" in written and "trunk/block4/residual/kernel" in written
  assert "global_branch/conv5/block14_sepconv2_bn/var" in written
  assert not any("fc6" in w for w in written)  # notop, and Xception has no fc6

  rgb = np.stack(
      [
          np.asarray(Image.open(p).convert("RGB").resize((KERAS_SIDE,) * 2, Image.BILINEAR))
          for p in real_photos
      ]
  )
  probe = keras.Model(ref.input, [ref.get_layer("block13_sepconv1_act").input, ref.output])
  want_trunk, want_exit = probe.predict(
      keras.applications.xception.preprocess_input(rgb.astype(np.float32)), verbose=0
  )
  got_trunk, got_exit = nnx.jit(lambda m, x: (lambda h: (h, m.global_branch.conv5(h)))(m.trunk(x)))(
      model, normalize_batch(rgb)
  )
  # Eval mode, Keras' [-1, 1] input folded into block1_conv1 and its BatchNorm: float32 round-off.
  assert _relative_error(got_trunk, want_trunk) < 1e-5
  assert _relative_error(got_exit, want_exit) < 1e-5


def _text(name):
  return name.decode() if isinstance(name, bytes) else name


def _as_keras2(src, dst):
  """`src` rewritten as Keras 2 wrote the released file: 'kernel:0' names, the
  unnamed layers numbered from 1 (conv2d_1, batch_normalization_1)."""
  rename = {}
  with h5py.File(src, "r") as f, h5py.File(dst, "w") as out:
    layers = [_text(n) for n in f.attrs["layer_names"]]
    for prefix in ("conv2d", "batch_normalization"):
      unnamed = [n for n in layers if n == prefix or n.startswith(prefix + "_")]
      rename.update({n: f"{prefix}_{i}" for i, n in enumerate(unnamed, 1)})
    out.attrs["layer_names"] = [rename.get(n, n).encode() for n in layers]
    for name in layers:
      group, new = f[name], rename.get(name, name)
      names = []
      for weight in map(_text, group.attrs["weight_names"]):
        names.append(f"{new}/{weight.split('/')[-1]}:0")
        out.create_dataset(f"{new}/{names[-1]}", data=group[weight][()])
      out.require_group(new).attrs["weight_names"] = [n.encode() for n in names]


def test_the_released_keras2_layout_converts_alike(keras_xception, tmp_path):
  _, _, path = keras_xception
  released = tmp_path / RELEASED
  _as_keras2(path, released)
  with h5py.File(released, "r") as f:
    assert "conv2d_1/conv2d_1/kernel:0" in f
  ours, theirs = pretrained.convert(str(path)), pretrained.convert(str(released))
  assert ours.keys() == theirs.keys() and len(ours) == 234
  for k in ours:
    np.testing.assert_array_equal(ours[k], theirs[k])


def test_a_file_that_is_not_xception_is_one_clear_error(keras_xception, tmp_path):
  _, _, path = keras_xception
  broken = tmp_path / RELEASED
  with h5py.File(path, "r") as f, h5py.File(broken, "w") as out:
    for key in f:
      if key != "block7_sepconv2_bn":
        f.copy(f[key], out, key)
    out.attrs["layer_names"] = f.attrs["layer_names"]
  with pytest.raises(
      pretrained.WeightImportError,
      match=r"not a xception ImageNet checkpoint, 4 tensor\(s\) missing: block7_sepconv2_bn/beta",
  ):
    pretrained.convert(str(broken))
  with pytest.raises(pretrained.WeightImportError, match="not a vgg16 ImageNet checkpoint"):
    pretrained.convert(str(path), "vgg16")
  torch_file = tmp_path / "xception.pth"
  torch_file.write_bytes(b"")
  with pytest.raises(
      pretrained.WeightImportError, match="torch import supports vgg16, resnet50, not xception"
  ):
    pretrained.convert(str(torch_file))


def test_parameter_counts_at_keras_widths():
  model = nnx.eval_shape(_model)

  def count(module):  # parameters and BatchNorm statistics, as Keras counts them
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param, nnx.BatchStat)))

  trunk, branch = count(model.trunk), count(model.global_branch.conv5)
  assert (trunk, branch) == (14_060_376, 6_801_104)
  assert trunk + branch == 20_861_480  # keras.applications.Xception(include_top=False)
  assert model.trunk.out_channels == 728 and model.global_branch.conv5.out_channels == 2048


# Input sides where the field of the cells tested is whole; the stride-2 max pools see
# (odd, odd, even, even) maps at 1152, as at 224, and (even, even, odd, odd) at 1165.
CENTROID_SIDES = (1152, 1165)


@pytest.mark.parametrize("side", CENTROID_SIDES)
def test_declared_cell_centres_are_receptive_field_centroids(side):
  """As tests/test_landmark_geometry.py measures VGG's and ResNet's: constant positive
  kernels, identity BatchNorm, average pools for the max pools; the 1×1/2 shortcuts
  zeroed, as the declared centres follow the separable-conv path (models/xception.py)."""
  rngs = nnx.Rngs(0)
  trunk = xception.XceptionTrunk(0.01, rngs=rngs)
  exit_flow = xception.XceptionExitFlow(trunk.out_channels, 0.01, rngs=rngs)
  for module in (trunk, exit_flow):
    _constant_kernels(module)
  for block in [getattr(trunk, b[0]) for b in xception.ENTRY_BLOCKS] + [exit_flow.block13]:
    block.residual.kernel.value = jnp.zeros_like(block.residual.kernel.value)
  geometry = conv5_cells("xception", (side, side))
  # The cell nearest the middle and its right neighbour's column: rows and columns apart.
  row = round((side / 2 - geometry.offset) / geometry.stride)
  col = row + 1
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(nnx, "max_pool", nnx.avg_pool)
    net = lambda x: exit_flow(trunk(x))
    image = jnp.ones((1, side, side, 3), jnp.float32)
    cotangent = np.zeros(jax.eval_shape(net, image).shape, np.float32)
    cotangent[0, row, col] = 1.0
    grad = jax.jit(lambda x, g: jax.vjp(net, x)[1](g)[0])(image, cotangent)
  field = np.asarray(grad, np.float64)[0].sum(-1)
  # Positive, and whole inside the image (1083 px wide): no zero padding cut it.
  assert field.min() >= 0 and field.sum() > 0
  assert not (field[0].any() or field[-1].any() or field[:, 0].any() or field[:, -1].any())
  centres = np.arange(side) + 0.5
  np.testing.assert_allclose(
      [field.sum(0) @ centres / field.sum(), field.sum(1) @ centres / field.sum()],
      [geometry.offset + geometry.stride * col, geometry.offset + geometry.stride * row],
      atol=1e-3,
  )


def test_declared_geometry():
  # block1: 'valid' 3×3/2 and 3×3 (+1 and +2 px); each 3×3/2 'same' max pool shifts
  # the centre by one input cell of its map on an even map, none on an odd one.
  assert tuple(conv5_cells("xception", (224, 224))) == (32.0, 27.5)  # 109, 55 odd; 28, 14 even
  assert tuple(conv5_cells("xception", (299, 299))) == (32.0, 7.5)  # 147 odd, 74 even, 37, 19 odd
  with pytest.raises(ValueError, match="an input of 224x299 px puts its cells at different"):
    conv5_cells("xception", (224, 299))


def test_fashionnet_forward_on_xception_at_64_px():
  model = _model(width_multiplier=1 / 16, use_landmark_branch=True, dtype="bfloat16")
  images = jax.random.normal(jax.random.key(0), (2, 64, 64, 3))
  out = nnx.jit(lambda m, x: m(x))(model, images)
  assert out["landmarks"].shape == (2, 8, 2) and out["category_logits"].shape == (2, 5)
  assert all(v.dtype == jnp.float32 and np.all(np.isfinite(v)) for v in out.values())
  # 64 px: 31, 29 → 15, 8, 4 → a 2×2 exit map of 2048/16 channels.
  conv5 = jax.eval_shape(lambda x: model.local_branch.conv5(model.trunk(x)), images)
  assert conv5.shape == (2, 2, 2, 128) and conv5.dtype == jnp.bfloat16


@pytest.mark.slow
def test_fashionnet_on_xception_trains_two_steps(tmp_path):
  config = tiny_config(**{"model.backbone": "xception", "image_size": 64})
  trainer = TrainSetup(config, tmp_path, devices=jax.devices()[:1])
  before = jax.device_get(trainer.state)
  metrics = _run(trainer, [0, 2])  # a step of each stage
  assert all(np.isfinite(m["loss"]) and m["update_skipped"] == 0 for m in metrics)
  after = jax.device_get(trainer.state)
  assert all(_changed(before.params, after.params).values())
  stats = before.model_state["trunk"]["block1_conv1_bn"]["mean"]
  assert not np.allclose(stats, after.model_state["trunk"]["block1_conv1_bn"]["mean"])


def test_what_the_keras_file_leaves_at_random_is_fashionnets_own_layers(keras_xception):
  """Every parameter the Keras file does not fill learns at the new-layer rate (optim); on
  Xception those are exactly FashionNet's fc layers and outputs, fc6/fc7 included (Keras'
  notop file has none), and every backbone parameter is filled, in all three branches."""
  _, _, path = keras_xception
  abstract = nnx.eval_shape(lambda: _model(use_landmark_branch=True))
  written = set(pretrained.load_pretrained(abstract, str(path), "xception"))
  names = {"/".join(map(str, p)) for p, _ in nnx.state(abstract, nnx.Param).flat_state()}
  fashionnet_own = (
      "global_branch/fc6_global/",
      "pose_branch/fc6_pose/",
      "pose_branch/fc7_pose/",
      "pose_branch/landmarks/",
      "pose_branch/visibility/",
      "local_branch/fc6_local/",
      "fusion/fc7_fusion/",
      "heads/",
  )
  new = names - written
  assert all(n.startswith(fashionnet_own) for n in new), sorted(new)
  assert all(any(n.startswith(p) for n in new) for p in fashionnet_own)
