"""Builds the `deepfashion` TFDS dataset from code (what `tfds build` does).

    from fashionnet_jax.data import tfds_build
    builder = tfds_build.build("category_attribute", manual_dir, data_dir)
    source = tfds.data_source("deepfashion/category_attribute", data_dir=data_dir)

The builder lives in the TFDS dataset folder `datasets/deepfashion/` (not a
package on the path); `load_builder_module` imports it the way `tfds build`
does, as `deepfashion.deepfashion_dataset_builder`, which also registers the
name so that `tfds.builder("deepfashion", ...)` works afterwards.
"""

from __future__ import annotations

import importlib
import pathlib
import sys
import types

from etils import epath
import tensorflow_datasets as tfds

MODULE = "deepfashion.deepfashion_dataset_builder"
BUILDER_DIR = pathlib.Path(__file__).resolve().parents[2] / "datasets" / "deepfashion"


def load_builder_module(builder_dir: epath.PathLike = BUILDER_DIR) -> types.ModuleType:
  """Imports `datasets/deepfashion/deepfashion_dataset_builder.py` once."""
  if MODULE in sys.modules:
    return sys.modules[MODULE]
  builder_dir = pathlib.Path(builder_dir)
  if not (builder_dir / "deepfashion_dataset_builder.py").exists():
    raise FileNotFoundError(
        f"{builder_dir}: deepfashion_dataset_builder.py not found (is the"
        " fashionnet_jax checkout installed with `pip install -e .`?)"
    )
  with tfds.core.utils.add_sys_path(builder_dir.parent):
    return importlib.import_module(MODULE)


def builder_cls() -> type[tfds.core.GeneratorBasedBuilder]:
  """The `Builder` class of the `deepfashion` dataset."""
  return load_builder_module().Builder


def build(
    builder_config: str,
    manual_dir: epath.PathLike,
    data_dir: epath.PathLike,
    skip_bad_examples: bool = False,
    file_format: str = "array_record",
) -> tfds.core.DatasetBuilder:
  """Builds one config into `data_dir` (reused if already built)."""
  builder = builder_cls()(
      config=builder_config,
      data_dir=data_dir,
      file_format=file_format,
      skip_bad_examples=skip_bad_examples,
  )
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder
