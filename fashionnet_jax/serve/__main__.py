r"""Serve a trained FashionNet: a web page and a JSON API for predict and retrieve.

  python -m fashionnet_jax.serve --workdir /tmp/fashionnet_demo [--index /tmp/gallery_index] \
      [--host 127.0.0.1] [--port 8000] [--max-batch 16] [--max-wait-ms 5] [--max-decodes 2]

Open http://127.0.0.1:8000/ to drop a photo on the page, or call the API:

  curl -F image=@photo.jpg -F bbox=72,79,232,273 http://127.0.0.1:8000/v1/predict
  curl -F image=@photo.jpg -F k=5 http://127.0.0.1:8000/v1/retrieve

Binds 127.0.0.1 unless --host says otherwise. Concurrent requests are batched
(up to --max-batch, waiting at most --max-wait-ms for company) through one
compiled function per batch-size bucket, all compiled before the port opens.
At most --max-decodes uploads are decoded at once. Every wait is bounded: a
body that stops arriving (--body-timeout, 408), an idle keep-alive connection
(--keep-alive-timeout), and the stop: on SIGTERM or Ctrl-C the port closes, the
requests in flight are answered (for at most --shutdown-timeout seconds), the
batcher drains, one line says so and the exit status is 0.
Bad workdir or index: one line, exit 2.
"""

from __future__ import annotations

import signal
import sys

from fashionnet_jax import console  # first: quiet before TensorFlow loads
from fashionnet_jax.cli import Parser, add_model_arguments, add_verbose_argument
from fashionnet_jax.errors import exit_on_user_error


def build_parser():
  parser = Parser(
      prog="python -m fashionnet_jax.serve",
      description="A web page and a JSON API for a trained FashionNet.",
  )
  add_model_arguments(parser)
  parser.add_argument("--index", help="gallery index from `retrieve index` (enables retrieval)")
  parser.add_argument(
      "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
  )
  parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
  parser.add_argument(
      "--max-batch",
      dest="max_batch",
      type=int,
      default=16,
      help="largest batch run at once (default 16)",
  )
  parser.add_argument(
      "--max-wait-ms",
      dest="max_wait_ms",
      type=float,
      default=5.0,
      help="longest a request waits for others to join its batch (default 5)",
  )
  parser.add_argument(
      "--queue-size",
      dest="queue_size",
      type=int,
      default=128,
      help="requests waiting before the server answers 503 (default 128)",
  )
  parser.add_argument(
      "--max-body-mb",
      dest="max_body_mb",
      type=float,
      default=10.0,
      help="largest request body, MB (default 10; larger: 413)",
  )
  parser.add_argument(
      "--max-pixels",
      dest="max_pixels",
      type=int,
      default=50_000_000,
      help="largest image, in pixels, read from its header (default 50M; larger: 413)",
  )
  parser.add_argument(
      "--max-decodes",
      dest="max_decodes",
      type=int,
      default=2,
      help="images over 4 M pixels decoded at once (default 2; the bound on decode memory)",
  )
  parser.add_argument(
      "--body-timeout",
      dest="body_timeout",
      type=float,
      default=20.0,
      help="seconds a request body may stall before a 408 (default 20)",
  )
  parser.add_argument(
      "--keep-alive-timeout",
      dest="keep_alive_timeout",
      type=float,
      default=5.0,
      help="seconds an idle keep-alive connection stays open (default 5)",
  )
  parser.add_argument(
      "--shutdown-timeout",
      dest="shutdown_timeout",
      type=float,
      default=25.0,
      help="seconds a stopping server lets requests in flight finish (default 25)",
  )
  parser.add_argument(
      "--top-k",
      dest="top_k",
      type=int,
      default=5,
      help="categories and attributes per prediction unless asked (default 5)",
  )
  add_verbose_argument(parser)
  return parser


@exit_on_user_error
def main(argv=None):
  from fashionnet_jax.cli import UsageError

  args = build_parser().parse_args(argv)
  console.set_verbose(args.verbose)
  counts = (args.max_batch, args.queue_size, args.top_k, args.max_pixels, args.max_decodes)
  timeouts = (args.body_timeout, args.keep_alive_timeout, args.shutdown_timeout)
  if min(counts) < 1 or args.max_wait_ms < 0 or not min(timeouts) > 0:
    raise UsageError(
        "--max-batch, --queue-size, --top-k, --max-pixels and --max-decodes must be >= 1, "
        "--max-wait-ms >= 0, --body-timeout, --keep-alive-timeout and --shutdown-timeout > 0"
    )
  import uvicorn

  from fashionnet_jax.inference.gallery import same_model
  from fashionnet_jax.inference.index import Index
  from fashionnet_jax.inference.predictor import Predictor
  from fashionnet_jax.models import embedding_width
  from fashionnet_jax.serve import server
  from fashionnet_jax.serve.app import create_app
  from fashionnet_jax.serve.service import Service

  index = Index(args.index) if args.index else None
  predictor = Predictor(workdir=args.workdir, checkpoint=args.checkpoint)
  if index is not None:
    index.check_width(embedding_width(predictor.config.model))
  if index is not None and not same_model(predictor, index.meta.get("model", {})):
    print(
        f"warning: the index was built with {index.meta.get('model')}; its embeddings may not "
        "be comparable with this model's",
        file=sys.stderr,
    )
  print(
      f"compiling batch sizes {Service.buckets_for(args.max_batch)} ...",
      file=sys.stderr,
      flush=True,
  )
  service = Service(
      predictor,
      index,
      max_batch=args.max_batch,
      max_wait_ms=args.max_wait_ms,
      queue_size=args.queue_size,
      max_pixels=args.max_pixels,
      top_k=args.top_k,
      max_decodes=args.max_decodes,
  ).start()
  if service.labels.note():
    print(service.labels.note(), file=sys.stderr, flush=True)
  app = create_app(
      service, max_body_bytes=int(args.max_body_mb * 2**20), body_timeout=args.body_timeout
  )
  running = uvicorn.Server(
      server.config(
          app,
          args.host,
          args.port,
          keep_alive_timeout=args.keep_alive_timeout,
          shutdown_timeout=args.shutdown_timeout,
      )
  )
  stop_on_signals(running)
  print(
      f"serving {predictor.describe()} on http://{args.host}:{args.port}/",
      file=sys.stderr,
      flush=True,
  )
  try:
    running.run()
  finally:
    service.close()
  cut = f", {app.cut} cut at the --shutdown-timeout deadline" if app.cut else ""
  print(f"stopped: {app.answered} requests answered{cut}", file=sys.stderr, flush=True)


def stop_on_signals(running):
  """SIGTERM and SIGINT stop `running` (a uvicorn.Server) gracefully, and the exit is 0.

  uvicorn (>= 0.29) takes these signals while it serves and re-raises them once
  stopped, to whatever handled them before: with the default handlers the
  process would die there (143, or KeyboardInterrupt), before the service is
  closed. These handlers make the re-raised signal a no-op, and one that
  arrives before uvicorn serves asks it to stop at once.
  """

  def stop(signum, frame):
    running.should_exit = True

  for signum in (signal.SIGTERM, signal.SIGINT):
    signal.signal(signum, stop)


if __name__ == "__main__":
  main()
