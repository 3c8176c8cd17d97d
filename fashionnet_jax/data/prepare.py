"""Makes sure the config's TFDS dataset is prepared before training starts.

Real DeepFashion is built once with `tfds build` (README); for the demo and the
tests, `config.dataset.synthetic_if_missing` writes synthetic DeepFashion next to
the TFDS data (DATA_DIR/synthetic_deepfashion/) and builds it with the same builder.
`trained_on(config)` says which of the two a config's prepared data is.
"""

from __future__ import annotations

import os

import jax
from etils import epath

from fashionnet_jax import console
from fashionnet_jax.errors import ConfigError
from fashionnet_jax.schema import BENCHMARK_DIRS, BUILDER_CONFIGS

# Synthetic DeepFashion is kept apart from real TFDS data: both are `deepfashion`.
SYNTHETIC_DATA_DIR = "~/.cache/fashionnet_jax/synthetic_tfds"
# Where ensure_dataset writes the synthetic benchmark folders, under the data dir.
SYNTHETIC_MANUAL_FOLDER = "synthetic_deepfashion"
# What reports and prediction records say a model trained on synthetic data was trained on.
SYNTHETIC = "synthetic DeepFashion (demo)"


def dataset_builder_config(config) -> str:
  """The builder config of `config.dataset.name` ('deepfashion/<config>')."""
  if "dataset" not in config or "name" not in config.dataset:
    raise ConfigError("config.dataset.name is missing")
  name = str(config.dataset.name)
  family, _, builder_config = name.partition("/")
  if family != "deepfashion" or builder_config not in BUILDER_CONFIGS:
    raise ConfigError(
        f"config.dataset.name={name!r}: use deepfashion/<config>, config one of "
        f"{', '.join(BUILDER_CONFIGS)}"
    )
  return builder_config


def data_dir(config) -> epath.Path:
  configured = config.dataset.get("data_dir", None)
  if configured:
    return epath.Path(os.path.expanduser(configured))
  if config.dataset.get("synthetic_if_missing", False):
    return epath.Path(os.path.expanduser(SYNTHETIC_DATA_DIR))
  return epath.Path(os.environ.get("TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets")))


def _synthetic_tree(config) -> epath.Path:
  """The benchmark folder ensure_dataset writes synthetic data to for this config."""
  builder_config = dataset_builder_config(config)
  return data_dir(config) / SYNTHETIC_MANUAL_FOLDER / BENCHMARK_DIRS[builder_config]


def trained_on(config) -> str:
  """What the config's data is: SYNTHETIC when its data dir holds the synthetic tree that
  ensure_dataset built it from (the only way the project builds synthetic data into TFDS),
  else the DeepFashion benchmark ('DeepFashion category_attribute')."""
  if _synthetic_tree(config).is_dir():
    return SYNTHETIC
  return f"DeepFashion {dataset_builder_config(config)}"


def is_prepared(config) -> bool:
  builder_config = dataset_builder_config(config)
  root = data_dir(config) / "deepfashion" / builder_config
  return root.exists() and any(root.glob("*/dataset_info.json"))


def ensure_dataset(config) -> epath.Path:
  """Returns the data dir holding the prepared dataset; builds it if allowed."""
  builder_config = dataset_builder_config(config)
  root = data_dir(config)
  console.import_tensorflow()  # TFDS's, without its banners
  if is_prepared(config):
    return root
  manual_dir = config.dataset.get("manual_dir", None)
  if not manual_dir and not config.dataset.get("synthetic_if_missing", False):
    raise ConfigError(
        f"dataset deepfashion/{builder_config} is not prepared in {root}: build it with "
        f"`tfds build datasets/deepfashion --config={builder_config} --manual_dir=DIR "
        f"--data_dir={root} --file_format=array_record` (README), or set config.dataset.data_dir"
    )
  if jax.process_index() == 0:
    from fashionnet_jax.data import tfds_build

    synthetic_data = not manual_dir
    if synthetic_data:
      from fashionnet_jax import synthetic

      manual_dir = root / SYNTHETIC_MANUAL_FOLDER
      # Two configs share the Category benchmark's folder: a written one is reused
      # when it holds the config's annotations (older trees lack Anno_fine/).
      needed = (
          manual_dir
          / BENCHMARK_DIRS[builder_config]
          / ("Anno_fine" if builder_config == "category_attribute_fine" else "Anno")
      )
      if not needed.is_dir():
        images = int(config.dataset.synthetic_images)
        with console.phase(
            f"writing synthetic DeepFashion ({builder_config}, {images} images) " f"to {manual_dir}"
        ):
          synthetic.generate(
              str(manual_dir),
              images=images,
              seed=int(config.seed),
              benchmarks=[builder_config],
              overwrite=True,
          )
    with console.phase(f"building the TFDS dataset deepfashion/{builder_config} in {root}"):
      # A real build takes hours: its progress bars stay.
      with console.quiet_tfds(progress_bars=not synthetic_data):
        tfds_build.build(builder_config, manual_dir=str(manual_dir), data_dir=str(root))
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("deepfashion dataset prepared")
  if not is_prepared(config):
    raise ConfigError(f"building deepfashion/{builder_config} into {root} left no dataset")
  return root
