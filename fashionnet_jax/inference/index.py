"""A finished retrieval index folder, as `retrieve index` writes it (read by `retrieve query` and `serve`).

  INDEX/embeddings.npy  float32 [N, D], L2-normalised
  INDEX/paths.txt       the N image paths, relative to meta["images"]
  INDEX/crops.jsonl     per image, what the network saw: {"crop": "bbox", "bbox": [x1, y1,
                        x2, y2]} (pixels) or {"crop": "whole image", "bbox": null}
  INDEX/meta.json       the checkpoint used, the images folder, where the bboxes came from, counts

`Index.nearest` is the one gallery ranker of `retrieve query` and `serve`
(`evaluation.search.topk_search`: exact cosine top-k, ties to the lower entry
number). `read_bbox_file` reads the bboxes `retrieve index --bboxes` crops by.
"""

from __future__ import annotations

import json
import os

import numpy as np
from etils import epath

from fashionnet_jax.cli import UsageError
from fashionnet_jax.data import annotations as anno


class GalleryIndexError(UsageError):
  """An index folder that is missing, unfinished or inconsistent (one line)."""


class Index:
  """A finished index folder: embeddings [N, D], relative paths, crops, meta."""

  def __init__(self, folder: str):
    meta_path = os.path.join(folder, "meta.json")
    if not os.path.exists(meta_path):
      raise GalleryIndexError(f"--index {folder}: no meta.json (build it with `retrieve index`)")
    self.folder = folder
    self.meta = json.loads(open(meta_path).read())
    if not self.meta.get("complete"):
      raise GalleryIndexError(
          f"--index {folder}: unfinished; rerun `retrieve index` to complete it"
      )
    self.embeddings = np.load(os.path.join(folder, "embeddings.npy"))
    self._device_embeddings = None  # `nearest` puts them on the device on first use
    with open(os.path.join(folder, "paths.txt")) as f:
      self.paths = [line.rstrip("\n") for line in f]
    if len(self.paths) != len(self.embeddings):
      raise GalleryIndexError(
          f"{folder}/paths.txt: {len(self.paths)} paths for " f"{len(self.embeddings)} embeddings"
      )
    crops_path = os.path.join(folder, "crops.jsonl")
    self.crops = None  # indexes written before crops.jsonl: every image whole
    if os.path.exists(crops_path):
      with open(crops_path) as f:
        self.crops = [json.loads(line) for line in f]
      if len(self.crops) != len(self.paths):
        raise GalleryIndexError(
            f"{crops_path}: {len(self.crops)} crops for " f"{len(self.paths)} paths"
        )

  def check_width(self, width: int) -> None:
    """The querying model's embedding must have the index's width."""
    if self.embeddings.shape[1] != width:
      raise GalleryIndexError(
          f"--index {self.folder}: its embeddings have {self.embeddings.shape[1]} dimensions, "
          f"this model's {width}: rebuild the index with this model"
      )

  def nearest(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k entries nearest each query by cosine, best first: (scores, entry numbers) [Q, k].

    The gallery goes to the device once and stays there (serve ranks every request).
    """
    from fashionnet_jax.evaluation.search import topk_search

    if self._device_embeddings is None:
      import jax.numpy as jnp

      self._device_embeddings = jnp.asarray(self.embeddings)
    scores, numbers = topk_search(queries, self._device_embeddings, k)
    return np.asarray(scores), np.asarray(numbers)

  def absolute(self, relative: str) -> str | None:
    """The image file of an entry; None for a TFDS split indexed without --images."""
    images = self.meta.get("images")
    return os.path.join(images, relative) if images else None


def read_bbox_file(path) -> dict[str, tuple[tuple[int, int, int, int], str]]:
  """image name → (pixel bbox (x1, y1, x2, y2), "file:line") from a bbox file.

  Two formats, told apart by line 1:
  - a released `list_bbox*.txt`: line 1 the count, line 2 the column names, then
    `image_name [other columns] x_1 y_1 x_2 y_2` (the last four columns are the bbox:
    Category and FLD have none between, In-shop and Consumer-to-shop two);
  - plain rows `image x1 y1 x2 y2`, integer pixels (blank lines and `#` lines skipped).
  Names are paths relative to the folder indexed (the released files' `img/...`
  are relative to the benchmark's `Img/`). Rows go through the annotation parsers
  of the TFDS build (`data.annotations`).

  Raises:
    DeepFashionFormatError: one line naming the file and line (malformed row, bad
      count line, a name given twice, a name escaping the folder).
  """
  name = os.fspath(path)
  try:
    with epath.Path(path).open("rb") as f:
      first = f.readline().strip()
  except OSError as e:
    raise anno.DeepFashionFormatError(f"{name}: cannot read the bbox file ({e})") from None
  released = first.isdigit()
  rows = iter(anno.ListFile(path)) if released else _plain_rows(path)
  boxes = {}
  for row in rows:
    tokens = anno.split_row(name, row, None if released else 5, "image x1 y1 x2 y2")
    if len(tokens) < 5:
      raise anno.BadExampleError(
          f"{anno.where(name, row.lineno)}: expected image_name ... x_1 y_1 x_2 y_2, got "
          f"{len(tokens)} columns"
      )
    image = anno.image_name(name, row).replace("\\", "/")
    box = anno.parse_bbox(name, row, tokens[-4:])
    if image in boxes:
      raise anno.BadExampleError(
          f"{anno.where(name, row.lineno)}: image {image} already has a "
          f"bbox at {boxes[image][1]}"
      )
    boxes[image] = (box, anno.where(name, row.lineno))
  return boxes


def _plain_rows(path):
  with epath.Path(path).open("rb") as f:
    for lineno, raw in enumerate(f, 1):
      text = raw.strip()
      if text and not text.startswith(b"#"):
        yield anno.Row(lineno, text)
