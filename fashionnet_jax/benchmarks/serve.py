r"""Load test of `python -m fashionnet_jax.serve` on loopback, beside the same work without HTTP.

  python -m fashionnet_jax.benchmarks.serve --workdir RUN [--images DIR] \
      [--requests 500] [--concurrency 1,8,32] [--max-batch 16] [--max-wait-ms 5]
  python -m fashionnet_jax.benchmarks.serve --workdir RUN --hostile [--bombs 16] \
      [--bomb-side 7000] [--max-decodes 2] [--requests 200] [--concurrency 8]

Starts the server in this process (uvicorn in a thread, the real app and
micro-batcher) and sends `--requests` POST /v1/predict per concurrency level
from that many client threads (keep-alive connections), cycling over the
images (default: 8 random 300x300 JPEGs). Side by side, the same images go
through the same steps in one process without a server: decode + resize, a
batch-1 `Predictor` forward pass, the JSON record ("direct"). Prints
throughput, p50/p99 latency and errors per level, the server / direct
throughput ratio, and the figures as JSON on the last line. The clients share
the machine with the server: on a small CPU their own cost is in the numbers.

`--hostile` runs the good load twice at one concurrency: alone (the good mix),
then beside a hostile mix: a burst of `--bombs` PNG bombs at once (a few KB
declaring `--bomb-side`² pixels, under the 50 M limit, so each is decoded),
as many truncated files (half a JPEG, half a bomb) and slow clients that send
half a body and stall (answered 408 after the body timeout). It reports the
process's resident memory before the burst, at its peak (sampled every 10 ms)
and after it, `/healthz` latency (p50/p99/max) polled during it, the good
requests' p99 in both mixes, and the statuses each kind got. Server and
clients share the process: its RSS is the server's plus a few client threads.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import http.client
import io
import json
import os
import socket
import sys
import threading
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


def _post(server, name: str, data: bytes) -> int:
  """One POST /v1/predict on its own connection: the status (0: no answer)."""
  connection = http.client.HTTPConnection(server.host, server.port, timeout=300)
  try:
    connection.request(
        "POST",
        "/v1/predict",
        _body(name, data),
        {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    response = connection.getresponse()
    response.read()
    return response.status
  except (OSError, http.client.HTTPException):
    return 0
  finally:
    connection.close()


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
  """`requests` POST /v1/predict from `concurrency` keep-alive clients: throughput, latency."""
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


def png_bomb(side: int) -> bytes:
  """A PNG of side x side bilevel pixels: a few KB that decode to ~6 bytes per pixel."""
  from PIL import Image

  out = io.BytesIO()
  Image.new("1", (side, side)).save(out, "PNG")
  return out.getvalue()


class _Sampler(threading.Thread):
  """Calls `probe()` every `every_s` seconds until stopped; keeps what it returns."""

  def __init__(self, probe, every_s: float):
    super().__init__(daemon=True)
    self.probe, self.every_s, self.values = probe, every_s, []
    self.stopping = threading.Event()

  def run(self):
    while not self.stopping.is_set():
      self.values.append(self.probe())
      self.stopping.wait(self.every_s)

  def stop(self) -> list:
    self.stopping.set()
    self.join()
    return self.values


def _healthz_probe(server):
  connection = http.client.HTTPConnection(server.host, server.port, timeout=60)

  def probe():
    t = time.perf_counter()
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    response.read()
    return time.perf_counter() - t

  return probe


def _stall(server, seconds: float) -> int:
  """A client that sends half a multipart body and stops: the status it is answered."""
  body = _body("slow.jpg", b"\xff\xd8" + b"\0" * 4096)
  head = (
      f"POST /v1/predict HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: multipart/form-data; "
      f"boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
  ).encode()
  with socket.create_connection((server.host, server.port), timeout=seconds) as s:
    s.sendall(head + body[: len(body) // 2])
    try:
      status = s.recv(64).split(b" ")[1]
    except (OSError, IndexError):
      return 0
  return int(status) if status.isdigit() else 0


def measure_hostile(
    predictor,
    paths,
    *,
    requests=200,
    concurrency=8,
    bombs=16,
    bomb_side=7000,
    max_batch=16,
    max_wait_ms=5.0,
    max_decodes=None,
    body_timeout=2.0,
) -> dict:
  """The good load alone, then beside a burst of bombs, truncated files and slow clients."""
  from fashionnet_jax.serve import service as service_module
  from fashionnet_jax.serve.app import create_app
  from fashionnet_jax.serve.server import BackgroundServer

  images = [(Path(p).name, Path(p).read_bytes()) for p in paths]
  bomb = png_bomb(bomb_side)
  truncated = [("half.jpg", images[0][1][: len(images[0][1]) // 2]), ("half.png", bomb[:-20])]
  service = service_module.Service(
      predictor,
      max_batch=max_batch,
      max_wait_ms=max_wait_ms,
      queue_size=max(128, 2 * (concurrency + 2 * bombs)),
      max_decodes=max_decodes or service_module.MAX_DECODES,
  ).start()
  try:
    with BackgroundServer(create_app(service, body_timeout=body_timeout)) as server:
      load_test(server, images, min(requests, 8), 1)  # connections, thread pools, caches
      good = load_test(server, images, requests, concurrency)
      statuses = collections.defaultdict(collections.Counter)
      before = service_module.resident_bytes()
      rss = _Sampler(service_module.resident_bytes, 0.01)
      healthz = _Sampler(_healthz_probe(server), 0.02)
      rss.start()
      healthz.start()
      with concurrent.futures.ThreadPoolExecutor(3 * bombs + 4) as pool:
        started = time.perf_counter()
        bursts = [pool.submit(_post, server, f"bomb_{i}.png", bomb) for i in range(bombs)]
        cut = [pool.submit(_post, server, *truncated[i % 2]) for i in range(bombs)]
        slow = [pool.submit(_stall, server, 10 * body_timeout) for _ in range(4)]
        mixed = load_test(server, images, requests, concurrency)
        for kind, futures in (("bomb", bursts), ("truncated", cut), ("slow", slow)):
          statuses[kind].update(f.result() for f in futures)
        burst_s = time.perf_counter() - started
      latencies = healthz.stop()
      peak = max(rss.stop())
      time.sleep(1.0)  # the decoders go idle, the trim (if any) is done
      after = service_module.resident_bytes()
  finally:
    service.close()
  mb = lambda n: round(n / 2**20, 1)  # noqa: E731
  ms = np.asarray(latencies) * 1000
  return {
      "bombs": bombs,
      "bomb_side": bomb_side,
      "bomb_bytes": len(bomb),
      "max_decodes": service.max_decodes,
      "rss_mb": {"before": mb(before), "peak": mb(peak), "after": mb(after)},
      "healthz_ms": {
          "p50": round(float(np.percentile(ms, 50)), 1),
          "p99": round(float(np.percentile(ms, 99)), 1),
          "max": round(float(ms.max()), 1),
          "polls": len(ms),
      },
      "good": good,
      "hostile": {**mixed, "burst_s": round(burst_s, 2)},
      "statuses": {kind: dict(sorted(c.items())) for kind, c in statuses.items()},
      "trims": service.trims,
      "image_size": predictor.image_size,
  }


def print_hostile_table(results, out=sys.stdout):
  r, h, good, mixed = results["rss_mb"], results["healthz_ms"], results["good"], results["hostile"]
  side = results["bomb_side"]
  print(
      f"{results['bombs']} PNG bombs ({side}x{side}, {results['bomb_bytes']} bytes each), "
      f"max decodes {results['max_decodes']}, burst {mixed['burst_s']} s",
      file=out,
  )
  print("| RSS before MB | peak MB | after MB | /healthz p50 ms | p99 ms | max ms |", file=out)
  print("|---|---|---|---|---|---|", file=out)
  print(
      f"| {r['before']} | {r['peak']} | {r['after']} | {h['p50']} | {h['p99']} | {h['max']} |",
      file=out,
  )
  print("| good requests | concurrency | images/s | p50 ms | p99 ms | errors |", file=out)
  print("|---|---|---|---|---|---|", file=out)
  for name, row in (("good mix", good), ("hostile mix", mixed)):
    print(
        f"| {name} | {row['concurrency']} | {row['images_per_s']} | {row['p50_ms']} "
        f"| {row['p99_ms']} | {row['errors']} |",
        file=out,
    )
  print(f"statuses (kind: status: count): {results['statuses']}", file=out)


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
  parser.add_argument(
      "--concurrency",
      default=None,
      help="client threads per level (default 1,8,32; --hostile: one level, default 8)",
  )
  parser.add_argument("--max-batch", dest="max_batch", type=int, default=16)
  parser.add_argument("--max-wait-ms", dest="max_wait_ms", type=float, default=5.0)
  parser.add_argument(
      "--hostile",
      action="store_true",
      help="the good load alone and beside bombs, truncated files and slow clients",
  )
  parser.add_argument("--bombs", type=int, default=16, help="PNG bombs sent at once (--hostile)")
  parser.add_argument(
      "--bomb-side", dest="bomb_side", type=int, default=7000, help="a bomb's width and height"
  )
  parser.add_argument(
      "--max-decodes",
      dest="max_decodes",
      type=int,
      default=None,
      help="the server's decode cap (default: the server's own)",
  )
  return parser


@exit_on_user_error
def main(argv=None):
  import tempfile

  args = build_parser().parse_args(argv)
  try:
    default = "8" if args.hostile else "1,8,32"
    levels = tuple(int(c) for c in (args.concurrency or default).split(","))
  except ValueError:
    levels = ()
  if not levels or min(levels) < 1 or args.requests < 1 or args.max_batch < 1:
    raise UsageError("--concurrency (comma-separated), --requests and --max-batch must be >= 1")
  if args.hostile and (len(levels) != 1 or min(args.bombs, args.bomb_side) < 1):
    raise UsageError("--hostile takes one --concurrency level, --bombs and --bomb-side >= 1")
  if args.max_decodes is not None and args.max_decodes < 1:
    raise UsageError("--max-decodes must be >= 1")
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
    if args.hostile:
      results = measure_hostile(
          predictor,
          paths,
          requests=args.requests,
          concurrency=levels[0],
          bombs=args.bombs,
          bomb_side=args.bomb_side,
          max_batch=args.max_batch,
          max_wait_ms=args.max_wait_ms,
          max_decodes=args.max_decodes,
      )
      print_hostile_table(results)
      print(json.dumps({"label": "serve_hostile", "workdir": str(args.workdir), **results}))
      return
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
