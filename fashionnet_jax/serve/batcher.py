"""Micro-batching: concurrent requests share one forward pass, in fixed batch-size buckets.

`MicroBatcher(predict, image_shape, max_batch, max_wait_ms, queue_size)`:
`submit(image)` returns a Future of that image's outputs. One worker thread
takes the oldest waiting image, gathers more until `max_batch` or until
`max_wait_ms` after the first, zero-pads the batch to the next bucket (powers
of two up to max_batch) and runs `predict` once. Every bucket is compiled by
`warm()` at startup, so no request ever waits for a compilation. A full queue
raises `Overloaded` at once (the server answers 503) instead of letting
latency grow without bound.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time

import numpy as np


class Overloaded(RuntimeError):
  """The request queue is full."""


def buckets(max_batch: int) -> list[int]:
  """Batch sizes compiled: 1, 2, 4, ... up to the first power of two >= max_batch."""
  sizes = [1]
  while sizes[-1] < max_batch:
    sizes.append(sizes[-1] * 2)
  return sizes


class MicroBatcher:

  def __init__(
      self,
      predict,
      image_shape,
      *,
      max_batch: int = 16,
      max_wait_ms: float = 5.0,
      queue_size: int = 128,
  ):
    if max_batch < 1 or queue_size < 1 or max_wait_ms < 0:
      raise ValueError("max_batch and queue_size must be >= 1, max_wait_ms >= 0")
    self._predict = predict
    self.image_shape = tuple(image_shape)
    self.max_batch = max_batch
    self.max_wait = max_wait_ms / 1000.0
    self.buckets = buckets(max_batch)
    self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
    self._thread = threading.Thread(target=self._loop, name="micro-batcher", daemon=True)
    self.batch_sizes: dict[int, int] = {}  # requests per batch -> how many batches

  def warm(self):
    """Compiles every bucket now (a request must never pay for a compilation)."""
    for size in self.buckets:
      self._predict(np.zeros((size, *self.image_shape), np.uint8))
    return self

  def start(self):
    self._thread.start()
    return self

  def close(self, timeout: float = 10.0):
    """Answers what is queued, then stops the worker."""
    if self._thread.is_alive():
      self._queue.put(None)
      self._thread.join(timeout)

  def queued(self) -> int:
    return self._queue.qsize()

  def submit(self, image: np.ndarray) -> concurrent.futures.Future:
    future: concurrent.futures.Future = concurrent.futures.Future()
    try:
      self._queue.put_nowait((np.asarray(image, np.uint8), future))
    except queue.Full:
      raise Overloaded(f"server busy: {self._queue.maxsize} requests already queued") from None
    return future

  def _loop(self):
    while True:
      first = self._queue.get()
      if first is None:
        return
      items, stop = [first], False
      deadline = time.monotonic() + self.max_wait
      while len(items) < self.max_batch:
        try:
          item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
          break
        if item is None:
          stop = True
          break
        items.append(item)
      self._run(items)
      if stop:
        return

  def _run(self, items):
    n = len(items)
    size = next(b for b in self.buckets if b >= n)
    batch = np.zeros((size, *self.image_shape), np.uint8)
    for i, (image, _) in enumerate(items):
      batch[i] = image
    try:
      outputs = self._predict(batch)
    except Exception as e:  # one bad batch fails its requests, never the worker
      for _, future in items:
        future.set_exception(e)
      return
    self.batch_sizes[n] = self.batch_sizes.get(n, 0) + 1
    for i, (_, future) in enumerate(items):
      future.set_result({k: np.asarray(v[i]) for k, v in outputs.items()})
