"""The pipelines on the real TFDS builder over synthetic DeepFashion (ArrayRecord)."""

import itertools

import numpy as np
import pytest

import input_pipeline_fakes as fakes
from fashionnet_jax.data import pipeline as input_pipeline
from fashionnet_jax.data import preprocess, transforms


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  from fashionnet_jax import synthetic
  from fashionnet_jax.data import tfds_build

  root = tmp_path_factory.mktemp("deepfashion")
  synthetic.generate(
      str(root / "manual"), images=60, seed=0, benchmarks=["category_attribute", "inshop"]
  )
  for name in ("category_attribute", "inshop"):
    tfds_build.build(name, manual_dir=str(root / "manual"), data_dir=str(root / "tfds"))
  return str(root / "tfds")


def _config(data_dir, name="category_attribute", **overrides):
  config = fakes.make_config(**overrides)
  config.dataset.name = f"deepfashion/{name}"
  config.dataset.data_dir = data_dir
  config.model.num_attributes = 1000
  return config


def test_train_batches_from_tfds_follow_the_contract(data_dir):
  batch = next(
      input_pipeline.create_train_iterator(_config(data_dir), process_index=0, process_count=1)
  )
  assert batch["image"].shape == (4, 48, 48, 3) and batch["image"].dtype == np.float32
  assert batch["attributes"].shape == (4, 1000) and batch["attributes"].dtype == np.int8
  assert (batch["category"] >= 0).all() and (batch["item"] == -1).all()
  assert batch["landmarks"].min() >= 0 and batch["landmarks"].max() <= 1
  assert set(np.unique(batch["landmark_visibility"])) <= {0, 1, 2, 3}


def test_eval_on_tfds_is_every_example_in_order(data_dir):
  config = _config(data_dir)
  source = input_pipeline.open_source(config, "validation")
  batches = list(
      input_pipeline.create_eval_iterator(config, "validation", process_index=0, process_count=1)
  )
  images = np.concatenate([b["image"] for b in batches])
  mask = np.concatenate([b["mask"] for b in batches])
  assert mask.sum() == len(source) and not mask[len(source) :].any()
  direct = preprocess.Preprocess(48, 1000, train=False, crop_margin=0.1)
  for i in range(len(source)):
    expected = transforms.normalize_batch(direct(source[i])["image"][None])[0]
    np.testing.assert_array_equal(images[i], expected)


def test_attribute_statistics_on_tfds_match_and_are_cached(data_dir):
  import os

  config = _config(data_dir)
  source = input_pipeline.open_source(config, "train")
  labels = np.stack([source[i]["attributes"] for i in range(len(source))])
  stats = input_pipeline.attribute_statistics(config)
  np.testing.assert_allclose(stats["positive_ratio"], (labels == 1).mean(0), rtol=1e-6)
  assert stats["num_examples"] == len(source)
  cache = os.path.join(str(source.dataset_info.data_dir), "fashionnet_attribute_stats_train.npz")
  assert os.path.exists(cache)
  again = input_pipeline.attribute_statistics(config)
  np.testing.assert_array_equal(again["positive_count"], stats["positive_count"])


def test_inshop_pk_batches_and_no_label_fill(data_dir):
  config = _config(
      data_dir,
      "inshop",
      batch_size=4,
      **{"input.sampler": "pk", "input.retrieval_p": 2, "input.retrieval_k": 2},
  )
  source = input_pipeline.open_source(config, "train")
  ids = {preprocess.item_index(source[i]["item_id"]) for i in range(len(source))}
  for batch in itertools.islice(
      input_pipeline.create_train_iterator(config, process_index=0, process_count=1), 3
  ):
    values, counts = np.unique(batch["item"], return_counts=True)
    assert len(values) == 2 and (counts == 2).all() and set(values) <= ids
    assert (batch["category"] == -1).all() and not batch["attributes"].any()
