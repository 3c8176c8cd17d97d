"""Predict and retrieve on uploaded image bytes, through the micro-batcher (no HTTP here).

`Service(predictor, index=None, ...)` owns the batcher; `load(data, name,
bbox)` crops an upload by `inference.images.crop_rule` (the bbox plus the eval
margin, or the whole image without one: the rule of `predict` and `retrieve`);
`record` is the record `python -m fashionnet_jax.predict` prints for one image;
`rank` orders the index's gallery by cosine similarity (`Index.nearest`, the
ranker of `retrieve query`); `thumbnail(number)` is a small JPEG of gallery
entry `number`: the client names entries only by number, so no client path
reaches the filesystem.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageOps

from fashionnet_jax.errors import FashionNetError
from fashionnet_jax.inference.describe import LabelSpace, describe
from fashionnet_jax.inference import images
from fashionnet_jax.serve.batcher import MicroBatcher, buckets

THUMBNAIL_SIDE = 192


class RequestError(FashionNetError, ValueError):
  """A request field that cannot work (k or top_k out of range)."""


def parse_int(name: str, text, default: int, low: int, high: int) -> int:
  if text is None or str(text).strip() == "":
    return default
  try:
    value = int(str(text))
  except ValueError:
    raise RequestError(f"{name} {text!r}: not an integer") from None
  if not low <= value <= high:
    raise RequestError(f"{name} {value}: out of range [{low}, {high}]")
  return value


class Service:

  def __init__(
      self,
      predictor,
      index=None,
      *,
      max_batch: int = 16,
      max_wait_ms: float = 5.0,
      queue_size: int = 128,
      max_pixels: int = 50_000_000,
      top_k: int = 5,
      max_k: int = 100,
  ):
    self.predictor = predictor
    self.index = index
    self.max_pixels = max_pixels
    self.top_k = top_k
    config = predictor.config
    self.labels = LabelSpace.of(predictor)
    self.crop_margin = images.crop_margin(config)
    self.max_top_k = len(self.labels.categories)
    self.max_k = min(max_k, len(index.paths)) if index is not None else 0
    size = predictor.image_size
    self.batcher = MicroBatcher(
        predictor.predict_uint8,
        (size, size, 3),
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        queue_size=queue_size,
    )
    self._thumbnail = functools.lru_cache(maxsize=2048)(self._make_thumbnail)

  buckets_for = staticmethod(buckets)

  def start(self):
    self.batcher.warm().start()
    if self.index is not None and self.max_k:  # compile the gallery search before the first request
      self.index.nearest(np.zeros((1, self.index.embeddings.shape[1]), np.float32), self.max_k)
    return self

  def close(self):
    self.batcher.close()

  def info(self) -> dict:
    return {
        "step": int(self.predictor.step),
        "image_size": self.predictor.image_size,
        "index_size": len(self.index.paths) if self.index is not None else 0,
        "top_k": self.top_k,
        "max_top_k": self.max_top_k,
        "max_k": self.max_k,
        "buckets": self.batcher.buckets,
        "max_pixels": self.max_pixels,
        "trained_on": self.labels.trained_on,
    }

  def load(self, data: bytes, name: str, bbox=None):
    """Decodes and resizes one upload (CPU work: run it off the event loop)."""
    return images.load_image_bytes(
        data, name, self.predictor.image_size, bbox, self.crop_margin, self.max_pixels
    )

  def submit(self, loaded):
    """Future of the network's outputs for one loaded image; raises batcher.Overloaded."""
    return self.batcher.submit(loaded.image)

  def record(self, outputs, loaded, top_k: int, bbox=None) -> dict:
    batch = {k: v[None] for k, v in outputs.items()}
    return describe(batch, 0, loaded, self.labels, top_k, bbox)

  def rank(self, outputs, k: int) -> list[dict]:
    """The k gallery entries nearest the image's embedding (cosine), best first."""
    # Always the top max_k, sliced: one compiled search whatever k a request asks
    # (ties go to the lower number, so the first k of the top max_k are the top k).
    scores, numbers = self.index.nearest(np.asarray(outputs["embedding"])[None], self.max_k)
    return [
        {
            "rank": r + 1,
            "number": int(j),
            "path": self.index.paths[j],
            "score": round(float(s), 6),
            "thumbnail": f"/v1/gallery/{int(j)}/thumbnail",
        }
        for r, (s, j) in enumerate(zip(scores[0][:k], numbers[0][:k]))
    ]

  def thumbnail(self, number: int) -> bytes | None:
    """JPEG bytes of gallery entry `number`, or None when there is no such readable entry."""
    if self.index is None or not 0 <= number < len(self.index.paths):
      return None
    return self._thumbnail(number)

  def _make_thumbnail(self, number: int) -> bytes | None:
    path = self.index.absolute(self.index.paths[number])
    if path is None:  # an index of a TFDS split built without --images
      return None
    try:
      with Image.open(path) as img:
        img = ImageOps.exif_transpose(img.convert("RGB"))
        img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85)
        return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
      return None
