"""DeepFashion benchmarks as streams of examples (used by the TFDS builder).

A benchmark's annotation files list its images in the same order, so they
are read in lockstep, one row of each at a time, and the image names must
agree row by row. The retrieval benchmarks' partition files are organised
by item and pair, so they are indexed (one small entry per image) instead.
`Benchmark.examples(split)` is the plain streaming path; `chunks()` and
`examples_in_chunk()` are the same code cut into line ranges for Beam.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from etils import epath
import tensorflow_datasets as tfds

from fashionnet_jax.schema import BENCHMARK_DIRS
from fashionnet_jax.data import annotations as anno
from fashionnet_jax.data.annotations import BadExampleError
from fashionnet_jax.data.annotations import DeepFashionFormatError
from fashionnet_jax.data.annotations import ListFile
from fashionnet_jax.data.annotations import Position
from fashionnet_jax.data.annotations import Row
from fashionnet_jax.data.images import ImageStore

SPLITS = {
    "category_attribute": ("train", "validation", "test"),
    "inshop": ("train", "query", "gallery"),
    "consumer2shop": ("train", "validation", "test"),
    "landmarks": ("train", "validation", "test"),
    "category_attribute_fine": ("train", "validation", "test"),  # data/fine.py
}
# evaluation_status as written → split name.
STATUS_TO_SPLIT = {
    "train": "train",
    "val": "validation",
    "test": "test",
    "query": "query",
    "gallery": "gallery",
}
SOURCE_NAMES = ("shop", "consumer")  # source_type 1, 2.

# Per config: lockstep files (key → path under Anno/ or Eval/) and row widths.
_LOCKSTEP = {
    "category_attribute": {
        "category": "Anno/list_category_img.txt",
        "attributes": "Anno/list_attr_img.txt",
        "bbox": "Anno/list_bbox.txt",
        "landmarks": "Anno/list_landmarks.txt",
        "partition": "Eval/list_eval_partition.txt",
    },
    "inshop": {
        "bbox": "Anno/list_bbox_inshop.txt",
        "landmarks": "Anno/list_landmarks_inshop.txt",
    },
    "consumer2shop": {
        "bbox": "Anno/list_bbox_consumer2shop.txt",
        "landmarks": "Anno/list_landmarks_consumer2shop.txt",
    },
    "landmarks": {
        "bbox": "Anno/list_bbox.txt",
        "landmarks": "Anno/list_landmarks.txt",
        "partition": "Eval/list_eval_partition.txt",
    },
}
_BBOX_HEAD = {
    "category_attribute": 1,
    "inshop": 3,
    "consumer2shop": 3,
    "landmarks": 1,
}  # Columns before x_1.


# In-shop's labels are pixels of the released img/ images, all 256×256; the
# img_highres/ copies of the same photos have other sizes, in which those pixels mean nothing.
INSHOP_IMAGE_SIZE = (256, 256)


def with_image(ex: dict, images: ImageStore, where: str, released_size=None) -> dict:
  """An annotation (name, pixel bbox and landmarks) made a feature dict: the image read,
  bbox and landmarks normalised by its size. BadExampleError names `where`.

  released_size: (width, height) every image of the benchmark has as released,
  whose pixels the labels are in; an image of another size is refused
  (DeepFashionFormatError, not skippable: the whole folder is the wrong one).
  """
  name, box, marks = ex.pop("name"), ex.pop("bbox"), ex.pop("landmarks")
  image, width, height = images.read(name, where)
  if released_size is not None and (width, height) != tuple(released_size):
    raise DeepFashionFormatError(
        f"{where}: image {name} in {images.source()} is {width}x{height}, but the labels are"
        f" pixels of the released {released_size[0]}x{released_size[1]} img/ images (img_highres/"
        " unpacked as img/?): use img.zip or its img/ folder"
    )
  ex.update(
      {
          "image": image,
          "image/filename": name,
          "bbox": tfds.features.BBox(*anno.normalized_bbox(box, width, height)),
          "landmarks": anno.normalized_landmarks(marks, width, height),
          "landmark_visibility": marks.visibility,
      }
  )
  return ex


@dataclasses.dataclass
class Chunk:
  """A run of `num_rows` joined rows, starting at `positions` (Beam work)."""

  positions: dict[str, Position]
  num_rows: int


class Benchmark:
  """One benchmark folder under `--manual_dir`, joined image by image."""

  def __init__(self, config: str, manual_dir: epath.PathLike, *, num_attributes: int = 1000):
    if config not in BENCHMARK_DIRS:
      raise ValueError(f"unknown config {config!r}; one of" f" {sorted(BENCHMARK_DIRS)}")
    self.config = config
    self.num_attributes = num_attributes
    self.root = epath.Path(manual_dir) / BENCHMARK_DIRS[config]
    if not self.root.is_dir():
      raise DeepFashionFormatError(
          f"{self.root}: benchmark folder not found under --manual_dir (see"
          " the manual download instructions)"
      )
    # The 2020 re-release renamed Anno/ to Anno_coarse/ (and added Anno_fine/).
    anno_dir = "Anno" if (self.root / "Anno").is_dir() else "Anno_coarse"
    if not (self.root / anno_dir).is_dir() and _LOCKSTEP[config]:
      raise DeepFashionFormatError(
          f"{self.root}: no Anno/ (or Anno_coarse/, as the 2020 re-release names it): "
          "unpack the benchmark's annotation archive there"
      )
    self.files = {
        key: ListFile(self.root / path.replace("Anno/", anno_dir + "/", 1))
        for key, path in _LOCKSTEP[config].items()
    }
    self.anno_dir = self.root / anno_dir
    self.partition_path = self.root / "Eval/list_eval_partition.txt"
    self.images = ImageStore(self.root / "Img")
    self._index = None

  # ------------------------------------------------------------ name lists

  def category_names(self) -> list[str]:
    """Category names in file order (label = 1-based row - 1)."""
    return [n for n, _ in anno.read_names(self.anno_dir / "list_category_cloth.txt")]

  def attribute_names(self) -> list[tuple[str, int]]:
    """(name, type) of the attributes, checked against `num_attributes`."""
    path = self.anno_dir / "list_attr_cloth.txt"
    names = anno.read_names(path)
    if len(names) != self.num_attributes:
      raise DeepFashionFormatError(
          f"{path}: {len(names)} attributes listed, the builder expects" f" {self.num_attributes}"
      )
    return names

  # -------------------------------------------------------------- joining

  def _lockstep(self, streams) -> Iterator[tuple[dict[str, Row], dict]]:
    """Zips per-file (row, position) streams; checks names row by row."""
    keys = list(streams)
    while True:
      items = {k: next(streams[k], None) for k in keys}
      ended = [k for k in keys if items[k] is None]
      if len(ended) == len(keys):
        return
      if ended:
        short, other = ended[0], next(k for k in keys if items[k] is not None)
        row = items[other][0]
        raise DeepFashionFormatError(
            f"{anno.where(self.files[other].name, row.lineno)}: image"
            f" {_first(row)} has no row in {self.files[short].name}, which"
            " ended earlier (the files disagree on the image set)"
        )
      first = keys[0]
      for k in keys[1:]:
        a, b = items[first][0], items[k][0]
        if _first(a) != _first(b):
          raise DeepFashionFormatError(
              f"{anno.where(self.files[first].name, a.lineno)} and"
              f" {anno.where(self.files[k].name, b.lineno)} disagree on the"
              f" image: {_first(a)} vs {_first(b)}"
          )
      yield ({k: items[k][0] for k in keys}, {k: items[k][1] for k in keys})

  def joined_rows(self) -> Iterator[dict[str, Row]]:
    """Every image's rows, {file key: Row}, streamed in lockstep."""
    streams = {k: f.rows_with_positions() for k, f in self.files.items()}
    for rows, _ in self._lockstep(streams):
      yield rows

  def chunks(self, chunk_rows: int = 10_000) -> list[Chunk]:
    """Cuts the joined files into runs of rows (one cheap pass, for Beam)."""
    streams = {k: f.rows_with_positions() for k, f in self.files.items()}
    out, start, count = [], None, 0
    for _, positions in self._lockstep(streams):
      if start is None:
        start, count = positions, 0
      count += 1
      if count == chunk_rows:
        out.append(Chunk(start, count))
        start = None
    if start is not None:
      out.append(Chunk(start, count))
    if self.config in ("inshop", "consumer2shop"):
      self._check_index_covered(self._all_names())
    return out

  def _all_names(self) -> set[str]:
    return {_first(rows["bbox"]) for rows in self.joined_rows()}

  def _chunk_rows(self, chunk: Chunk) -> Iterator[dict[str, Row]]:
    streams = {
        k: ((row, None) for row in f.rows_from(chunk.positions[k], chunk.num_rows))
        for k, f in self.files.items()
    }
    for rows, _ in self._lockstep(streams):
      yield rows

  # ------------------------------------------------------------ partition

  def _partition_index(self) -> dict[str, tuple[str, set[str], int]]:
    """Retrieval benchmarks: image name → (item_id, splits, partition line)."""
    if self._index is not None:
      return self._index
    try:
      self._index = self._read_partition_index()
    except BadExampleError as e:  # No split for its images: not skippable.
      raise DeepFashionFormatError(str(e)) from None
    return self._index

  def _read_partition_index(self) -> dict[str, tuple[str, set[str], int]]:
    listing = ListFile(self.partition_path)
    index = {}
    for row in listing:
      if self.config == "inshop":  # image_name item_id evaluation_status
        name, item, status = anno.split_row(
            listing.name, row, 3, "image_name item_id evaluation_status"
        )
        pairs = [(name, item, status)]
      else:  # image_pair_name_1 image_pair_name_2 item_id evaluation_status
        consumer, shop, item, status = anno.split_row(
            listing.name, row, 4, "image_pair_name_1 image_pair_name_2 item_id evaluation_status"
        )
        pairs = [(consumer, item, status), (shop, item, status)]
      for name, item, status in pairs:
        split = _split_of(listing.name, row, status, self.config)
        old = index.get(name)
        if old is None:
          index[name] = (item, {split}, row.lineno)
        elif old[0] != item:
          raise DeepFashionFormatError(
              f"{anno.where(listing.name, row.lineno)}: image {name} has item"
              f" {item} but item {old[0]} on line {old[2]}"
          )
        else:
          old[1].add(split)
    return index

  def _check_index_covered(self, seen: set[str]) -> None:
    """Every image of the partition must have bbox and landmark rows."""
    for name, (_, _, lineno) in self._partition_index().items():
      if name not in seen:
        raise DeepFashionFormatError(
            f"{anno.where(self.partition_path, lineno)}: image {name} has no"
            f" row in {self.files['bbox'].name} (the files disagree on the"
            " image set)"
        )

  def splits_of(self, rows: dict[str, Row]) -> set[str]:
    """The splits an image belongs to (several for a shared shop image)."""
    if "partition" in rows:
      path, row = self.files["partition"].name, rows["partition"]
      _, status = anno.split_row(path, row, 2, "image_name evaluation_status")
      return {_split_of(path, row, status, self.config)}
    entry = self._partition_index().get(_first(rows["bbox"]))
    if entry is None:
      if self.config == "inshop":  # Consumer-to-shop images may be unpaired.
        row = rows["bbox"]
        raise DeepFashionFormatError(
            f"{anno.where(self.files['bbox'].name, row.lineno)}: image"
            f" {_first(row)} is not in {self.partition_path} (the files"
            " disagree on the image set)"
        )
      return set()
    return entry[1]

  # ------------------------------------------------------------- examples

  def annotation(self, rows: dict[str, Row]) -> dict:
    """One image's parsed rows (pixels, no image read); BadExampleError."""
    files = {k: f.name for k, f in self.files.items()}
    first = rows["bbox"]
    has_variation = self.config != "category_attribute"
    tokens = anno.split_row(files["landmarks"], rows["landmarks"])
    marks = anno.parse_landmarks(
        files["landmarks"], rows["landmarks"], tokens, has_variation_type=has_variation
    )
    head = _BBOX_HEAD[self.config]
    tokens = anno.split_row(files["bbox"], first, head + 4, "image_name ..." " x_1 y_1 x_2 y_2")
    out = {
        "name": anno.image_name(files["bbox"], first),
        "bbox": anno.parse_bbox(files["bbox"], first, tokens[head:]),
        "landmarks": marks,
        "clothes_type": marks.clothes_type - 1,
    }
    if has_variation:
      out["variation_type"] = marks.variation_type
    if self.config == "category_attribute":
      path, row = files["category"], rows["category"]
      _, label = anno.split_row(path, row, 2, "image_name category_label")
      out["category"] = anno.to_int(path, row, label, "category_label") - 1
      out["attributes"] = anno.parse_attributes(
          files["attributes"], rows["attributes"], self.num_attributes
      )
    if self.config == "inshop":
      out["pose_type"] = anno.to_int(files["bbox"], first, tokens[2], "pose_type")
    if self.config in ("inshop", "consumer2shop"):
      out["item_id"] = self._partition_index()[out["name"]][0]
    if self.config == "consumer2shop":
      out["source"] = anno.to_int(files["bbox"], first, tokens[2], "source_type", (1, 2)) - 1
    return out

  def example(self, rows: dict[str, Row]) -> dict:
    """One image's feature dict; BadExampleError if the row or image is bad."""
    return with_image(
        self.annotation(rows),
        self.images,
        anno.where(self.files["bbox"].name, rows["bbox"].lineno),
        INSHOP_IMAGE_SIZE if self.config == "inshop" else None,
    )

  def _examples_of(self, rows_iter, split: str, on_bad) -> Iterator:
    for rows in rows_iter:
      try:
        if split not in self.splits_of(rows):
          continue
        yield _first(rows["bbox"]), self.example(rows)
      except BadExampleError as e:
        on_bad(split, rows, e)

  def examples(self, split: str, on_bad=None) -> Iterator[tuple[str, dict]]:
    """Streams (key, example) of one split; `on_bad(split, rows, error)`
    decides about a bad example (default: raise)."""
    seen = set() if self.config in ("inshop", "consumer2shop") else None

    def rows_iter():
      for rows in self.joined_rows():
        if seen is not None:
          seen.add(_first(rows["bbox"]))
        yield rows

    yield from self._examples_of(rows_iter(), split, on_bad or _raise)
    if seen is not None:
      self._check_index_covered(seen)

  def examples_in_chunk(self, chunk: Chunk, split: str, on_bad=None):
    """The examples of `split` inside one chunk (Beam)."""
    yield from self._examples_of(self._chunk_rows(chunk), split, on_bad or _raise)


def _first(row: Row) -> str:
  return row.text.split(None, 1)[0].decode("utf-8", "replace")


def _split_of(path: str, row: Row, status: str, config: str) -> str:
  allowed = {s for s, split in STATUS_TO_SPLIT.items() if split in SPLITS[config]}
  if status not in allowed:
    raise BadExampleError(
        f"{anno.where(path, row.lineno)}: evaluation_status must be one of"
        f" {sorted(allowed)}, got {status!r}"
    )
  return STATUS_TO_SPLIT[status]


def _raise(split, rows, error):
  del split, rows
  raise error
