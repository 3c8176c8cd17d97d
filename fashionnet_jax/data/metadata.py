"""Streaming scans of one feature over a split, cached as .npz next to the data.

A scan reads the split once in chunks (`__getitems__` where the source has it,
as tfds' ArrayRecord data sources do) and keeps only the one feature. Results
are cached in the TFDS dataset's version folder when it is writable, else under
`config.dataset.cache_dir` (default ~/.cache/fashionnet_jax), keyed by dataset
name, version and split; in-memory sources (tests) are never cached.
"""

import os
import tempfile

import numpy as np

_CHUNK = 512


def scan_field(source, field, *, default=None, chunk=_CHUNK):
  """Yields the values of `field` for every example, in chunks (lists)."""
  getitems = getattr(source, "__getitems__", None)
  for start in range(0, len(source), chunk):
    keys = range(start, min(start + chunk, len(source)))
    records = getitems(list(keys)) if getitems else [source[i] for i in keys]
    for i, record in zip(keys, records):
      if field not in record and default is None:
        raise ValueError(f"example {i}: no feature {field!r} (features: {sorted(record)})")
    yield [r.get(field, default) for r in records]


def cache_path(source, config, split, name):
  """Where the cached scan `name` of `split` lives, or None (no caching)."""
  info = getattr(source, "dataset_info", None)
  if info is None:
    return None
  filename = f"fashionnet_{name}_{split}.npz"
  data_dir = str(info.data_dir)
  if os.access(data_dir, os.W_OK):
    return os.path.join(data_dir, filename)
  root = config.dataset.get("cache_dir") or os.path.expanduser("~/.cache/fashionnet_jax")
  return os.path.join(root, info.full_name, filename)


def load_or_compute(path, compute):
  """Loads the .npz at `path`, or computes a dict of arrays and saves it atomically."""
  if path is not None and os.path.exists(path):
    with np.load(path) as cached:
      return {k: cached[k] for k in cached.files}
  result = compute()
  if path is not None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=os.path.dirname(path))
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **result)
    os.replace(tmp, path)  # concurrent writers (hosts) just overwrite the same content
  return result
