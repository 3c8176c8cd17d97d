"""DeepFashion (Liu et al., CVPR 2016): category/attribute, In-shop,
Consumer-to-shop and Fashion Landmark Detection benchmarks, one config each.

    tfds build datasets/deepfashion --manual_dir=DIR \\
        --config=category_attribute --file_format=array_record

The parsing lives in `fashionnet_jax.data` (annotations, images,
records) so the trainer, tools and tests share it.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from fashionnet_jax import schema
from fashionnet_jax.data import annotations as anno
from fashionnet_jax.data import fine
from fashionnet_jax.data import records

SKIP_ENV = "DEEPFASHION_SKIP_BAD_EXAMPLES"
SKIPPED_FILE = "skipped_examples.tsv"

# Description and citation: README.md and CITATIONS.bib beside this file.


class DeepFashionConfig(tfds.core.BuilderConfig):
  """One benchmark; the label counts are those of the released files."""

  def __init__(
      self, *, num_categories: int = 50, num_attributes: int = schema.NUM_ATTRIBUTES, **kwargs
  ):
    super().__init__(**kwargs)
    self.num_categories = num_categories
    self.num_attributes = num_attributes


class Builder(tfds.core.GeneratorBasedBuilder):
  """DeepFashion from the manually downloaded benchmark folders.

  Builder kwargs (e.g. `tfds.builder('deepfashion', skip_bad_examples=True)`):
    skip_bad_examples: skip (and list in `skipped_examples.tsv` next to the
      prepared data) images whose row is malformed or whose file is missing or
      undecodable, instead of failing. Defaults to the environment variable
      DEEPFASHION_SKIP_BAD_EXAMPLES=1, which is how `tfds build` sets it.
    beam_chunk_rows: annotation rows per Beam work item (Beam builds only).
  Beam is used when the build is given Beam options
  (`tfds build --beam_pipeline_options=...`).
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      DeepFashionConfig(
          name="category_attribute",
          description="Category and Attribute Prediction Benchmark: 289,222"
          " images, 50 categories, 1000 attributes.",
      ),
      DeepFashionConfig(
          name="inshop",
          description="In-shop Clothes Retrieval Benchmark: 52,712 images of"
          " 7,982 items; train / query / gallery.",
      ),
      DeepFashionConfig(
          name="consumer2shop",
          description="Consumer-to-shop Clothes Retrieval Benchmark: 239,557"
          " images; one example per image per split.",
      ),
      DeepFashionConfig(
          name="landmarks",
          description="Fashion Landmark Detection Benchmark (FLD): 123,016" " images.",
      ),
      DeepFashionConfig(
          name=fine.CONFIG,
          num_attributes=schema.NUM_FINE_ATTRIBUTES,
          description="Category and Attribute Prediction Benchmark, the 2020"
          " Anno_fine/ re-labelling: 26 attributes of 6 types, its own"
          " train / val / test files.",
      ),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  DeepFashion is released behind an agreement form (non-commercial research
  only): http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion.html . Download the
  benchmarks you need and put their folders, with their released names, in
  `manual_dir`:

    manual_dir/
      Category and Attribute Prediction Benchmark/   -> config category_attribute
      In-shop Clothes Retrieval Benchmark/           -> config inshop
      Consumer-to-shop Clothes Retrieval Benchmark/  -> config consumer2shop
      Fashion Landmark Detection Benchmark/          -> config landmarks

  each holding `Anno/` (or `Anno_coarse/` in the 2020 re-release), `Eval/`
  and `Img/img.zip` (or the extracted `Img/img/`); config
  category_attribute_fine reads the first one's `Anno_fine/` (2020). Some zips are password
  protected: the password comes with the agreement form; unzip them yourself
  (`cd Img && unzip img.zip`, giving `Img/img/...`) or keep an unencrypted
  zip. Encrypted zips are refused with a message naming them.
  """

  def __init__(
      self, *, skip_bad_examples: bool | None = None, beam_chunk_rows: int = 10_000, **kwargs
  ):
    if skip_bad_examples is None:
      skip_bad_examples = os.environ.get(SKIP_ENV, "0").lower() in ("1", "true", "yes")
    self.skip_bad_examples = skip_bad_examples
    self.beam_chunk_rows = beam_chunk_rows
    self.skipped: list[tuple[str, str]] = []  # (split, message)
    self._use_beam = False
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    features: dict[str, Any] = {
        "image": tfds.features.Image(encoding_format="jpeg"),
        "image/filename": tfds.features.Text(),
        "bbox": tfds.features.BBoxFeature(),
        "landmarks": tfds.features.Tensor(shape=(8, 2), dtype=np.float32),
        "landmark_visibility": tfds.features.Tensor(shape=(8,), dtype=np.int8),
        "clothes_type": tfds.features.ClassLabel(names=list(schema.CLOTHES_TYPE_NAMES)),
    }
    if config.name in schema.ATTRIBUTE_TYPES_BY_CONFIG:
      # Names come from Anno/list_category_cloth.txt at build time.
      features["category"] = tfds.features.ClassLabel(num_classes=config.num_categories)
      features["attributes"] = tfds.features.Tensor(shape=(config.num_attributes,), dtype=np.int8)
    else:
      features["variation_type"] = tfds.features.Scalar(dtype=np.int32)
    if config.name == "inshop":
      features["pose_type"] = tfds.features.Scalar(dtype=np.int32)
    if config.name in ("inshop", "consumer2shop"):
      features["item_id"] = tfds.features.Text()
    if config.name == "consumer2shop":
      features["source"] = tfds.features.ClassLabel(names=list(records.SOURCE_NAMES))
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(features),
        supervised_keys=None,
        homepage="http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion.html",
        metadata=tfds.core.MetadataDict(),
    )

  def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
    """Notes whether Beam was asked for, then writes the skipped list."""
    self._use_beam = bool(
        download_config and (download_config.beam_options or download_config.beam_runner)
    )
    self.skipped = []
    super().download_and_prepare(
        download_dir=download_dir, download_config=download_config, **kwargs
    )
    if self.skipped:
      path = self.data_path / SKIPPED_FILE
      path.write_text("".join(f"{split}\t{msg}\n" for split, msg in self.skipped))
      logging.warning(
          "Skipped %d bad examples (listed in %s); first: %s",
          len(self.skipped),
          path,
          self.skipped[0][1],
      )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    if config.name == fine.CONFIG:
      bench = fine.FineBenchmark(dl_manager.manual_dir, num_attributes=config.num_attributes)
    else:
      bench = records.Benchmark(
          config.name, dl_manager.manual_dir, num_attributes=config.num_attributes
      )
    if config.name in schema.ATTRIBUTE_TYPES_BY_CONFIG:
      names = bench.category_names()
      if len(names) != config.num_categories:
        raise anno.DeepFashionFormatError(
            f"{bench.anno_dir / 'list_category_cloth.txt'}: {len(names)}"
            f" categories listed, the builder expects"
            f" {config.num_categories}"
        )
      self.info.features["category"].names = names
      attributes = bench.attribute_names()
      self.info.metadata["attribute_names"] = [n for n, _ in attributes]
      self.info.metadata["attribute_types"] = [t for _, t in attributes]
    if self._use_beam and config.name == fine.CONFIG:
      logging.info("%s: a subset of the images, built without Beam", config.name)
    elif self._use_beam:
      chunks = bench.chunks(self.beam_chunk_rows)
      return {
          split: _beam_examples(bench, split, chunks, self.skip_bad_examples)
          for split in records.SPLITS[config.name]
      }
    return {split: self._generate_examples(bench, split) for split in records.SPLITS[config.name]}

  def _generate_examples(self, bench: records.Benchmark, split: str):
    """Streams one split's examples (the default, single-machine path)."""
    on_bad = self._skip if self.skip_bad_examples else None
    yield from bench.examples(split, on_bad)

  def _skip(self, split, rows, error):
    del rows
    logging.warning("Skipping bad example: %s", error)
    self.skipped.append((split, str(error)))


def _beam_examples(bench, split, chunks, skip_bad_examples):
  """The same per-example code over chunks of annotation lines, on Beam."""
  import apache_beam as beam  # pylint: disable=g-import-not-at-top

  def examples(chunk):
    def on_bad(split, rows, error):
      del split, rows
      if not skip_bad_examples:
        raise error
      logging.warning("Skipping bad example: %s", error)
      beam.metrics.Metrics.counter("deepfashion", "skipped_examples").inc()

    yield from bench.examples_in_chunk(chunk, split, on_bad)

  return f"Chunks_{split}" >> beam.Create(chunks) | f"Examples_{split}" >> beam.FlatMap(examples)
