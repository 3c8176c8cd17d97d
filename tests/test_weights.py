"""ImageNet weight import: torchvision-layout VGG16/ResNet50 (.pth) and Keras VGG16 (.h5)
built here with random weights reproduce the imported FashionNet's conv features."""

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from tiny import tiny_config

from fashionnet_jax import weights
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.models import FashionNet, pretrained
from fashionnet_jax.models.functional import merge_model
from fashionnet_jax.models.vgg import pool5_flatten
from fashionnet_jax.training.config_checks import validate_config
from fashionnet_jax.training.train_setup import TrainSetup

torch = pytest.importorskip("torch")  # the optional [torch] extra; CI installs it
nn = torch.nn
from torch_models import TorchResNet50, torch_vgg16  # noqa: E402

IMAGE = 32


def config(**overrides):
  c = ml_collections.ConfigDict(
      dict(
          backbone="vgg16",
          width_multiplier=1.0,
          fc6_dim=64,
          fc6_local_dim=16,
          num_categories=5,
          num_attributes=7,
          embedding_dim=8,
          dtype="float32",
      )
  )
  c.update(overrides)
  return c


def fashionnet(**overrides):
  return FashionNet(config(**overrides), rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))


def nchw(x):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def to_nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def assert_close(got, want, rtol=1e-4):
  """Relative to the feature map's scale: max |got − want| ≤ rtol · max |want|."""
  got, want = np.asarray(got), np.asarray(want)
  assert got.shape == want.shape
  assert np.max(np.abs(got - want)) <= rtol * np.max(np.abs(want)), np.max(np.abs(got - want))


@pytest.fixture(scope="module")
def x():
  return np.random.default_rng(0).normal(size=(2, IMAGE, IMAGE, 3)).astype(np.float32)


def test_torchvision_vgg16_import(tmp_path, x):
  torch.manual_seed(0)
  ref = torch_vgg16(fc_dim=64)
  path = tmp_path / "vgg16-397923af.pth"
  torch.save(ref.state_dict(), path)
  model = fashionnet()
  written = pretrained.load_pretrained(model, str(path), "vgg16")
  assert (
      "pose_branch/conv5/conv5_3/kernel" in written and "local_branch/conv5/conv5_1/bias" in written
  )
  assert (
      "global_branch/fc6_global/fc/kernel" in written
      and "pose_branch/fc7_pose/fc/kernel" in written
  )
  assert "fusion/fc7_fusion/fc/kernel" not in written  # 64+16 inputs vs fc7's 64: skipped

  with torch.no_grad():
    conv4_3 = ref.features[:23](nchw(x))
    conv5_3 = ref.features[:30](nchw(x))
    fc6 = torch.relu(ref.classifier[0](ref.avgpool(ref.features(nchw(x))).flatten(1)))

  @nnx.jit
  def ours(model, x):
    pool4, features = model.trunk(x, return_features=True)
    conv5 = {
        b: getattr(model, b).conv5(pool4) for b in ("pose_branch", "local_branch", "global_branch")
    }
    return (
        features["conv4_3"],
        conv5,
        model.global_branch.fc6_global(pool5_flatten(conv5["global_branch"])),
    )

  got4, got5, got_fc6 = ours(model, x)
  assert_close(got4, to_nhwc(conv4_3))
  for branch in got5.values():
    assert_close(branch, to_nhwc(conv5_3))
  assert_close(got_fc6, fc6.numpy())  # NCHW flatten order of fc6 permuted to NHWC


def _torch_resnet50(path, seed):
  """A torchvision-layout ResNet-50 at base width 8, non-trivial BatchNorm, saved to `path`."""
  torch.manual_seed(seed)
  ref = TorchResNet50(base=8)
  for m in ref.modules():  # non-trivial statistics so the import of each is checked
    if isinstance(m, nn.BatchNorm2d):
      m.running_mean.uniform_(-0.5, 0.5)
      m.running_var.uniform_(0.5, 2.0)
      m.weight.data.uniform_(0.5, 1.5)
      m.bias.data.uniform_(-0.2, 0.2)
  ref.eval()
  torch.save(ref.state_dict(), path)
  return ref


def _assert_resnet_features_match(model, ref, x):
  """layer1..layer4 of our (eval-mode) trunk and conv5 against torch's."""

  @nnx.jit
  def ours(model, x):
    layer3, features = model.trunk(x, return_features=True)
    return features, model.global_branch.conv5(layer3)

  features, layer4 = ours(model, x)
  with torch.no_grad():
    want = ref.stages(nchw(x))
  for name in ("layer1", "layer2", "layer3"):
    assert_close(features[name], to_nhwc(want[name]))
  assert_close(layer4, to_nhwc(want["layer4"]))


def test_torchvision_resnet50_import(tmp_path, x):
  path = tmp_path / "resnet50-11ad3fa6.pth"
  ref = _torch_resnet50(path, seed=1)
  model = fashionnet(backbone="resnet50", width_multiplier=1 / 8, use_landmark_branch=False)
  pretrained.load_pretrained(model, str(path))
  _assert_resnet_features_match(model, ref, x)


def _resized(photos, size):
  """Real photos (tests/host.py) as RGB uint8 [N, size, size, 3]."""
  from PIL import Image

  return np.stack(
      [
          np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR))
          for p in photos
      ]
  )


def test_keras_vgg16_h5_import(tmp_path, real_photos):
  # Keras' VGG16 runs on its own preprocess_input (BGR, 0-255, mean-subtracted); ours on
  # RGB (x/255 - mean)/std. The import folds the difference into conv1_1, so the same
  # RGB photo gives the same features through either pipeline.
  pytest.importorskip("tensorflow")
  import h5py  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  from keras.src.legacy.saving import legacy_h5_format  # pylint: disable=g-import-not-at-top
  from fashionnet_jax.data.transforms import normalize_batch

  keras.utils.set_random_seed(0)
  ref = keras.applications.VGG16(weights=None, include_top=False, input_shape=(IMAGE, IMAGE, 3))
  path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
  with h5py.File(path, "w") as f:  # the layout of Keras' released VGG16 files
    legacy_h5_format.save_weights_to_hdf5_group(f, ref)
  model = fashionnet()
  written = pretrained.load_pretrained(model, str(path), "vgg16")
  assert not any("fc6" in w for w in written)  # notop: convs only
  rgb = _resized(real_photos, IMAGE)
  probe = keras.Model(
      ref.input,
      [
          ref.get_layer("block1_conv1").output,
          ref.get_layer("block4_conv3").output,
          ref.get_layer("block5_conv3").output,
      ],
  )
  want1, want4, want5 = probe.predict(
      keras.applications.vgg16.preprocess_input(rgb.astype(np.float32)), verbose=0
  )
  pool4, features = nnx.jit(lambda m, x: m.trunk(x, return_features=True))(
      model, normalize_batch(rgb)
  )
  # Inside the image the fold is exact; the zero-padded border differs by Keras'
  # zero being our (255 mean - Keras' mean), under half a grey level.
  assert_close(features["conv1_1"][:, 1:-1, 1:-1], want1[:, 1:-1, 1:-1])
  assert_close(features["conv1_1"], want1, rtol=1e-2)
  assert_close(features["conv4_3"], want4, rtol=1e-2)
  assert_close(nnx.jit(lambda m, h: m.local_branch.conv5(h))(model, pool4), want5, rtol=1e-2)


def test_mismatched_and_missing_tensors_are_one_clear_error(tmp_path):
  ref = torch_vgg16(fc_dim=64)
  path = tmp_path / "vgg16.pth"
  torch.save(ref.state_dict(), path)
  small = nnx.eval_shape(lambda: fashionnet(width_multiplier=0.5))
  with pytest.raises(pretrained.WeightImportError) as e:
    pretrained.load_pretrained(small, str(path), "vgg16")
  message = str(e.value)
  assert "do not fit the vgg16 model" in message
  assert (
      "conv1_1/kernel -> trunk/conv1_1/kernel: file (3, 3, 3, 64), model (3, 3, 3, 32)" in message
  )
  assert "conv5_3/bias -> pose_branch/conv5/conv5_3/bias" in message
  state = ref.state_dict()
  del state["features.28.weight"], state["features.0.bias"]
  torch.save(state, path)
  with pytest.raises(
      pretrained.WeightImportError,
      match=r"2 tensor\(s\) missing: features.0.bias, features.28.weight",
  ):
    pretrained.convert(str(path), "vgg16")
  with pytest.raises(pretrained.WeightImportError, match="not a resnet50 ImageNet checkpoint"):
    pretrained.convert(str(path), "resnet50")


def test_command_line_writes_the_npz_that_init_from_loads(tmp_path, capsys):
  torch.manual_seed(2)
  ref = torch_vgg16(fc_dim=64)
  src = tmp_path / "vgg16-397923af.pth"
  torch.save(ref.state_dict(), src)
  assert weights.main(["--source", str(src), "--out", str(tmp_path / "out")]) == 0
  npz = tmp_path / "out" / "vgg16_imagenet.npz"
  assert str(npz) in capsys.readouterr().out
  from_pth = pretrained.convert(str(src))
  from_npz = pretrained.convert(str(npz))
  assert from_pth.keys() == from_npz.keys()
  for k in from_pth:
    np.testing.assert_array_equal(from_pth[k], from_npz[k])
  np.testing.assert_array_equal(
      from_npz["conv2_1/kernel"], ref.features[5].weight.detach().numpy().transpose(2, 3, 1, 0)
  )
  with pytest.raises(SystemExit) as e:  # the command's error boundary: one line, exit 2
    weights.main(["--source", str(tmp_path / "nope.pth"), "--out", str(tmp_path)])
  assert e.value.code == 2
  assert capsys.readouterr().err.strip() == f'error: {tmp_path / "nope.pth"}: no such file'


@pytest.mark.slow
def test_init_from_through_the_trainer_keeps_batchnorm_statistics(tmp_path, x):
  # The real path: TrainSetup(config with init_from) must reproduce the torch model in eval
  # mode, BatchNorm running statistics included (not only the converted parameters).
  path = tmp_path / "resnet50-11ad3fa6.pth"
  ref = _torch_resnet50(path, seed=3)
  config = tiny_config(
      **{"model.backbone": "resnet50", "model.width_multiplier": 1 / 8, "init_from": str(path)}
  )
  trainer = TrainSetup(config, tmp_path / "run", devices=jax.devices()[:1])
  state = jax.device_get(trainer.state)
  np.testing.assert_array_equal(
      state.model_state["trunk"]["bn1"]["mean"], ref.bn1.running_mean.numpy()
  )
  _assert_resnet_features_match(
      merge_model(trainer.graphdef, state.params, state.model_state), ref, x
  )


@pytest.mark.slow
def test_full_size_configs_need_init_from_or_an_explicit_scratch(tmp_path):
  from configs import gpu, tpu_v3

  for module in (gpu, tpu_v3):
    config = module.get_config()
    validate_config(config)  # a valid config, that the TrainSetup refuses to initialise at random
    with pytest.raises(
        ConfigError, match=r"^config.init_from is not set: .*--config.init_from=scratch"
    ):
      TrainSetup(config, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
  # A scratch run builds and never reads a weight file.
  config = tiny_config(require_init_from=True, init_from="scratch")
  TrainSetup(config, tmp_path / "run", devices=jax.devices()[:1])
