"""Predict and retrieve on uploaded image bytes, through the micro-batcher (no HTTP here).

`Service(predictor, index=None, ...)` owns the batcher; `load(data, name,
bbox)` crops an upload by `inference.images.crop_rule` (the bbox plus the eval
margin, or the whole image without one: the rule of `predict` and `retrieve`);
`record` is the record `python -m fashionnet_jax.predict` prints for one image;
`rank` orders the index's gallery by cosine similarity (`Index.nearest`, the
ranker of `retrieve query`); `thumbnail(number)` is a small JPEG of gallery
entry `number`: the client names entries only by number, so no client path
reaches the filesystem.

Decoding is the server's memory risk: a few KB of PNG can declare 49 M pixels
(under the default limit) and cost ~90 MB to decode (280 MB with a plain PIL decode). `submit_load` runs `load`
on decode threads: an upload whose header declares over `LARGE_PIXELS` waits for
one of `max_decodes` threads kept for large images, any other for one of as
many threads of its own (so ordinary photos never queue behind bombs), and at
most `queue_size` wait (beyond: `Overloaded`, the server's 503). When the
decoders go idle holding `TRIM_BYTES` more than after the last burst, glibc's
`malloc_trim(0)` hands the freed memory back to the system (glibc otherwise
keeps it in its per-thread arenas).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import io
import os
import threading

import numpy as np
from PIL import Image, ImageOps

from fashionnet_jax.errors import FashionNetError
from fashionnet_jax.inference.describe import LabelSpace, describe
from fashionnet_jax.inference import decode, images
from fashionnet_jax.serve.batcher import MicroBatcher, Overloaded, buckets

THUMBNAIL_SIDE = 192
# Large-image decodes at once, by default: each may hold a few bytes per pixel of --max-pixels.
MAX_DECODES = 2
# Above this many declared pixels (~24 MB decoded) an upload takes a large-image thread.
LARGE_PIXELS = 4_000_000
# Growth of the resident set since the last trim that makes an idle decoder trim.
TRIM_BYTES = 64 * 2**20


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
      max_decodes: int = MAX_DECODES,
  ):
    if max_decodes < 1:
      raise ValueError("max_decodes must be >= 1")
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
    self.max_decodes, self.queue_size = max_decodes, queue_size
    self._decoders = {
        large: concurrent.futures.ThreadPoolExecutor(max_decodes, f"decode-{name}")
        for large, name in ((False, "small"), (True, "large"))
    }
    self._decoding = 0  # submitted to the decoder and not finished
    self._decoding_lock = threading.Lock()
    self._trimmed_rss = resident_bytes()
    self.trims = 0

  buckets_for = staticmethod(buckets)

  def start(self):
    self.batcher.warm().start()
    if self.index is not None and self.max_k:  # compile the gallery search before the first request
      self.index.nearest(np.zeros((1, self.index.embeddings.shape[1]), np.float32), self.max_k)
    return self

  def close(self):
    """Finishes the decodes and the batches already taken, then stops both."""
    for decoder in self._decoders.values():
      decoder.shutdown(wait=True)
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
        "max_decodes": self.max_decodes,
        "trained_on": self.labels.trained_on,
    }

  def load(self, data: bytes, name: str, bbox=None):
    """Decodes and resizes one upload (CPU work and memory: the server runs `submit_load`)."""
    return images.load_image_bytes(
        data, name, self.predictor.image_size, bbox, self.crop_margin, self.max_pixels
    )

  def submit_load(self, data: bytes, name: str, bbox=None) -> concurrent.futures.Future:
    """Future of `load(data, name, bbox)` on a decode thread of the upload's size class.

    Raises:
      Overloaded: `queue_size` uploads are already waiting to be decoded.
    """
    large = _declared_pixels(data) > LARGE_PIXELS
    with self._decoding_lock:
      if self._decoding >= 2 * self.max_decodes + self.queue_size:
        raise Overloaded(f"server busy: {self.queue_size} images already waiting to be decoded")
      self._decoding += 1
    try:
      future = self._decoders[large].submit(self.load, data, name, bbox)
    except RuntimeError:  # shut down: the server is stopping
      self._done_decoding(None)
      raise Overloaded("server stopping") from None
    future.add_done_callback(self._done_decoding)
    return future

  def _done_decoding(self, _):
    with self._decoding_lock:
      self._decoding -= 1
      idle = self._decoding == 0
    # After a burst, not during one: memory still in use cannot be returned anyway.
    if idle and resident_bytes() - self._trimmed_rss > TRIM_BYTES and release_memory():
      self.trims += 1
      self._trimmed_rss = resident_bytes()

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
        img.draft("RGB", (THUMBNAIL_SIDE, THUMBNAIL_SIDE))  # JPEG: decode at 1/2..1/8 scale
        img = ImageOps.exif_transpose(img.convert("RGB"))
        img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85)
        return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
      return None


def _declared_pixels(data: bytes) -> int:
  """Width x height from the image's header (no decoding, no limit); 0 if it has none."""
  try:
    _, (width, height) = decode.declared_size(data)
  except decode.Refusal:  # not an image: `load` says so at once
    return 0
  return width * height


def resident_bytes() -> int:
  """This process's resident set (Linux /proc), or 0 where there is none to read."""
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
  except (OSError, ValueError, IndexError):
    return 0


@functools.cache
def _malloc_trim():
  try:
    return ctypes.CDLL(None).malloc_trim  # glibc; musl and macOS have none
  except (OSError, AttributeError):
    return None


def release_memory() -> bool:
  """Hands the C heap's free memory back to the system; False where the libc cannot."""
  trim = _malloc_trim()
  if trim is None:
    return False
  trim(0)
  return True
