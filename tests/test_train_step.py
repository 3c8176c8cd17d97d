"""The compiled train step: stages, frozen groups, sharding, the NaN guard, config errors."""

import jax
import numpy as np
import pytest
from tiny import fake_batch, tiny_config

from fashionnet_jax import train
from fashionnet_jax.training.train_setup import TrainSetup
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.training.schedule import GROUPS


def _run(trainer, steps, seed=0):
  metrics = []
  for step in steps:
    w, m = trainer.stage_arrays(step)
    batch = trainer.global_batch(fake_batch(trainer.config, seed=seed + step))
    trainer.state, out = trainer.step_fn(trainer.state, batch, w, m, trainer.aux)
    metrics.append(jax.device_get(out))
  return metrics


def _params(trainer):
  return jax.device_get(trainer.state.params)


def _changed(before, after):
  """Which groups had any parameter change."""
  return {
      g: any(
          not np.array_equal(a, b)
          for a, b in zip(jax.tree.leaves(before[g]), jax.tree.leaves(after[g]))
      )
      for g in before
  }


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
  return TrainSetup(tiny_config(), tmp_path_factory.mktemp("wd"))


def test_stages_freeze_groups_and_do_not_recompile(trainer):
  p0 = _params(trainer)
  m = _run(trainer, [0])
  assert np.isfinite(m[0]["loss"]) and m[0]["update_skipped"] == 0
  p1 = _params(trainer)
  changed = _changed(p0, p1)
  # Stage "pose" trains trunk + pose_branch only.
  assert changed == {g: g in ("trunk", "pose_branch") for g in GROUPS}
  _run(trainer, [2])  # stage "recognition"
  changed = _changed(p1, _params(trainer))
  assert changed == {g: g != "pose_branch" for g in GROUPS}
  _run(trainer, [1, 3])
  assert trainer.step_fn._cache_size() == 1  # one compilation for both stages


@pytest.mark.slow
def test_training_lowers_the_loss(tmp_path):
  config = tiny_config(**{"optimizer.schedule": "constant", "optimizer.learning_rate": 0.1})
  config.stages = [config.stages[1]]
  config.stages[0].steps = 8
  t = TrainSetup(config, tmp_path, devices=jax.devices()[:1])
  batch = t.global_batch(fake_batch(config, seed=7))
  w, m = t.stage_arrays(0)
  losses = []
  for _ in range(8):
    t.state, out = t.step_fn(t.state, batch, w, m, t.aux)
    losses.append(float(out["loss"]))
  assert losses[-1] < 0.9 * losses[0] and losses[-1] < min(losses[:4]), losses


@pytest.mark.slow
def test_eight_devices_match_one(tmp_path):
  config = tiny_config()
  one = TrainSetup(config, tmp_path / "one", devices=jax.devices()[:1])
  assert len(jax.devices()) == 8
  eight = TrainSetup(config, tmp_path / "eight")
  assert eight.mesh.shape["data"] == 8
  m1, m8 = _run(one, [0, 2]), _run(eight, [0, 2])
  for a, b in zip(m1, m8):
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=2e-5)
  jax.tree.map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
      _params(one),
      _params(eight),
  )


@pytest.mark.slow
def test_model_axis_shards_large_fc_and_matches(tmp_path):
  config = tiny_config(**{"mesh.data": 4, "mesh.model": 2, "model.fc6_dim": 1024})
  t = TrainSetup(config, tmp_path / "mp")
  specs = {
      jax.tree_util.keystr(p): s.spec
      for p, s in jax.tree_util.tree_flatten_with_path(t.state_shardings.params)[0]
  }
  sharded = [k for k, spec in specs.items() if "model" in tuple(spec)]
  assert any("fc7" in k for k in sharded), sharded
  single = TrainSetup(
      config.copy_and_resolve_references()
      if False
      else tiny_config(**{"mesh.data": 1, "mesh.model": 1, "model.fc6_dim": 1024}),
      tmp_path / "sp",
      devices=jax.devices()[:1],
  )
  a, b = _run(t, [0, 2]), _run(single, [0, 2])
  np.testing.assert_allclose(a[-1]["loss"], b[-1]["loss"], rtol=2e-5)


@pytest.mark.slow
def test_nonfinite_update_is_skipped_and_counted(tmp_path):
  t = TrainSetup(tiny_config(), tmp_path)
  before = _params(t)
  batch = fake_batch(t.config)
  batch["image"][0, 0, 0, 0] = np.nan
  w, m = t.stage_arrays(0)
  t.state, out = t.step_fn(t.state, t.global_batch(batch), w, m, t.aux)
  out = jax.device_get(out)
  assert out["update_skipped"] == 1 and out["nonfinite_streak"] == 1
  jax.tree.map(np.testing.assert_array_equal, before, _params(t))
  assert int(t.state.step) == 1 and int(t.state.nonfinite_total) == 1
  with pytest.raises(train.NonFiniteLossError, match=r"step 5: 1 consecutive .*landmark"):
    train._check_nonfinite(out, 5, limit=1)
  train._check_nonfinite(out, 5, limit=2)  # below the limit: training goes on


@pytest.mark.parametrize(
    "override, message",
    [
        ({"model.backbone": "vgg19"}, "config.model.backbone='vgg19'"),
        ({"batch_size": 12}, "config.batch_size=12 is not divisible by the 8"),
        ({"dataset.name": "deepfashion/shoes"}, "config.dataset.name='deepfashion/shoes'"),
        ({"optimizer.name": "lamb"}, "config.optimizer.name='lamb'"),
    ],
)
def test_config_errors(tmp_path, override, message):
  with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
    TrainSetup(tiny_config(**override), tmp_path)


def test_unknown_stage_group_is_a_config_error(tmp_path):
  config = tiny_config()
  config.stages[0].train = ("trunk", "pose")
  with pytest.raises(
      ConfigError, match=r"config.stages\[0\] \('pose'\): unknown parameter groups \['pose'\]"
  ):
    TrainSetup(config, tmp_path)


def test_missing_dataset_is_a_config_error(tmp_path):
  from fashionnet_jax.data.prepare import ensure_dataset

  config = tiny_config(**{"dataset.data_dir": str(tmp_path), "dataset.synthetic_if_missing": False})
  with pytest.raises(ConfigError, match="is not prepared in .*tfds build datasets/deepfashion"):
    ensure_dataset(config)
