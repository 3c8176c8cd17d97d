"""One TFDS `deepfashion` record → one example of the batch contract, and batching.

Every builder config gives the same structure: features a config lacks get the
contract's 'no label' values (category -1, attributes all 0, item -1,
landmarks (0, 0) with visibility 3, bbox = whole image, clothes_type -1).
The callables here are module-level classes so grain can pickle them into
worker processes.
"""

import dataclasses
import re

import numpy as np

from fashionnet_jax.data import transforms
from fashionnet_jax.schema import NUM_LANDMARKS, UNUSED

_ITEM_NUMBER = re.compile(r"(\d+)\s*$")


def _text(value):
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def example_name(record, index):
  """How errors name an example: its file name, else its index in the split."""
  if "image/filename" in record:
    return f"{_text(record['image/filename'])} (example {index})"
  return f"example {index}"


def item_index(item_id, name="item_id"):
  """Stable int index of a DeepFashion item id: 'id_00000218' → 218.

  The number is the same in every split (query and gallery share it), so the
  mapping needs no scan of the data.
  """
  text = _text(item_id)
  match = _ITEM_NUMBER.search(text)
  if match is None:
    raise ValueError(f"{name}: item_id {text!r} does not end in a number (expected 'id_XXXXXXXX')")
  return int(match.group(1))


@dataclasses.dataclass(frozen=True)
class Preprocess:
  """Decodes, crops, resizes (and in training flips and jitters) one record."""

  image_size: int
  num_attributes: int
  train: bool
  crop_margin: float = 0.1
  crop_jitter: float = 0.0
  flip: bool = False
  color_jitter: float = 0.0

  def __call__(self, record, rng=None, name="example"):
    train = self.train and rng is not None
    bbox = record.get("bbox")
    if bbox is None:
      bbox = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
    margins = (
        transforms.jittered_margins(rng, self.crop_margin, self.crop_jitter)
        if train
        else self.crop_margin
    )
    crop = transforms.bbox_crop(bbox, margins)
    flip = bool(train and self.flip and rng.random() < 0.5)

    if "landmarks" in record:
      # The record's p / W -> pixel centres (p + 0.5) / W, once (transforms' convention).
      landmarks = transforms.pixel_centres(
          record["landmarks"],
          record["landmark_visibility"],
          *transforms.image_size(record["image"], name),
      )
      landmarks, visibility = transforms.crop_landmarks(
          landmarks, record["landmark_visibility"], crop
      )
    else:
      landmarks = np.zeros((NUM_LANDMARKS, 2), np.float32)
      visibility = np.full((NUM_LANDMARKS,), UNUSED, np.int32)
    if flip:
      landmarks, visibility = transforms.flip_landmarks(landmarks, visibility)
    color = (
        transforms.color_jitter_factors(rng, self.color_jitter)
        if train and self.color_jitter > 0
        else None
    )
    image = transforms.decode_crop_resize(
        record["image"], crop, self.image_size, flip=flip, color=color, name=name
    )

    attributes = record.get("attributes")
    if attributes is None:
      attributes = np.zeros((self.num_attributes,), np.int8)
    elif len(attributes) != self.num_attributes:
      raise ValueError(
          f"{name}: {len(attributes)} attributes, config expects {self.num_attributes}"
      )
    return {
        "image": image,
        "landmarks": landmarks,
        "landmark_visibility": visibility.astype(np.int32),
        "category": np.int32(record.get("category", -1)),
        "attributes": np.asarray(attributes, np.int8),
        "clothes_type": np.int32(record.get("clothes_type", -1)),
        "item": np.int32(item_index(record["item_id"], name) if "item_id" in record else -1),
        # 0 shop, 1 consumer (consumer2shop's ClassLabel), -1 elsewhere.
        "source": np.int32(record.get("source", -1)),
        # (x0, y0, x1, y1) of the crop in the released image, normalised: evaluation
        # maps landmarks back to image coordinates, where the paper measures NE.
        "crop": np.asarray(crop, np.float32),
        "mask": np.bool_(True),
    }

  def padding(self):
    """The example that pads the last eval batch (mask False, no labels)."""
    s = self.image_size
    return {
        "image": np.zeros((s, s, 3), np.uint8),
        "landmarks": np.zeros((NUM_LANDMARKS, 2), np.float32),
        "landmark_visibility": np.full((NUM_LANDMARKS,), UNUSED, np.int32),
        "category": np.int32(-1),
        "attributes": np.zeros((self.num_attributes,), np.int8),
        "clothes_type": np.int32(-1),
        "item": np.int32(-1),
        "source": np.int32(-1),
        "crop": np.array([0.0, 0.0, 1.0, 1.0], np.float32),
        "mask": np.bool_(False),
    }


def example_rng(*key):
  """Generator seeded by a tuple of ints, e.g. (seed, epoch, example index).

  The draw depends only on the key, never on worker count or read order.
  """
  return np.random.default_rng([int(k) % 2**63 for k in key])


class LoadTrainExample:
  """map fn: position in the repeated shard → augmented example.

  Position p is example `order[p % n]` of epoch p // n, where `order` is a
  permutation of the shard drawn from (seed, epoch) (identity without
  shuffling). One numpy permutation per epoch is far cheaper than grain's
  per-index `shuffle` (~0.5 ms an example).
  """

  def __init__(self, source, preprocess, seed, shard, shuffle):
    self.source, self.preprocess, self.seed = source, preprocess, seed
    self.start, self.stop = shard
    self.shuffle = shuffle
    self._orders = {}

  def __getstate__(self):  # workers rebuild the permutation cache
    return {k: v for k, v in self.__dict__.items() if k != "_orders"}

  def __setstate__(self, state):
    self.__dict__.update(state, _orders={})

  def source_index(self, position):
    epoch, offset = divmod(int(position), self.stop - self.start)
    if not self.shuffle:
      return epoch, self.start + offset
    cached = self._orders  # {epoch: order} of the latest two epochs; replaced atomically
    order = cached.get(epoch)
    if order is None:
      order = np.random.default_rng([self.seed % 2**63, epoch]).permutation(self.stop - self.start)
      self._orders = {e: o for e, o in cached.items() if e == epoch - 1} | {epoch: order}
    return epoch, self.start + int(order[offset])

  def __call__(self, position):
    epoch, index = self.source_index(position)
    record = self.source[index]
    rng = example_rng(self.seed, epoch, index)
    return self.preprocess(record, rng, example_name(record, index))


@dataclasses.dataclass(frozen=True)
class LoadEvalExample:
  """map fn: source index (or -1 for padding) → deterministic example."""

  source: object
  preprocess: Preprocess

  def __call__(self, index):
    index = int(index)
    if index < 0:
      return dict(self.preprocess.padding(), bbox=np.array([0.0, 0.0, 1.0, 1.0], np.float32))
    record = self.source[index]
    example = self.preprocess(record, None, example_name(record, index))
    # The ground-truth bbox (x0, y0, x1, y1), normalised like 'crop': the frame
    # evaluation measures landmark NE in, whatever margin the crop adds.
    ymin, xmin, ymax, xmax = record.get("bbox", (0.0, 0.0, 1.0, 1.0))
    example["bbox"] = np.array([xmin, ymin, xmax, ymax], np.float32)
    return example


@dataclasses.dataclass(frozen=True)
class LoadPKBatch:
  """map fn: one P×K batch of source indices → a list of examples."""

  source: object
  preprocess: Preprocess
  seed: int
  normalize: bool = True

  def __call__(self, batch):
    batch_index, indices = batch
    examples = []
    for slot, index in enumerate(indices):
      index = int(index)
      record = self.source[index]
      rng = example_rng(self.seed, batch_index, slot)
      examples.append(self.preprocess(record, rng, example_name(record, index)))
    return collate(examples, self.normalize)


def collate(examples, normalize=True):
  """Stacks examples into the batch contract; images normalised batch-wise.

  normalize=False leaves images uint8 for `transforms.normalize_on_device`: a
  quarter of the host-to-device bytes, and about a third less host CPU per image.
  """
  batch = {k: np.stack([e[k] for e in examples]) for k in examples[0]}
  if normalize:
    batch["image"] = transforms.normalize_batch(batch["image"])
  return batch
