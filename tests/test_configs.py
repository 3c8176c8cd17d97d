"""Every config loads and validates; the full-size ones are the real recipe, for each benchmark."""

import importlib
import json
import os
import subprocess
import sys

import ml_collections
import pytest
from absl import flags
from ml_collections import config_flags
from tiny import ROOT  # (puts the repository root on sys.path)

from configs import (
    consumer2shop,
    default,
    fine,
    fld,
    full_size,
    gpu,
    inshop,
    no_landmarks,
    resnet50,
    tpu_v3,
)
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.training.config_checks import validate_config
from fashionnet_jax.training.schedule import GROUPS

BENCHMARKS = {
    default: "category_attribute",
    inshop: "inshop",
    consumer2shop: "consumer2shop",
    fld: "landmarks",
    fine: "category_attribute_fine",
    no_landmarks: "category_attribute",
}


@pytest.mark.parametrize(
    "module", [default, inshop, consumer2shop, fld, fine, gpu, tpu_v3, resnet50, no_landmarks]
)
def test_every_config_validates(module):
  validate_config(module.get_config())


@pytest.mark.parametrize("module", list(BENCHMARKS))
@pytest.mark.parametrize("platform", full_size.PLATFORMS)
def test_full_size_config_of_every_benchmark(module, platform):
  config = module.get_config(platform)
  validate_config(config)
  assert config.dataset.name == f"deepfashion/{BENCHMARKS[module]}"
  assert config.image_size == 224 and config.model.width_multiplier == 1.0
  assert config.model.backbone == "vgg16" and config.model.dtype == "bfloat16"
  assert config.model.dropout_rate == 0.5 and config.optimizer.name == "sgd"
  assert config.require_init_from and not config.dataset.synthetic_if_missing
  # mmfashion's category recipe, 1e-3 per 2 GPUs x 128 = 256 images, scaled linearly with
  # the batch for every benchmark (In-shop's and consumer-to-shop's too); the layers the
  # weight file does not fill at 10x (which, the TrainSetup finds out: test_init_multipliers.py).
  assert config.optimizer.learning_rate == pytest.approx(1e-3 * config.batch_size / 256)
  assert config.batch_size == {"gpu": 128, "tpu": 256}[platform]
  assert config.optimizer.new_layer_lr_multiplier == 10.0
  assert not config.optimizer.lr_multipliers  # no hand list of new layers
  # The paper's stages: every group learns, the loss weights change.
  for stage in config.stages:
    assert tuple(stage.train) == GROUPS
  # Model selection on validation wherever the benchmark has a validation split.
  want = {
      "inshop": None,
      "consumer2shop": "retrieval_top20",
      "landmarks": "landmark_ne",
      "category_attribute": "attribute_top3_recall",
      "category_attribute_fine": "attribute_top3_recall",
  }[BENCHMARKS[module]]
  assert config.get("select_metric") == want


def test_gpu_and_tpu_configs_are_the_default_configs_arguments():
  assert gpu.get_config().to_dict() == default.get_config("gpu").to_dict()
  assert tpu_v3.get_config().to_dict() == default.get_config("tpu").to_dict()


def test_the_demo_stages_are_the_papers_too():
  for stage in default.get_config().stages:
    assert tuple(stage.train) == GROUPS
  weights = [dict(s.weights) for s in default.get_config().stages]
  # Stage 1 leads with the pose terms, stage 2 with the recognition terms.
  assert (
      weights[0]["landmark"] > weights[1]["landmark"]
      and weights[1]["category"] > weights[0]["category"]
  )


def test_an_unknown_platform_is_a_clear_error():
  with pytest.raises(ValueError, match="config argument 'cpu': use one of gpu, tpu"):
    inshop.get_config("cpu")


@pytest.mark.parametrize("platform", full_size.PLATFORMS)
def test_resnet50_at_full_size_is_the_vgg16_recipe_on_another_trunk(platform):
  config, vgg = resnet50.get_config(platform), default.get_config(platform)
  validate_config(config)
  assert config.model.backbone == "resnet50" and config.require_init_from
  config.model.backbone = vgg.model.backbone
  assert config.to_dict() == vgg.to_dict()
  demo = resnet50.get_config()
  assert demo.optimizer.to_dict() == default.get_config().optimizer.to_dict()


@pytest.mark.parametrize("arg", [None, *full_size.PLATFORMS])
def test_the_ablation_is_fashionnet_without_the_branch_and_nothing_else(arg):
  # The same stages, rounds, optimiser and selection, demo and full size (:gpu / :tpu).
  ablation, fashionnet = no_landmarks.get_config(arg), default.get_config(arg)
  assert ablation.model.use_landmark_branch is False
  ablation.model.use_landmark_branch = True
  assert ablation.to_dict() == fashionnet.to_dict()


# Every config file (full_size.py holds the rules they share, not a config).
CONFIG_FILES = sorted(
    p.stem for p in (ROOT / "configs").glob("*.py") if p.stem not in ("__init__", "full_size")
)
ARGUMENTS = (None, *full_size.PLATFORMS)
# The files that are one platform of default.py: they refuse the other one.
PLATFORM_FILES = {"gpu": "gpu", "tpu_v3": "tpu"}


def _load_with_flag(name, arg):
  """The config as `--config=configs/<name>.py[:arg]` gives it (ml_collections' loader)."""
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=values)
  values(["prog", f"--config={ROOT / 'configs' / name}.py" + (f":{arg}" if arg else "")])
  return values.config


@pytest.mark.parametrize("arg", ARGUMENTS)
@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_file_takes_the_same_argument(name, arg):
  other = name in PLATFORM_FILES and arg not in (None, PLATFORM_FILES[name])
  if other:  # configs/gpu.py:tpu is a mistake, said in one line naming the file
    with pytest.raises(
        ConfigError,
        match=rf"^configs/{name}.py:{arg}: this file is "
        rf"configs/default.py:{PLATFORM_FILES[name]}",
    ):
      importlib.import_module(f"configs.{name}").get_config(arg)
    return
  config = _load_with_flag(name, arg)
  validate_config(config)
  assert config.image_size == (224 if arg or name in PLATFORM_FILES else 64)


class _Recorder:
  """Every assignment to a ConfigDict field while a config resolves: (dict, key, old, new)."""

  def __init__(self, monkeypatch):
    self.log = []
    setitem = ml_collections.ConfigDict.__setitem__
    recorder = self

    def recording_setitem(self, key, value):
      had = key in self._fields
      old = self[key] if had else None
      setitem(self, key, value)
      recorder.log.append((self, key, had, old, self[key]))  # keeps `self` alive: ids stay unique

    monkeypatch.setattr(ml_collections.ConfigDict, "__setitem__", recording_setitem)


@pytest.mark.parametrize("arg", ARGUMENTS)
@pytest.mark.parametrize("name", sorted(set(CONFIG_FILES) - set(PLATFORM_FILES)))
def test_no_field_is_set_twice_on_the_way(monkeypatch, name, arg):
  module = importlib.import_module(f"configs.{name}")
  recorder = _Recorder(monkeypatch)
  module.get_config(arg)
  # No assignment re-sets the value the field already had.
  same = [key for _, key, had, old, new in recorder.log if had and old == new]
  assert not same, f"configs/{name}.py:{arg} re-sets {same} to the value they had"
  # A field is set by base_config, then at most once by its benchmark's file.
  counts = {}
  for owner, key, *_ in recorder.log:
    counts[id(owner), key] = counts.get((id(owner), key), 0) + 1
  assert max(counts.values()) <= 2, [key for (_, key), n in counts.items() if n > 2]


def test_print_config_prints_the_resolved_config_and_trains_nothing(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  r = subprocess.run(
      [
          sys.executable,
          "-m",
          "fashionnet_jax.main",
          "--config=configs/inshop.py:gpu",
          "--print_config",
          "--config.batch_size=64",
      ],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert r.returncode == 0, r.stderr
  want = inshop.get_config("gpu")
  want.batch_size = 64  # the override is part of what is printed
  assert json.loads(r.stdout) == json.loads(want.to_json_best_effort())
  # Without --print_config the workdir is still required (one line, exit 2).
  r = subprocess.run(
      [sys.executable, "-m", "fashionnet_jax.main", "--config=configs/inshop.py"],
      cwd=ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
  )
  assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(
      "error: --workdir is required"
  )


class _Stop(Exception):
  pass


def _stop(*args):
  raise _Stop


def test_a_run_validates_its_config_once(tmp_path, monkeypatch):
  """train_and_evaluate checks the config before it claims the workdir; the TrainSetup it
  builds then does not check it again."""
  from tiny import tiny_config

  from fashionnet_jax import train
  from fashionnet_jax.training import config_checks, train_setup

  calls = []
  counted = lambda config: calls.append(1) or config_checks.validate_config(config)
  monkeypatch.setattr(train, "validate_config", counted)
  monkeypatch.setattr(train_setup, "validate_config", counted)
  monkeypatch.setattr(train, "ensure_dataset", lambda config: None)
  # Stop once the TrainSetup is built: the first batch is asked for after it.
  monkeypatch.setattr(train.pipeline, "create_train_iterator", _stop)
  with pytest.raises(_Stop):
    train.train_and_evaluate(tiny_config(), tmp_path / "run")
  assert len(calls) == 1
  # Built on its own (benchmarks, tests), the TrainSetup checks its config itself.
  with pytest.raises(ConfigError, match="config.optimizer.name='lamb'"):
    train_setup.TrainSetup(tiny_config(**{"optimizer.name": "lamb"}), tmp_path / "other")
