r"""Retrieval top-k search: accelerator (jit, chunked) vs NumPy brute force.

  python -m fashionnet_jax.benchmarks.retrieval [--k=50] [--query_chunk=1024]
      [--gallery_chunk=0] [--shard] [--repeats=3]

Times `evaluation.search.topk_search` (compile / warm-up excluded) and
`evaluation.search.numpy_topk_search` (matmul + argpartition) on random 128-d
embeddings of the two benchmarks' sizes:
- In-shop: 14,218 queries x 12,612 gallery (the released query/gallery split);
- consumer-to-shop: 20,000 consumer queries x 22,000 shop gallery images, the
  order of one evaluation split's consumer and shop images.
Prints one line per size and, last, one JSON object with all figures.
"""

import json
import time

from absl import app
from absl import flags
import jax
import numpy as np

from fashionnet_jax.evaluation import search

_K = flags.DEFINE_integer("k", 50, "Neighbours per query (the protocol's top-50).")
_DIM = flags.DEFINE_integer("dim", 128, "Embedding width.")
_QUERY_CHUNK = flags.DEFINE_integer("query_chunk", 1024, "Queries scored at once.")
_GALLERY_CHUNK = flags.DEFINE_integer(
    "gallery_chunk", 0, "Gallery rows scored at once per device (0 = all)."
)
_SHARD = flags.DEFINE_bool("shard", False, "Shard the gallery over all devices (a 'data' mesh).")
_PRECISION = flags.DEFINE_enum(
    "precision",
    "highest",
    ["highest", "high", "default"],
    "Similarity matmul precision of the accelerator search.",
)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs; the best is reported.")
_SIZES = flags.DEFINE_list(
    "sizes", ["inshop:14218:12612", "consumer2shop:20000:22000"], "name:queries:gallery triples."
)


def _best_time(fn, repeats):
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def benchmark(name, num_queries, num_gallery, mesh):
  rng = np.random.default_rng(0)
  queries = rng.normal(size=(num_queries, _DIM.value)).astype(np.float32)
  gallery = rng.normal(size=(num_gallery, _DIM.value)).astype(np.float32)
  q_dev, g_dev = jax.device_put(queries), jax.device_put(gallery)

  def accelerator():
    out = search.topk_search(
        q_dev,
        g_dev,
        _K.value,
        mesh=mesh,
        query_chunk=_QUERY_CHUNK.value,
        gallery_chunk=_GALLERY_CHUNK.value or None,
        precision=_PRECISION.value,
    )
    return jax.block_until_ready(out)

  _, indices = accelerator()  # compile + warm-up, not timed
  accel_s = _best_time(accelerator, _REPEATS.value)
  numpy_s = _best_time(
      lambda: search.numpy_topk_search(queries, gallery, _K.value, query_chunk=_QUERY_CHUNK.value),
      _REPEATS.value,
  )
  _, ref = search.numpy_topk_search(queries, gallery, _K.value)
  # Near-equal similarities may swap between XLA and BLAS: report agreement.
  top1_agree = float(np.mean(np.asarray(indices)[:, 0] == ref[:, 0]))
  result = dict(
      name=name,
      queries=num_queries,
      gallery=num_gallery,
      dim=_DIM.value,
      k=_K.value,
      accelerator_s=round(accel_s, 4),
      numpy_s=round(numpy_s, 4),
      speedup=round(numpy_s / accel_s, 2),
      queries_per_s=round(num_queries / accel_s, 1),
      top1_agreement=top1_agree,
  )
  print(
      f"{name}: {num_queries} x {num_gallery} x {_DIM.value}, top-{_K.value}: "
      f"accelerator {accel_s:.3f} s, numpy {numpy_s:.3f} s, "
      f"ratio {numpy_s / accel_s:.2f}x, top-1 agreement {top1_agree:.4f}",
      flush=True,
  )
  return result


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  mesh = jax.make_mesh((jax.device_count(),), ("data",)) if _SHARD.value else None
  results = []
  for spec in _SIZES.value:
    try:
      name, q, g = spec.split(":")
      q, g = int(q), int(g)
    except ValueError:
      raise app.UsageError(f"--sizes: '{spec}' is not name:queries:gallery") from None
    if not 1 <= _K.value <= g:
      raise app.UsageError(f"--k={_K.value} must be in 1..{g} (gallery of '{name}')")
    results.append(benchmark(name, q, g, mesh))
  print(
      json.dumps(
          dict(
              device=str(jax.devices()[0].device_kind),
              num_devices=jax.device_count(),
              sharded=_SHARD.value,
              precision=_PRECISION.value,
              query_chunk=_QUERY_CHUNK.value,
              gallery_chunk=_GALLERY_CHUNK.value,
              results=results,
          )
      )
  )


if __name__ == "__main__":
  app.run(main)
