"""Test setup: 8 forced CPU devices (sharding tests), shared synthetic data and trained run,
real photos (tests/host.py)."""

import os

import pytest

import host

# Must precede the first `import jax` anywhere in the test session.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_configure(config):
  """A FASHIONNET_SAMPLES that names no photos stops the run in one line, before any test."""
  try:
    host.samples()
  except FileNotFoundError as e:
    raise pytest.UsageError(str(e)) from None


@pytest.fixture(scope="session")
def real_photos(tmp_path_factory):
  """Real photos (tests/host.py): the DeepFashion samples under FASHIONNET_SAMPLES, else
  scikit-image's public-domain astronaut, coffee and chelsea as JPEGs."""
  return host.real_photos(tmp_path_factory.mktemp("real_photos"))


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
  """A tiny trained category/attribute run (synthetic data, ~30 s on 2 cores).

  Shared by the predict, serve and export tests.
  """
  from tiny import tiny_config

  from fashionnet_jax import train

  root = tmp_path_factory.mktemp("predict_run")
  config = tiny_config(
      **{
          "dataset.data_dir": str(root / "data"),
          "dataset.synthetic_images": 60,
          "eval_at_start": False,
          "model.num_attributes": 1000,
          "loss.attribute_weighting": True,
          "checkpoint_every_steps": 1000,
      }
  )  # one (final) save: ~6 s each
  train.train_and_evaluate(config, root / "workdir")
  return root


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """Synthetic DeepFashion category_attribute for tests/tiny_train_config.py, built once."""
  import tiny_train_config
  from fashionnet_jax.data.prepare import ensure_dataset

  config = tiny_train_config.get_config()
  config.dataset.data_dir = str(tmp_path_factory.mktemp("tfds"))
  ensure_dataset(config)
  return config.dataset.data_dir


@pytest.fixture(scope="session")
def trained(tmp_path_factory, data_dir):
  """One uninterrupted `main` run of tests/tiny_train_config.py: (workdir, its log).
  Tests that change it work on a copy."""
  import e2e

  workdir = tmp_path_factory.mktemp("uninterrupted")
  return workdir, e2e.finish(e2e.main_process(workdir, data_dir))
