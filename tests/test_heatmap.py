"""The heatmap landmark head (models/heatmap.py): decoding, targets under a flip, the masked
loss, FashionNet with the head, the flip test, configs and the eval protocol."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from ml_collections import config_flags
from absl import flags
from tiny import ROOT, fake_batch, tiny_config

from configs import default, full_size
from fashionnet_jax.data import transforms
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.evaluation import loop
from fashionnet_jax.models import create_model, heatmap
from fashionnet_jax.schema import OCCLUDED, TRUNCATED, UNUSED, VISIBLE
from fashionnet_jax.study import presets, runner
from fashionnet_jax.training import losses
from fashionnet_jax.training.config_checks import validate_config
from fashionnet_jax.training.train_setup import TrainSetup


def _maps(centres, shape, sigma=2.0):
  """Gaussian maps [1, h, w, L] around `centres` [L, 2] given in map cells (x, y)."""
  h, w = shape
  xy = np.asarray(centres, np.float32) / np.array([w, h], np.float32)
  return heatmap.gaussian_targets(xy[None], np.zeros((1, len(xy)), np.int32), shape, sigma)


@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
def test_the_decoder_recovers_a_gaussians_centre_to_a_tenth_of_a_cell(sigma):
  # Cell j's centre is j + 0.5: 0.3 and 15.8 lie in the edge cells, outside every centre.
  centres = [(0.3, 7.7), (15.8, 0.2), (7.25, 3.9), (4.5, 11.5), (10.93, 15.61), (1.02, 0.98)]
  shape = (16, 16)
  decoded = np.asarray(heatmap.decode_heatmaps(_maps(centres, shape, sigma)))[0] * 16
  error = np.abs(decoded - np.asarray(centres))
  assert error.max() < 0.1, error
  # Plain argmax is off by up to half a cell on the same maps.
  argmax = np.floor(np.asarray(centres)) + 0.5
  assert np.abs(argmax - centres).max() > 0.4


def test_the_decoder_on_a_non_square_map_and_a_flat_one():
  centres = [(3.3, 20.6), (11.7, 0.4)]
  decoded = np.asarray(heatmap.decode_heatmaps(_maps(centres, (24, 12))))[0]
  np.testing.assert_allclose(decoded * [12, 24], centres, atol=0.1)
  # Nothing above the floor (an untrained or negative map): the argmax cell's centre.
  flat = -jnp.ones((1, 8, 8, 1)).at[0, 2, 5, 0].set(-0.5)
  np.testing.assert_allclose(heatmap.decode_heatmaps(flat)[0, 0], [5.5 / 8, 2.5 / 8])


def test_targets_follow_a_horizontal_flip():
  rng = np.random.default_rng(0)
  landmarks = rng.uniform(0.05, 0.95, (3, 8, 2)).astype(np.float32)
  visibility = rng.integers(0, 4, (3, 8)).astype(np.int32)
  visibility[:, :2] = VISIBLE
  landmarks = np.where((visibility == UNUSED)[..., None], 0.0, landmarks)
  flipped = [transforms.flip_landmarks(lm, v) for lm, v in zip(landmarks, visibility)]
  flipped_lm = np.stack([f[0] for f in flipped])
  flipped_vis = np.stack([f[1] for f in flipped])
  shape = (14, 10)
  of_flipped = heatmap.gaussian_targets(flipped_lm, flipped_vis, shape, 2.0)
  flipped_targets = heatmap.flip_heatmaps(
      heatmap.gaussian_targets(landmarks, visibility, shape, 2.0)
  )
  np.testing.assert_allclose(of_flipped, flipped_targets, atol=1e-6)
  # Slots 0 and 1 (left/right collar) trade places: the flip is not the identity.
  assert not np.allclose(of_flipped[..., 0], flipped_targets[..., 1], atol=1e-3)


def test_the_loss_ignores_invisible_truncated_and_unused_slots():
  rng = np.random.default_rng(1)
  landmarks = rng.uniform(0.1, 0.9, (2, 8, 2)).astype(np.float32)
  visibility = np.array(
      [[VISIBLE, OCCLUDED, TRUNCATED, UNUSED, VISIBLE, VISIBLE, OCCLUDED, UNUSED]] * 2, np.int32
  )
  maps = rng.normal(0.0, 0.3, (2, 16, 16, 8)).astype(np.float32)
  base = float(losses.heatmap_loss(maps, landmarks, visibility, 2.0))
  hidden = visibility != VISIBLE
  moved = np.where(hidden[..., None], rng.uniform(size=landmarks.shape), landmarks)
  scribbled = np.where(hidden[:, None, None, :], np.nan, maps)
  assert float(losses.heatmap_loss(scribbled, moved, visibility, 2.0)) == pytest.approx(base)
  # A visible slot's map does count.
  assert float(losses.heatmap_loss(maps + (np.arange(8) == 0), landmarks, visibility, 2.0)) > base
  # Perfect maps cost 0; all-zero maps ~1 per visible landmark (3 here) away from the edges.
  targets = heatmap.gaussian_targets(landmarks, visibility, (16, 16), 2.0)
  assert float(losses.heatmap_loss(targets, landmarks, visibility, 2.0)) == pytest.approx(0.0)
  centred = np.full_like(landmarks, 0.5)
  zeros = np.zeros_like(maps)
  assert float(losses.heatmap_loss(zeros, centred, visibility, 2.0)) == pytest.approx(3.0, rel=1e-3)
  # Padding (mask False) takes no part.
  masked = losses.heatmap_loss(
      np.concatenate([maps, maps + 5.0]),
      np.concatenate([landmarks, moved]),
      np.concatenate([visibility, np.zeros_like(visibility)]),
      2.0,
      mask=np.array([True, True, False, False]),
  )
  assert float(masked) == pytest.approx(base)


def _heatmap_config(**overrides):
  return tiny_config(**{"model.landmark_head": "heatmap", "image_size": 64, **overrides})


def test_fashionnet_with_the_heatmap_head_trains_and_its_landmarks_decode_its_maps(tmp_path):
  config = _heatmap_config()
  setup = TrainSetup(config, tmp_path / "wd")
  before = jax.device_get(setup.state.params["pose_branch"])
  assert "heatmaps" in before and "landmarks" not in before  # no regression layer
  for step in (0, 1):
    w, m = setup.stage_arrays(step)
    batch = setup.global_batch(fake_batch(config, seed=step))
    setup.state, metrics = setup.step_fn(setup.state, batch, w, m, setup.aux)
    assert np.isfinite(metrics["loss_landmark"]) and metrics["update_skipped"] == 0
  after = jax.device_get(setup.state.params["pose_branch"])
  assert not np.array_equal(
      after["heatmaps"]["maps"]["kernel"], before["heatmaps"]["maps"]["kernel"]
  )
  images = setup.global_batch(fake_batch(config, seed=5))["image"]
  out = jax.device_get(setup.predict_fn(setup.state.params, setup.state.model_state, images))
  assert out["landmark_heatmaps"].shape == (8, 16, 16, 8)
  assert out["landmark_heatmaps"].dtype == np.float32
  np.testing.assert_array_equal(out["landmarks"], heatmap.decode_heatmaps(out["landmark_heatmaps"]))
  assert out["landmarks"].min() >= 0 and out["landmarks"].max() <= 1
  # The flip test on the batch as evaluation lays it out (split over 8 devices).
  predict = lambda x: setup.predict_fn(setup.state.params, setup.state.model_state, x)
  both = jax.device_get(loop.flip_test(predict)(images))
  mirrored = jax.device_get(predict(images[:, :, ::-1]))
  maps = 0.5 * (out["landmark_heatmaps"] + heatmap.flip_heatmaps(mirrored["landmark_heatmaps"]))
  np.testing.assert_allclose(both["landmark_heatmaps"], maps, atol=1e-6)
  np.testing.assert_array_equal(both["category_logits"], out["category_logits"])


def test_the_regression_head_has_no_maps():
  model = nnx.eval_shape(lambda: create_model(tiny_config().model))
  out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.uint8))
  assert "landmark_heatmaps" not in out and out["landmarks"].shape == (2, 8, 2)
  assert not hasattr(model.pose_branch, "heatmaps")


def test_full_size_maps_are_56_by_56_from_the_stride_16_trunk():
  config = default.get_config("gpu")
  config.model.landmark_head = "heatmap"
  model = nnx.eval_shape(lambda: create_model(config.model))
  out = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.uint8))
  assert out["landmark_heatmaps"].shape == (1, 56, 56, 8) == (1, *[heatmap.map_size(224)] * 2, 8)
  assert out["landmark_heatmaps"].dtype == jnp.float32


def _mirror_equivariant_predict(images):
  """Maps that mirror with the image, each left/right pair reading one channel, pooled 4x4."""
  b, s, _, _ = images.shape
  pooled = images.reshape(b, s // 4, 4, s // 4, 4, 3).mean(axis=(2, 4))
  maps = pooled[..., [0, 0, 1, 1, 2, 2, 0, 0]]
  return {
      "landmark_heatmaps": maps,
      "landmarks": heatmap.decode_heatmaps(maps),
      "visibility_logits": jnp.zeros((b, 8, 2)),
      "category_logits": jnp.ones((b, 3)),
  }


def test_the_flip_test_of_a_mirror_symmetric_model_changes_nothing():
  rng = np.random.default_rng(2)
  images = jnp.asarray(rng.uniform(size=(2, 32, 32, 3)).astype(np.float32))
  own = _mirror_equivariant_predict(images)
  both = loop.flip_test(_mirror_equivariant_predict)(images)
  np.testing.assert_allclose(both["landmark_heatmaps"], own["landmark_heatmaps"], atol=1e-6)
  np.testing.assert_allclose(both["landmarks"], own["landmarks"], atol=1e-6)
  np.testing.assert_array_equal(both["category_logits"], own["category_logits"])


def test_the_flip_test_averages_mirrored_back_landmarks_with_slots_swapped():
  # A model blind to the image: the mirror's answer, mirrored back, is the pair swapped.
  landmarks = np.tile(np.array([[0.3, 0.4], [0.8, 0.6]] * 4, np.float32), (2, 1, 1))
  logits = np.tile(np.array([[2.0, 0.0], [0.0, 2.0]] * 4, np.float32), (2, 1, 1))
  predict = lambda images: {"landmarks": jnp.asarray(landmarks), "visibility_logits": logits}
  both = loop.flip_test(predict)(jnp.zeros((2, 32, 32, 3)))
  # Slot 0: (0.3, 0.4) and slot 1's (0.8, 0.6) mirrored, (0.2, 0.6): mean (0.25, 0.5).
  np.testing.assert_allclose(both["landmarks"][0, 0], [0.25, 0.5], atol=1e-6)
  np.testing.assert_allclose(both["landmarks"][0, 1], [0.75, 0.5], atol=1e-6)
  np.testing.assert_allclose(both["visibility_logits"][0, 0], [1.0, 1.0])
  # With maps: a left/right pair placed as mirror images is kept as it is ...
  symmetric = _maps([(4.8, 6.4), (11.2, 6.4)] * 4, (16, 16))
  both = loop.flip_test(_blind(symmetric))(jnp.zeros((1, 64, 64, 3)))
  np.testing.assert_allclose(both["landmark_heatmaps"], symmetric, atol=1e-6)
  np.testing.assert_allclose(both["landmarks"][0, :2] * 16, [(4.8, 6.4), (11.2, 6.4)], atol=0.01)
  # ... any other is met halfway: x 4.8 and 16 - 12.8 = 3.2 average to one peak at 4.0.
  skewed = _maps([(4.8, 6.4), (12.8, 6.4)] * 4, (16, 16))
  both = loop.flip_test(_blind(skewed))(jnp.zeros((1, 64, 64, 3)))
  np.testing.assert_allclose(both["landmarks"][0, :2] * 16, [(4.0, 6.4), (12.0, 6.4)], atol=0.1)


def _blind(maps):
  """A model that ignores its input and answers `maps`."""
  return lambda images: {
      "landmark_heatmaps": maps,
      "landmarks": heatmap.decode_heatmaps(maps),
      "visibility_logits": jnp.zeros((1, 8, 2)),
  }


def test_the_eval_protocol_names_the_backbone_the_head_and_the_flip_test():
  config = default.get_config()
  protocol = loop.eval_protocol(config)
  assert protocol["landmark_head"] == "regression" and protocol["flip_test"] is False
  assert protocol["backbone"] == "vgg16"
  config.model.landmark_head, config.eval_flip_test = "heatmap", True
  protocol = loop.eval_protocol(config)
  assert protocol["landmark_head"].startswith("heatmap (16x16 maps") and protocol["flip_test"]
  config.model.backbone = "xception"
  assert loop.eval_protocol(config)["backbone"] == "xception"
  config.model.use_landmark_branch = False
  assert loop.eval_protocol(config)["landmark_head"].startswith("none")


CONFIG_FILES = sorted(
    p.stem for p in (ROOT / "configs").glob("*.py") if p.stem not in ("__init__", "full_size")
)


@pytest.mark.parametrize(
    "name, arg",
    [
        (name, arg)
        for name in CONFIG_FILES
        for arg in (None, *full_size.PLATFORMS)
        # configs/gpu.py and tpu_v3.py are default.py's arguments: they take none themselves.
        if not (arg and name in ("gpu", "tpu_v3"))
    ],
)
def test_every_config_file_takes_the_heatmap_head_on_the_command_line(name, arg):
  path = f"{ROOT / 'configs' / name}.py" + (f":{arg}" if arg else "")
  argv = ["prog", f"--config={path}", "--config.model.landmark_head=heatmap"]
  values = flags.FlagValues()
  # ml_collections registers the --config.FIELD overrides from the argv it is given.
  config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
  values(argv)
  assert values.config.model.landmark_head == "heatmap"
  validate_config(values.config)


def test_a_bad_head_or_sigma_is_one_line():
  config = default.get_config()
  config.model.landmark_head = "heatmaps"
  with pytest.raises(ConfigError, match=r"^config.model.landmark_head='heatmaps': unknown"):
    validate_config(config)
  config = default.get_config()
  config.loss.heatmap_sigma = 0.0
  with pytest.raises(ConfigError, match=r"^config.loss.heatmap_sigma=0.0: must be > 0"):
    validate_config(config)


def test_the_landmark_head_study_differs_only_in_the_head():
  preset = presets.get_preset("landmark_head")
  regression, heat = (
      runner.variant_config(v, preset, steps=preset.steps, seed=0, data_dir=None).to_dict()
      for v in preset.variants
  )
  assert regression["model"].pop("landmark_head") == "regression"
  assert heat["model"].pop("landmark_head") == "heatmap"
  assert regression == heat
