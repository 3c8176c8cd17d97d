"""The Category and Attribute benchmark's `Anno_fine/` (2020 re-release), as examples.

The re-release keeps the 1000 coarse attributes in `Anno_coarse/` (config
`category_attribute`) and adds `Anno_fine/`: 26 re-labelled attributes of 6
types (texture, sleeve, length, neckline, fabric, fit) on a subset of the
images, with its own split. Its files (mmfashion: docs/DATA_PREPARATION.md,
configs/category_attribute_predict/*.py and the AttrDataset loader that reads
them with `np.loadtxt`):
- `list_category_cloth.txt`, `list_attr_cloth.txt`: the usual `list_*` frame
  (count line, column names, `name type` rows);
- `{train,val,test}.txt`: one image name per line, no count line, no header;
- `<split>_cate.txt`: the 1-based category label; `<split>_attr.txt`: 26
  values, 1 positive, 0 negative; `<split>_bbox.txt`: `x_1 y_1 x_2 y_2`;
  `<split>_landmarks.txt`: `x y` per landmark in the clothes type's own order,
  padded with `0 0` to 8 landmarks (mmfashion's layout: no clothes type, no
  visibility). These files hold no image names: line k belongs to line k of
  `<split>.txt`, so the five are read in lockstep and must have as many lines.

Where the `x y` pairs come from: mmfashion's data/prepare_attr_pred.py writes
`<split>_landmarks.txt` from the per-image `list_landmarks.txt` (`image_name
clothes_type` then `vis x y` triples) by dropping each triple's visibility digit,
and its docs/DATA_PREPARATION.md lists a `list_landmarks.txt` inside Anno_fine/.
So the visibility a pair lacks is read back from the released per-image list:
`Anno_fine/list_landmarks.txt`, else the coarse `Anno_coarse/` (or `Anno/`)
`list_landmarks.txt` of the same images, for a landmark whose position there is
the same. A landmark whose visibility no file gives (no list, image not listed,
another position) is marked occluded: unknown is never scored as visible (NE),
nor regressed as a visible position; (0, 0) is no position and is occluded too.

What the examples hold, for the data contract's features: `attributes` keeps
the coarse meaning (1 positive, -1 negative; fine has no unknown, so 0 becomes
-1); the clothes type comes from the category's `category_type`. Rows of `vis
x y` triples (6/4/8 or 8) are read too, with their visibility.
"""

from __future__ import annotations

import os
from typing import Iterator

from etils import epath
import numpy as np

from fashionnet_jax.data import annotations as anno
from fashionnet_jax.data.annotations import BadExampleError
from fashionnet_jax.data.annotations import DeepFashionFormatError
from fashionnet_jax.data.annotations import Row
from fashionnet_jax.data.images import ImageStore
from fashionnet_jax.data.records import with_image
from fashionnet_jax.schema import BENCHMARK_DIRS, NUM_FINE_ATTRIBUTES, NUM_LANDMARKS
from fashionnet_jax.schema import OCCLUDED, SLOTS_BY_CLOTHES_TYPE, UNUSED

CONFIG = "category_attribute_fine"
ANNO_DIR = "Anno_fine"
# Split name -> the file stem as released.
SPLIT_FILES = {"train": "train", "validation": "val", "test": "test"}
# The per-split label files beside `<split>.txt`, read in this order.
LABEL_FILES = ("cate", "attr", "bbox", "landmarks")


def plain_rows(path: epath.Path) -> Iterator[Row]:
  """The non-blank lines of a file without count line or header, numbered from 1."""
  if not path.exists():
    raise DeepFashionFormatError(f"{os.fspath(path)}: file not found")
  with path.open("rb") as f:
    for lineno, raw in enumerate(f, 1):
      text = raw.strip()
      if text:
        yield Row(lineno, text)


def parse_fine_attributes(path: str, row: Row, num_attributes: int) -> np.ndarray:
  """`num_attributes` values, 1 positive and 0 negative -> int8, 1 / -1."""
  tokens = anno.split_row(path, row)
  if len(tokens) != num_attributes:
    raise BadExampleError(
        f"{anno.where(path, row.lineno)}: expected {num_attributes}"
        f" attribute labels, got {len(tokens)}"
    )
  bad = [t for t in tokens if t not in ("1", "0", "-1")]
  if bad:
    raise BadExampleError(
        f"{anno.where(path, row.lineno)}: attribute labels must be 1" f" or 0, got {bad[0]!r}"
    )
  return np.where(np.array(tokens) == "1", 1, -1).astype(np.int8)


def parse_fine_landmarks(
    path: str, row: Row, clothes_type: int, released: anno.Landmarks | None = None
) -> anno.Landmarks:
  """`x y` pairs (or `vis x y` triples) in the type's order, maybe padded to 8.

  released: the image's row of the per-image `list_landmarks.txt`, whose
  visibility a pair at the same position takes; other pairs are occluded (unknown).
  """
  tokens = anno.split_row(path, row)
  slots = SLOTS_BY_CLOTHES_TYPE[clothes_type]
  if len(tokens) in (2 * len(slots), 2 * NUM_LANDMARKS):
    width = 2
  elif len(tokens) in (3 * len(slots), 3 * NUM_LANDMARKS):
    width = 3
  else:
    padded = "" if len(slots) == NUM_LANDMARKS else " (or 8 padded)"
    raise BadExampleError(
        f"{anno.where(path, row.lineno)}: clothes_type {clothes_type} (its category's"
        f" type) needs {len(slots)}{padded} `x y` pairs, got {len(tokens)} values"
    )
  xy = np.zeros((NUM_LANDMARKS, 2), np.float32)
  visibility = np.full((NUM_LANDMARKS,), UNUSED, np.int8)
  for i, slot in enumerate(slots):
    values = tokens[width * i : width * i + width]
    x = anno.to_int(path, row, values[-2], f"x of landmark {i + 1}")
    y = anno.to_int(path, row, values[-1], f"y of landmark {i + 1}")
    if width == 3:
      visibility[slot] = anno.to_int(
          path, row, values[0], f"visibility of landmark {i + 1}", (0, 1, 2)
      )
    elif (
        released is not None
        and (x, y) != (0, 0)
        and released.visibility[slot] != UNUSED
        and tuple(released.xy[slot]) == (x, y)
    ):
      visibility[slot] = released.visibility[slot]
    else:  # No visibility anywhere, or (0, 0), which is no position.
      visibility[slot] = OCCLUDED
    xy[slot] = (x, y)
  return anno.Landmarks(clothes_type, None, xy, visibility)


class FineBenchmark:
  """`Category and Attribute Prediction Benchmark/Anno_fine/` under `--manual_dir`."""

  config = CONFIG

  def __init__(self, manual_dir: epath.PathLike, *, num_attributes: int = NUM_FINE_ATTRIBUTES):
    self.num_attributes = num_attributes
    self.root = epath.Path(manual_dir) / BENCHMARK_DIRS[CONFIG]
    self.anno_dir = self.root / ANNO_DIR
    if not self.anno_dir.is_dir():
      raise DeepFashionFormatError(
          f"{self.anno_dir}: folder not found under --manual_dir (the 2020 re-release's"
          " Anno_fine/; the 1000 coarse attributes are config category_attribute)"
      )
    self.images = ImageStore(self.root / "Img")
    self._clothes_types = None
    self._released = None

  def category_names(self) -> list[str]:
    return [n for n, _ in anno.read_names(self.anno_dir / "list_category_cloth.txt")]

  def attribute_names(self) -> list[tuple[str, int]]:
    path = self.anno_dir / "list_attr_cloth.txt"
    names = anno.read_names(path)
    if len(names) != self.num_attributes:
      raise DeepFashionFormatError(
          f"{path}: {len(names)} attributes listed, the builder" f" expects {self.num_attributes}"
      )
    return names

  def clothes_types(self) -> list[int]:
    """The category_type of each category label (index = label - 1)."""
    if self._clothes_types is None:
      path = self.anno_dir / "list_category_cloth.txt"
      names = anno.read_names(path)
      bad = [(n, t) for n, t in names if t not in SLOTS_BY_CLOTHES_TYPE]
      if bad:
        raise DeepFashionFormatError(
            f"{path}: category {bad[0][0]!r} has category_type" f" {bad[0][1]}, expected 1, 2 or 3"
        )
      self._clothes_types = [t for _, t in names]
    return self._clothes_types

  def released_landmarks(self) -> dict[str, anno.Landmarks]:
    """Image name -> its row of the per-image `list_landmarks.txt` (`vis x y` triples):
    Anno_fine/'s, else the coarse one; only the names of the fine splits, {} without a list.

    A malformed row leaves that image's visibility unknown (its pairs occluded).
    """
    if self._released is None:
      self._released = {}
      lists = [self.anno_dir / "list_landmarks.txt"] + [
          self.root / d / "list_landmarks.txt" for d in ("Anno_coarse", "Anno")
      ]
      path = next((p for p in lists if p.exists()), None)
      if path is not None:
        wanted = {
            row.text.split(None, 1)[0].decode("utf-8", "replace")
            for p in (self.anno_dir / f"{stem}.txt" for stem in SPLIT_FILES.values())
            if p.exists()
            for row in plain_rows(p)
        }
        listing = anno.ListFile(path)
        for row in listing:
          name = row.text.split(None, 1)[0].decode("utf-8", "replace")
          if name not in wanted:
            continue
          try:  # with a variation_type column the row has 3 + 3n values, without it 2 + 3n
            tokens = anno.split_row(listing.name, row)
            self._released[name] = anno.parse_landmarks(
                listing.name, row, tokens, has_variation_type=len(tokens) % 3 == 0
            )
          except BadExampleError:
            continue
    return self._released

  def files(self, split: str) -> dict[str, epath.Path]:
    stem = SPLIT_FILES[split]
    out = {"image": self.anno_dir / f"{stem}.txt"}
    out.update({k: self.anno_dir / f"{stem}_{k}.txt" for k in LABEL_FILES})
    return out

  def joined_rows(self, split: str) -> Iterator[dict[str, Row]]:
    """{file key: Row} per image, the five files in lockstep (line k with line k)."""
    files = self.files(split)
    streams = {k: plain_rows(p) for k, p in files.items()}
    while True:
      rows = {k: next(s, None) for k, s in streams.items()}
      ended = [k for k, r in rows.items() if r is None]
      if len(ended) == len(rows):
        return
      if ended:
        other = next(k for k in rows if rows[k] is not None)
        raise DeepFashionFormatError(
            f"{anno.where(os.fspath(files[other]), rows[other].lineno)}: no matching line in"
            f" {os.fspath(files[ended[0]])}, which ended earlier (the {SPLIT_FILES[split]}"
            " files must have one line per image each)"
        )
      yield rows

  def annotation(self, split: str, rows: dict[str, Row]) -> dict:
    """One image's parsed lines (pixels, no image read); BadExampleError."""
    files = {k: os.fspath(p) for k, p in self.files(split).items()}
    name = anno.image_name(files["image"], rows["image"])
    anno.split_row(files["image"], rows["image"], 1, "image_name")
    types = self.clothes_types()
    (label,) = anno.split_row(files["cate"], rows["cate"], 1, "category_label")
    category = anno.to_int(
        files["cate"], rows["cate"], label, "category_label", tuple(range(1, len(types) + 1))
    )
    box = anno.split_row(files["bbox"], rows["bbox"], 4, "x_1 y_1 x_2 y_2")
    marks = parse_fine_landmarks(
        files["landmarks"],
        rows["landmarks"],
        types[category - 1],
        self.released_landmarks().get(name),
    )
    return {
        "name": name,
        "bbox": anno.parse_bbox(files["bbox"], rows["bbox"], box),
        "landmarks": marks,
        "clothes_type": marks.clothes_type - 1,
        "category": category - 1,
        "attributes": parse_fine_attributes(files["attr"], rows["attr"], self.num_attributes),
    }

  def example(self, split: str, rows: dict[str, Row]) -> dict:
    return with_image(
        self.annotation(split, rows),
        self.images,
        anno.where(os.fspath(self.files(split)["image"]), rows["image"].lineno),
    )

  def examples(self, split: str, on_bad=None) -> Iterator[tuple[str, dict]]:
    """Streams (key, example) of one split; `on_bad(split, rows, error)` decides
    about a bad example (default: raise)."""
    for rows in self.joined_rows(split):
      try:
        ex = self.example(split, rows)
      except BadExampleError as e:
        if on_bad is None:
          raise
        on_bad(split, rows, e)
        continue
      yield ex["image/filename"], ex
