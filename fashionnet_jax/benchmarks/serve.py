r"""Load test of `python -m fashionnet_jax.serve` on loopback, beside the same work without HTTP.

  python -m fashionnet_jax.benchmarks.serve --workdir RUN [--images DIR] \
      [--requests 500] [--concurrency 1,8,32] [--max-batch 16] [--max-wait-ms 5]

Starts the server in this process (uvicorn in a thread, the real app and
micro-batcher) and sends `--requests` POST /v1/predict per concurrency level
from that many client threads (keep-alive connections), cycling over the
images (default: 8 random 300x300 JPEGs). Side by side, the same images go
through the same steps in one process without a server: decode + resize, a
batch-1 `Predictor` forward pass, the JSON record ("direct"). Prints
throughput, p50/p99 latency and errors per level, the server / direct
throughput ratio, and the figures as JSON on the last line. The clients share
the machine with the server: on a small CPU their own cost is in the numbers.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from fashionnet_jax.cli import Parser, UsageError
from fashionnet_jax.errors import exit_on_user_error

BOUNDARY = "fashionnetbenchmark"


def _body(name: str, data: bytes) -> bytes:
  head = (
      f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
      "Content-Type: image/jpeg\r\n\r\n"
  ).encode()
  return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _percentiles(seconds) -> dict:
  ms = np.asarray(seconds) * 1000
  return {
      "p50_ms": round(float(np.percentile(ms, 50)), 2),
      "p99_ms": round(float(np.percentile(ms, 99)), 2),
  }


def direct(service, images, requests: int) -> dict:
  """The server's per-request work in one process, one image at a time (batch 1)."""
  latencies = []
  start = time.perf_counter()
  for i in range(requests):
    name, data = images[i % len(images)]
    t = time.perf_counter()
    loaded = service.load(data, name)
    outputs = service.predictor.predict_uint8(loaded.image[None])
    service.record({k: v[0] for k, v in outputs.items()}, loaded, service.top_k)
    latencies.append(time.perf_counter() - t)
  elapsed = time.perf_counter() - start
  return {
      "requests": requests,
      "images_per_s": round(requests / elapsed, 1),
      **_percentiles(latencies),
  }


def load_test(server, images, requests: int, concurrency: int) -> dict:
  bodies = [_body(name, data) for name, data in images]
  headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

  def client(worker):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
    latencies, errors = [], 0
    for i in range(worker, requests, concurrency):
      t = time.perf_counter()
      try:
        connection.request("POST", "/v1/predict", bodies[i % len(bodies)], headers)
        response = connection.getresponse()
        response.read()
        errors += response.status != 200
      except (OSError, http.client.HTTPException):
        errors += 1
        connection.close()
        connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
      latencies.append(time.perf_counter() - t)
    connection.close()
    return latencies, errors

  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
    parts = list(pool.map(client, range(concurrency)))
  elapsed = time.perf_counter() - start
  latencies = [x for part, _ in parts for x in part]
  return {
      "concurrency": concurrency,
      "requests": requests,
      "images_per_s": round(requests / elapsed, 1),
      **_percentiles(latencies),
      "errors": sum(e for _, e in parts),
  }


def measure(
    predictor, paths, *, requests=500, concurrencies=(1, 8, 32), max_batch=16, max_wait_ms=5.0
) -> dict:
  from fashionnet_jax.serve.app import create_app
  from fashionnet_jax.serve.server import BackgroundServer
  from fashionnet_jax.serve.service import Service

  images = [(Path(p).name, Path(p).read_bytes()) for p in paths]
  service = Service(
      predictor,
      max_batch=max_batch,
      max_wait_ms=max_wait_ms,
      queue_size=max(128, 2 * max(concurrencies)),
  ).start()
  try:
    alone = direct(service, images, requests)
    rows = []
    with BackgroundServer(create_app(service)) as server:
      load_test(server, images, min(requests, 8), 1)  # connections, thread pools, caches
      for concurrency in concurrencies:
        row = load_test(server, images, requests, concurrency)
        row["vs_direct"] = round(row["images_per_s"] / alone["images_per_s"], 2)
        rows.append(row)
    batches = dict(sorted(service.batcher.batch_sizes.items()))
  finally:
    service.close()
  return {
      "direct": alone,
      "server": rows,
      "batch_sizes": batches,
      "image_size": predictor.image_size,
      "max_batch": max_batch,
      "max_wait_ms": max_wait_ms,
  }


def random_jpegs(folder: Path, count: int = 8) -> list[Path]:
  from PIL import Image

  rng = np.random.default_rng(0)
  paths = []
  for i in range(count):
    pixels = rng.integers(0, 256, (300, 300, 3), np.uint8)
    path = folder / f"random_{i}.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    paths.append(path)
  return paths


def print_table(results, out=sys.stdout):
  d = results["direct"]
  print("| | concurrency | images/s | p50 ms | p99 ms | errors | vs direct |", file=out)
  print("|---|---|---|---|---|---|---|", file=out)
  print(
      f"| direct (no HTTP, batch 1) | 1 | {d['images_per_s']} | {d['p50_ms']} | {d['p99_ms']} "
      f"| 0 | 1.00 |",
      file=out,
  )
  for r in results["server"]:
    print(
        f"| server | {r['concurrency']} | {r['images_per_s']} | {r['p50_ms']} | {r['p99_ms']} "
        f"| {r['errors']} | {r['vs_direct']:.2f} |",
        file=out,
    )
  print(f"batch sizes run (size: batches): {results['batch_sizes']}", file=out)


def build_parser() -> argparse.ArgumentParser:
  parser = Parser(
      prog="python -m fashionnet_jax.benchmarks.serve",
      description="Load test of the FashionNet server on loopback.",
  )
  parser.add_argument("--workdir", required=True, help="training run folder (latest checkpoint)")
  parser.add_argument("--images", help="folder of images to send (default: 8 random JPEGs)")
  parser.add_argument("--requests", type=int, default=500, help="requests per level (default 500)")
  parser.add_argument("--concurrency", default="1,8,32", help="client threads per level")
  parser.add_argument("--max-batch", dest="max_batch", type=int, default=16)
  parser.add_argument("--max-wait-ms", dest="max_wait_ms", type=float, default=5.0)
  return parser


@exit_on_user_error
def main(argv=None):
  import tempfile

  args = build_parser().parse_args(argv)
  try:
    levels = tuple(int(c) for c in args.concurrency.split(","))
  except ValueError:
    levels = ()
  if not levels or min(levels) < 1 or args.requests < 1 or args.max_batch < 1:
    raise UsageError("--concurrency (comma-separated), --requests and --max-batch must be >= 1")
  from fashionnet_jax.inference.predictor import Predictor

  predictor = Predictor(workdir=args.workdir)
  with tempfile.TemporaryDirectory() as tmp:
    if args.images:
      if not os.path.isdir(args.images):
        raise UsageError(f"--images {args.images}: not a folder")
      paths = sorted(
          p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
      )
      if not paths:
        raise UsageError(f"--images {args.images}: no .jpg or .png files")
    else:
      paths = random_jpegs(Path(tmp))
    results = measure(
        predictor,
        paths,
        requests=args.requests,
        concurrencies=levels,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
    )
  print_table(results)
  print(json.dumps({"label": "serve", "workdir": str(args.workdir), **results}), flush=True)


if __name__ == "__main__":
  main()
