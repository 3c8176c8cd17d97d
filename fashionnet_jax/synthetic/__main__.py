r"""Synthetic DeepFashion: the four benchmarks' released layout, with drawn garments.

python -m fashionnet_jax.synthetic --out /tmp/deepfashion --images 500
"""

import argparse
import os
import sys

from fashionnet_jax.errors import USER_ERROR_EXIT, exit_on_user_error
from fashionnet_jax.schema import BENCHMARK_DIRS
from fashionnet_jax.synthetic.writer import generate


@exit_on_user_error
def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m fashionnet_jax.synthetic", description=__doc__.split("\n\n")[0]
  )
  parser.add_argument("--out", required=True, help="folder to write the benchmark folders into")
  parser.add_argument("--images", type=int, default=500, help="images per benchmark (default 500)")
  parser.add_argument(
      "--seed",
      type=int,
      default=0,
      help="drawing seed: the same seed writes the same files (default 0)",
  )
  parser.add_argument(
      "--benchmarks",
      default=",".join(BENCHMARK_DIRS),
      help="comma-separated subset of " + ",".join(BENCHMARK_DIRS) + " (default: all)",
  )
  parser.add_argument("--crlf", action="store_true", help="write \\r\\n line endings")
  parser.add_argument(
      "--workers",
      type=int,
      default=min(2, os.cpu_count() or 1),
      help="drawing processes (the output does not depend on it; " "default: up to 2)",
  )
  parser.add_argument(
      "--overwrite",
      action="store_true",
      help="replace benchmark folders that already exist under --out",
  )
  parser.add_argument(
      "--quiet",
      action="store_true",
      help="print only the summary, not each benchmark as it is written",
  )
  args = parser.parse_args(argv)
  benchmarks = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
  bad = [b for b in benchmarks if b not in BENCHMARK_DIRS]
  if bad or not benchmarks:
    parser.error(f"--benchmarks: unknown {bad}; choose from {','.join(BENCHMARK_DIRS)}")
  if args.images < 1:
    parser.error(f"--images must be at least 1, got {args.images}")
  try:
    summary = generate(
        args.out,
        args.images,
        args.seed,
        benchmarks,
        args.crlf,
        max(1, args.workers),
        not args.quiet,
        args.overwrite,
    )
  except OSError as e:  # --out exists, is a file, or cannot be written
    print(f"error: {e}", file=sys.stderr)
    return USER_ERROR_EXIT
  for key, s in summary.items():
    print(f"{BENCHMARK_DIRS[key]}: {s['images']} images, splits {s['splits']}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
