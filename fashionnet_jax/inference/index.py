"""A finished retrieval index folder, as `retrieve index` writes it (read by `retrieve query` and `serve`).

  INDEX/embeddings.npy  float32 [N, D], L2-normalised
  INDEX/paths.txt       the N image paths, relative to meta["images"]
  INDEX/meta.json       the checkpoint used, the images folder, counts
"""
from __future__ import annotations

import json
import os

import numpy as np

from fashionnet_jax.cli import UsageError


class GalleryIndexError(UsageError):
  """An index folder that is missing, unfinished or inconsistent (one line)."""


class Index:
  """A finished index folder: embeddings [N, D], relative paths, meta."""

  def __init__(self, folder: str):
    meta_path = os.path.join(folder, "meta.json")
    if not os.path.exists(meta_path):
      raise GalleryIndexError(f"--index {folder}: no meta.json (build it with `retrieve index`)")
    self.folder = folder
    self.meta = json.loads(open(meta_path).read())
    if not self.meta.get("complete"):
      raise GalleryIndexError(f"--index {folder}: unfinished; rerun `retrieve index` to complete it")
    self.embeddings = np.load(os.path.join(folder, "embeddings.npy"))
    with open(os.path.join(folder, "paths.txt")) as f:
      self.paths = [line.rstrip("\n") for line in f]
    if len(self.paths) != len(self.embeddings):
      raise GalleryIndexError(f"{folder}/paths.txt: {len(self.paths)} paths for "
                              f"{len(self.embeddings)} embeddings")

  def check_width(self, width: int) -> None:
    """The querying model's embedding must have the index's width."""
    if self.embeddings.shape[1] != width:
      raise GalleryIndexError(
          f"--index {self.folder}: its embeddings have {self.embeddings.shape[1]} dimensions, "
          f"this model's {width}: rebuild the index with this model")

  def absolute(self, relative: str) -> str:
    return os.path.join(self.meta["images"], relative)
