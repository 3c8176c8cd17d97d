"""Times landmark pooling (gather + max) against a dense masked max over [B, L, H, W] masks.

Forward + backward (gradient w.r.t. the features), jitted, warm-up excluded, at the
paper's conv5 size by default. The last line printed is one JSON object.

  python -m fashionnet_jax.benchmarks.landmark_pooling [--batch 128 --size 14 --channels 512 --window 3]
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from fashionnet_jax.models.landmark_pooling import landmark_cells, landmark_pool


def dense_landmark_pool(features, landmarks, visible, window=3):
  """The same pooling written as a masked max over a [B, L, H, W, C] broadcast (the baseline)."""
  _, h, w, _ = features.shape
  row, col = landmark_cells(landmarks, h, w)
  r = window // 2
  rows, cols = jnp.arange(h), jnp.arange(w)
  mask = (jnp.abs(rows[None, None, :, None] - row[..., None, None]) <= r) & (
      jnp.abs(cols[None, None, None, :] - col[..., None, None]) <= r
  )  # [B, L, H, W]
  pooled = jnp.max(jnp.where(mask[..., None], features[:, None], -jnp.inf), axis=(2, 3))
  return jnp.where(visible[..., None], pooled, 0.0)


def time_fwd_bwd(pool, features, landmarks, visible, window, iters):
  cotangent = jnp.ones(
      features.shape[:1] + landmarks.shape[1:2] + features.shape[-1:], features.dtype
  )
  step = jax.jit(jax.grad(lambda f: jnp.sum(pool(f, landmarks, visible, window) * cotangent)))
  compiled = step.lower(features).compile()
  jax.block_until_ready(compiled(features))  # warm-up
  start = time.perf_counter()
  for _ in range(iters):
    out = compiled(features)
  jax.block_until_ready(out)
  seconds = (time.perf_counter() - start) / iters
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  return seconds, float(cost.get("flops", -1)), float(cost.get("bytes accessed", -1))


def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m fashionnet_jax.benchmarks.landmark_pooling",
      description=__doc__.splitlines()[0],
  )
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--size", type=int, default=14, help="conv5 map side (14 at 224 px input)")
  parser.add_argument("--channels", type=int, default=512)
  parser.add_argument("--landmarks", type=int, default=8)
  parser.add_argument("--window", type=int, default=3)
  parser.add_argument("--iters", type=int, default=10)
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  args = parser.parse_args(argv)
  rng = np.random.default_rng(0)
  features = jnp.asarray(
      rng.normal(size=(args.batch, args.size, args.size, args.channels)), args.dtype
  )
  landmarks = jnp.asarray(rng.uniform(size=(args.batch, args.landmarks, 2)), jnp.float32)
  visible = jnp.asarray(rng.uniform(size=(args.batch, args.landmarks)) > 0.2)
  results = {
      "device": jax.devices()[0].device_kind,
      "batch": args.batch,
      "size": args.size,
      "channels": args.channels,
      "landmarks": args.landmarks,
      "window": args.window,
      "dtype": args.dtype,
  }
  for name, pool in (("gather", landmark_pool), ("dense", dense_landmark_pool)):
    seconds, flops, nbytes = time_fwd_bwd(
        pool, features, landmarks, visible, args.window, args.iters
    )
    results[f"{name}_ms"] = round(seconds * 1e3, 3)
    results[f"{name}_bytes_accessed"] = nbytes
    results[f"{name}_flops"] = flops
    print(
        f"{name:7s} forward+backward {seconds * 1e3:9.3f} ms  "
        f"({nbytes / 1e6:.1f} MB accessed, {flops / 1e6:.1f} MFLOP by XLA cost analysis)"
    )
  results["dense_over_gather"] = round(results["dense_ms"] / results["gather_ms"], 2)
  print(f'dense / gather = {results["dense_over_gather"]}x')
  print(json.dumps(results))


if __name__ == "__main__":
  main()
