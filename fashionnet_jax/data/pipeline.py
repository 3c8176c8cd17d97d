"""grain input pipelines over the TFDS `deepfashion` data sources.

Public API (what the trainer and the evaluator call):

* `create_train_iterator(config, *, process_index=None, process_count=None)`
  → grain `DatasetIterator` of host batches, infinite. Per example: JPEG decode
  (DCT-scaled), bbox crop with margin `crop_margin ± crop_jitter`, resize to
  `image_size`, random horizontal flip (x mirrored, left/right landmark slots
  and visibilities swapped), colour jitter; per batch: ImageNet normalisation.
  Sampling is 'random' (a shuffled, repeated shard of the split) or 'pk'
  (P items × K images, for the triplet loss); `config.input.sampler` picks
  one, else 'pk' when the config has a positive triplet weight and the
  dataset has `item_id`.
* `create_eval_iterator(config, split, ...)` → finite iterator over the split
  in order: fixed-margin crop, no randomness, every example exactly once; the
  last batch is padded and `mask` marks the real examples.
* `make_global_batch(host_batch, mesh, data_axis='data')` → global jax.Arrays.
* `attribute_statistics(config)` → dict(positive_ratio [A] float32,
  num_examples, positive_count, negative_count), cached next to the data.

Batches (numpy, leading dim = host batch = global batch // process_count):
'image' [B,S,S,3] float32 ImageNet-normalised (uint8 with
input.normalize_on_device: the train step normalises), 'landmarks' [B,8,2] float32 (x, y in [0, 1] of
the network input), 'landmark_visibility' [B,8] int32 (0 visible, 1 occluded,
2 truncated, 3 unused), 'category' [B] int32 (-1 none), 'attributes' [B,A]
int8, 'clothes_type' [B] int32, 'item' [B] int32 (-1 none), 'source' [B] int32
(0 shop, 1 consumer, -1 none), 'crop' [B,4] float32 (x0, y0, x1, y1 of the crop in
the released image, normalised; evaluation maps landmarks back with it), 'mask' [B] bool;
eval batches also 'bbox' [B,4] float32 (x0, y0, x1, y1 of the ground-truth bbox,
normalised like 'crop'; the whole image when the dataset has none): landmark NE's frame.

Determinism: an example's augmentation is drawn from (config.seed, epoch,
example index), a P×K batch's from (config.seed, batch index); batching is
done on grain's MapDataset, so batch n is the same whatever the worker count,
and `iterator.get_state()` / `set_state()` (or Orbax with
`grain.checkpoint.CheckpointSave(iterator)` / `CheckpointRestore(iterator)`)
resumes exactly. Each process reads its own contiguous shard of the split.

Config keys: seed, dataset.{name, data_dir, train_split, cache_dir}, image_size,
batch_size, eval_batch_size, input.{crop_margin, crop_jitter, flip,
color_jitter, shuffle, sampler, retrieval_p, retrieval_k, worker_count,
read_threads, prefetch_buffer_size}, model.num_attributes.
"""

import functools
import sys

from absl import flags
import grain
import jax
import numpy as np

from fashionnet_jax.data import attribute_stats
from fashionnet_jax.data import metadata
from fashionnet_jax.data import prepare
from fashionnet_jax.data import preprocess as preprocess_lib
from fashionnet_jax.data import sampling


def open_source(config, split):
  """The TFDS ArrayRecord data source of `split`, images left as JPEG bytes.

  We decode JPEGs ourselves (DCT-scaled, crop first), which is several times
  cheaper than letting TFDS decode full images to arrays.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  return tfds.data_source(
      config.dataset.name,
      split=split,
      data_dir=str(prepare.data_dir(config)),
      download=False,
      decoders={"image": tfds.decode.SkipDecoding()},
  )


def _process(process_index, process_count):
  return (
      jax.process_index() if process_index is None else process_index,
      jax.process_count() if process_count is None else process_count,
  )


def _host_batch_size(global_batch, process_count, what):
  if global_batch % process_count:
    raise ValueError(f"{what}={global_batch} is not divisible by process_count={process_count}")
  return global_batch // process_count


def _num_attributes(config):
  model = config.get("model")
  return model.get("num_attributes", 1000) if model is not None else 1000


def _preprocess(config, train):
  inp = config.input
  return preprocess_lib.Preprocess(
      image_size=config.image_size,
      num_attributes=_num_attributes(config),
      train=train,
      crop_margin=inp.get("crop_margin", 0.1),
      crop_jitter=inp.get("crop_jitter", 0.0),
      flip=inp.get("flip", False),
      color_jitter=inp.get("color_jitter", 0.0),
  )


def _positive_triplet_weight(tree):
  """Whether a (nested) config holds a loss weight `triplet` / `*triplet*_weight` > 0."""
  if hasattr(tree, "items"):
    return any(
        (
            isinstance(v, (int, float))
            and v > 0
            and (k == "triplet" or ("triplet" in k and k.endswith("weight")))
        )
        or _positive_triplet_weight(v)
        for k, v in tree.items()
    )
  if isinstance(tree, (list, tuple)):
    return any(_positive_triplet_weight(v) for v in tree)
  return False


def _sampler(config, source):
  sampler = config.input.get("sampler")
  if sampler in ("random", "pk"):
    return sampler
  if sampler is not None:
    raise ValueError(f"config.input.sampler={sampler!r}: expected 'random' or 'pk'")
  wants = _positive_triplet_weight([config.get("loss"), config.get("stages")])
  return "pk" if wants and len(source) and "item_id" in source[0] else "random"


def _collate(config):
  normalize = not config.input.get("normalize_on_device", False)
  return functools.partial(preprocess_lib.collate, normalize=normalize)


def _to_iterator(ds, config):
  inp = config.input
  ds = ds.to_iter_dataset(
      grain.ReadOptions(
          num_threads=inp.get("read_threads", 2),
          prefetch_buffer_size=inp.get("prefetch_buffer_size", 2),
      )
  )
  if inp.get("worker_count", 0) > 0:
    if not flags.FLAGS.is_parsed():  # grain's workers read absl flags (tests, notebooks)
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=inp.worker_count))
  return iter(ds)


def item_keys(source, config, split):
  """[N] int item index of every example of `split` (scanned once, cached)."""

  def compute():
    keys = [
        preprocess_lib.item_index(v, "example item_id")
        for chunk in metadata.scan_field(source, "item_id")
        for v in chunk
    ]
    return {"item": np.asarray(keys, np.int64)}

  return metadata.load_or_compute(metadata.cache_path(source, config, split, "items"), compute)[
      "item"
  ]


def _pk_dataset(config, source, process_index, process_count):
  """P×K batches; each process samples from its own contiguous share of the items."""
  p, k = config.input.retrieval_p, config.input.retrieval_k
  if config.get("batch_size") not in (None, p * k):
    raise ValueError(
        f"P×K sampling: batch_size={config.batch_size} != retrieval_p·retrieval_k={p * k}"
    )
  host_p = _host_batch_size(p, process_count, "input.retrieval_p")
  keys = item_keys(source, config, config.dataset.train_split)
  items = np.unique(keys)
  start, stop = sampling.shard_bounds(len(items), process_index, process_count)
  mine = np.isin(keys, items[start:stop])
  batches = sampling.PKBatches(keys[mine], np.flatnonzero(mine), host_p, k, seed=config.seed)
  return grain.MapDataset.source(batches).map(
      preprocess_lib.LoadPKBatch(
          source,
          _preprocess(config, train=True),
          config.seed,
          normalize=not config.input.get("normalize_on_device", False),
      )
  )


def create_train_iterator(config, *, process_index=None, process_count=None, source=None):
  """Infinite iterator of augmented host batches (see module docstring).

  `source` (optional) replaces the TFDS data source: any sequence of records
  in the builder's feature layout (tests use an in-memory list).
  """
  process_index, process_count = _process(process_index, process_count)
  if source is None:
    source = open_source(config, config.dataset.train_split)
  if _sampler(config, source) == "pk":
    return _to_iterator(_pk_dataset(config, source, process_index, process_count), config)

  host_batch = _host_batch_size(config.batch_size, process_count, "batch_size")
  start, stop = sampling.shard_bounds(len(source), process_index, process_count)
  if stop - start < host_batch:
    raise ValueError(
        f"process {process_index}'s shard has {stop - start} examples, "
        f"fewer than one host batch ({host_batch})"
    )
  load = preprocess_lib.LoadTrainExample(
      source,
      _preprocess(config, train=True),
      config.seed,
      (start, stop),
      shuffle=config.input.get("shuffle", True),
  )
  ds = (
      grain.MapDataset.range(sys.maxsize)
      .map(load)
      .batch(host_batch, drop_remainder=True, batch_fn=_collate(config))
  )
  return _to_iterator(ds, config)


def create_eval_iterator(config, split, *, process_index=None, process_count=None, source=None):
  """Finite, deterministic iterator over `split`; padded last batch with `mask`."""
  process_index, process_count = _process(process_index, process_count)
  if source is None:
    source = open_source(config, split)
  host_batch = _host_batch_size(config.eval_batch_size, process_count, "eval_batch_size")
  indices = sampling.eval_shard_indices(len(source), process_index, process_count, host_batch)
  ds = grain.MapDataset.source(indices).map(
      preprocess_lib.LoadEvalExample(source, _preprocess(config, train=False))
  )
  ds = ds.batch(host_batch, batch_fn=_collate(config))
  return _to_iterator(ds, config)


def make_global_batch(host_batch, mesh, data_axis="data"):
  """Host numpy arrays → global jax.Arrays sharded on `data_axis` of `mesh`."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(data_axis))
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), host_batch
  )


def attribute_statistics(config, *, source=None):
  """Positive ratio (and counts) per attribute over the training split, cached.

  A dataset without attributes (inshop, consumer2shop, landmarks) gives
  all-zero counts and num_examples 0.
  """
  split = config.dataset.train_split
  if source is None:
    source = open_source(config, split)
  num_attributes = _num_attributes(config)
  if len(source) == 0 or "attributes" not in source[0]:
    zeros = np.zeros((num_attributes,), np.int64)
    return {
        "positive_ratio": zeros.astype(np.float32),
        "num_examples": 0,
        "positive_count": zeros,
        "negative_count": zeros,
    }
  stats = metadata.load_or_compute(
      metadata.cache_path(source, config, split, "attribute_stats"),
      lambda: attribute_stats.count_attributes(source, num_attributes),
  )
  stats["num_examples"] = int(stats["num_examples"])
  return stats
