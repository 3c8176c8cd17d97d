"""grain pipelines: contract, coverage, sharding, determinism, resumption, P×K, stats."""

import itertools

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import input_pipeline_fakes as fakes
from fashionnet_jax.data import pipeline as input_pipeline
from fashionnet_jax import schema
from fashionnet_jax.data import transforms

CONTRACT = {
    "image": ((48, 48, 3), np.float32),
    "landmarks": ((8, 2), np.float32),
    "landmark_visibility": ((8,), np.int32),
    "category": ((), np.int32),
    "attributes": ((6,), np.int8),
    "clothes_type": ((), np.int32),
    "item": ((), np.int32),
    "source": ((), np.int32),
    "crop": ((4,), np.float32),
    "mask": ((), np.bool_),
}


def _take(iterator, n):
  return list(itertools.islice(iterator, n))


def _assert_same(batches_a, batches_b):
  assert len(batches_a) == len(batches_b)
  for a, b in zip(batches_a, batches_b):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def source():
  return fakes.make_source(24)


def test_train_batches_follow_the_contract(source):
  batch = next(
      input_pipeline.create_train_iterator(
          fakes.make_config(), process_index=0, process_count=1, source=source
      )
  )
  assert set(batch) == set(CONTRACT)
  for key, (shape, dtype) in CONTRACT.items():
    assert batch[key].shape == (4,) + shape and batch[key].dtype == dtype, key
  assert batch["mask"].all()
  assert batch["landmarks"].min() >= 0 and batch["landmarks"].max() <= 1
  unused = batch["landmark_visibility"] == 3
  np.testing.assert_array_equal(batch["landmarks"][unused], 0.0)
  assert abs(batch["image"].mean()) < 2.5  # ImageNet-normalised, not 0..255


def test_train_landmarks_sit_on_their_markers_with_random_flips(source):
  """Every example is either unflipped (slot s shows colour s) or flipped."""
  config = fakes.make_config(**{"input.crop_jitter": 0.15})
  batches = _take(
      input_pipeline.create_train_iterator(config, process_index=0, process_count=1, source=source),
      6,
  )
  kinds = []
  for batch in batches:
    pixels = transforms.denormalize(batch["image"])
    for image, xy, vis in zip(pixels, batch["landmarks"], batch["landmark_visibility"]):
      seen = {
          s: fakes.nearest_slot_colour(image[int(xy[s, 1] * 48), int(xy[s, 0] * 48)])
          for s in np.flatnonzero(vis < 2)
      }
      if all(seen[s] == s for s in seen):
        kinds.append("plain")
      elif all(seen[s] == schema.FLIP_PERMUTATION[s] for s in seen):
        kinds.append("flipped")
      else:
        pytest.fail(f"landmarks off their markers: {seen}")
  assert set(kinds) == {"plain", "flipped"}


def test_eval_sees_every_example_once_with_padding_mask():
  source = fakes.make_source(10, images_per_item=1)  # item == example index
  config = fakes.make_config()
  seen, padding = [], 0
  for pi in range(2):
    batches = list(
        input_pipeline.create_eval_iterator(
            config, "validation", process_index=pi, process_count=2, source=source
        )
    )
    assert len(batches) == 3  # ceil(ceil(10 / 2) / (4 / 2)) on both hosts
    for b in batches:
      assert b["image"].shape[0] == 2
      seen += list(b["item"][b["mask"]])
      padding += int((~b["mask"]).sum())
      assert (b["item"][~b["mask"]] == -1).all()
  assert sorted(seen) == list(range(10)) and padding == 2
  again = list(
      input_pipeline.create_eval_iterator(
          config, "validation", process_index=0, process_count=1, source=source
      )
  )
  assert [int(i) for b in again for i in b["item"][b["mask"]]] == list(range(10))
  _assert_same(
      again,
      list(
          input_pipeline.create_eval_iterator(
              config, "validation", process_index=0, process_count=1, source=source
          )
      ),
  )


def test_two_processes_read_disjoint_shards_covering_the_split():
  source = fakes.make_source(24, images_per_item=1)
  config = fakes.make_config(batch_size=8)  # host batch 4, 12 examples per host
  epoch = []
  for pi in range(2):
    batches = _take(
        input_pipeline.create_train_iterator(
            config, process_index=pi, process_count=2, source=source
        ),
        3,
    )
    epoch.append({int(i) for b in batches for i in b["item"]})
    assert len(epoch[-1]) == 12
  assert not epoch[0] & epoch[1] and epoch[0] | epoch[1] == set(range(24))


def test_restored_iterator_yields_the_uninterrupted_batches(source, tmp_path):
  config = fakes.make_config()
  make = lambda: input_pipeline.create_train_iterator(
      config, process_index=0, process_count=1, source=source
  )
  reference = _take(make(), 10)  # crosses an epoch boundary (6 batches per epoch)
  interrupted = make()
  _take(interrupted, 4)
  state = interrupted.get_state()
  resumed = make()
  resumed.set_state(state)
  _assert_same(_take(resumed, 6), reference[4:])
  # The same through Orbax, as the trainer's checkpoints do it.
  checkpointer = ocp.Checkpointer(grain.checkpoint.CheckpointHandler())
  checkpointer.save(tmp_path / "data", args=grain.checkpoint.CheckpointSave(interrupted))
  restored = checkpointer.restore(
      tmp_path / "data", args=grain.checkpoint.CheckpointRestore(make())
  )
  _assert_same(_take(restored, 6), reference[4:])


def test_batches_do_not_depend_on_worker_count(source):
  config = fakes.make_config()
  in_process = _take(
      input_pipeline.create_train_iterator(config, process_index=0, process_count=1, source=source),
      3,
  )
  config.input.worker_count = 2
  workers = _take(
      input_pipeline.create_train_iterator(config, process_index=0, process_count=1, source=source),
      3,
  )
  _assert_same(in_process, workers)


def test_seed_and_epoch_change_the_augmentation(source):
  config = fakes.make_config(**{"input.shuffle": False, "input.color_jitter": 0.3})
  batches = _take(
      input_pipeline.create_train_iterator(config, process_index=0, process_count=1, source=source),
      7,
  )
  np.testing.assert_array_equal(batches[0]["item"], batches[6]["item"])  # same examples
  assert not np.array_equal(batches[0]["image"], batches[6]["image"])  # new epoch, new draw
  other = next(
      input_pipeline.create_train_iterator(
          fakes.make_config(seed=8, **{"input.shuffle": False, "input.color_jitter": 0.3}),
          process_index=0,
          process_count=1,
          source=source,
      )
  )
  assert not np.array_equal(batches[0]["image"], other["image"])


@pytest.mark.parametrize("process_count", [1, 2])
def test_pk_batches_hold_p_items_with_k_images(process_count):
  # 3 images per item, plus items 8.. with one image (sampled with replacement).
  source = fakes.make_source(24) + [
      dict(r, item_id=f"id_{100 + i:08d}".encode())
      for i, r in enumerate(fakes.make_source(6, seed=2))
  ]
  config = fakes.make_config(
      batch_size=12, **{"input.sampler": "pk", "input.retrieval_p": 6, "input.retrieval_k": 2}
  )
  hosts = []
  for pi in range(process_count):
    batches = _take(
        input_pipeline.create_train_iterator(
            config, process_index=pi, process_count=process_count, source=source
        ),
        4,
    )
    items = set()
    for b in batches:
      assert b["image"].shape[0] == 12 // process_count
      values, counts = np.unique(b["item"], return_counts=True)
      assert len(values) == 6 // process_count and (counts == 2).all()
      items |= set(values.tolist())
    hosts.append(items)
  if process_count == 2:
    assert not hosts[0] & hosts[1]
  assert any(i >= 100 for h in hosts for i in h)  # single-image items were drawn


def test_triplet_weight_selects_pk_sampling(source):
  config = fakes.make_config(batch_size=6)
  del config.input["sampler"]
  config.stages = [
      dict(name="pose", weights=dict(triplet=0.0)),
      dict(name="recognition", weights=dict(triplet=1.0)),
  ]
  batch = next(
      input_pipeline.create_train_iterator(config, process_index=0, process_count=1, source=source)
  )
  assert (np.unique(batch["item"], return_counts=True)[1] == 2).all()


def test_attribute_statistics_match_a_direct_count(source):
  stats = input_pipeline.attribute_statistics(fakes.make_config(), source=source)
  labels = np.stack([r["attributes"] for r in source])
  np.testing.assert_allclose(stats["positive_ratio"], (labels == 1).mean(0), rtol=1e-6)
  np.testing.assert_array_equal(stats["negative_count"], (labels == -1).sum(0))
  assert stats["num_examples"] == 24 and stats["positive_ratio"].dtype == np.float32


def test_missing_features_get_no_label_values():
  source = fakes.make_source(
      8, fields={"image", "bbox", "landmarks", "landmark_visibility", "clothes_type"}
  )  # like inshop minus items
  batch = next(
      input_pipeline.create_train_iterator(
          fakes.make_config(), process_index=0, process_count=1, source=source
      )
  )
  assert set(batch) == set(CONTRACT)
  assert (batch["category"] == -1).all() and (batch["item"] == -1).all()
  assert (batch["source"] == -1).all()
  assert batch["attributes"].shape == (4, 6) and not batch["attributes"].any()


def test_make_global_batch_shards_on_the_data_axis():
  mesh = jax.make_mesh((8,), ("data",))
  host = {"image": np.ones((8, 4, 4, 3), np.float32), "mask": np.ones((8,), bool)}
  batch = input_pipeline.make_global_batch(host, mesh)
  assert batch["image"].shape == (8, 4, 4, 3)
  assert len(batch["image"].sharding.device_set) == 8
  assert batch["image"].addressable_shards[0].data.shape == (1, 4, 4, 3)


def test_bad_input_errors_name_the_example():
  source = fakes.make_source(4)
  source[2] = dict(source[2], image=b"garbage")
  with pytest.raises(ValueError, match="img_00000002.jpg"):
    list(
        input_pipeline.create_eval_iterator(
            fakes.make_config(), "validation", process_index=0, process_count=1, source=source
        )
    )
  with pytest.raises(ValueError, match="not divisible"):
    input_pipeline.create_train_iterator(
        fakes.make_config(batch_size=5), process_index=0, process_count=2, source=source
    )
