"""Time and peak memory of streaming a full-size Category benchmark's annotations.

    python -m fashionnet_jax.benchmarks.attr_file_memory [--rows 289222]

Writes list_attr_img.txt (rows × 1000 labels, ~580 MB at full size) and the
other Category files into a temporary folder, then streams them in lockstep
through the builder's parsers (every row fully parsed: category, 1000
attribute labels as int8, bbox, landmarks, partition; no images) and prints
one JSON line: parse time, rows/s, file size, and the process's peak RSS
before and after parsing (resource.getrusage), plus the tracemalloc peak of
the parse when --tracemalloc is given (slower).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import tempfile
import time
import tracemalloc

import numpy as np

from fashionnet_jax.data import records

NUM_ATTRIBUTES = 1000
ROW_POOL = 97  # Distinct label rows, cycled: writing stays fast and small.


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def write_category_benchmark(manual_dir: pathlib.Path, rows: int, seed: int = 0) -> pathlib.Path:
  """Writes the Category benchmark's annotation files (no images)."""
  rng = np.random.default_rng(seed)
  root = manual_dir / records.BENCHMARK_DIRS["category_attribute"]
  (root / "Anno").mkdir(parents=True)
  (root / "Eval").mkdir()
  (root / "Img/img").mkdir(parents=True)
  with open(root / "Anno/list_category_cloth.txt", "w") as f:
    f.write("50\ncategory_name  category_type\n")
    f.writelines(f"Category_{i:<6d}{1 + i % 3}\n" for i in range(50))
  with open(root / "Anno/list_attr_cloth.txt", "w") as f:
    f.write(f"{NUM_ATTRIBUTES}\nattribute_name  attribute_type\n")
    f.writelines(f"{'attr ' + str(i):<29}{1 + i % 5}\n" for i in range(NUM_ATTRIBUTES))
  pool = [
      " ".join(f"{v:2d}" for v in rng.choice([-1, -1, -1, 0, 1], NUM_ATTRIBUTES))
      for _ in range(ROW_POOL)
  ]
  names = {
      k: open(root / p, "w")
      for k, p in (
          ("cat", "Anno/list_category_img.txt"),
          ("attr", "Anno/list_attr_img.txt"),
          ("bbox", "Anno/list_bbox.txt"),
          ("lm", "Anno/list_landmarks.txt"),
          ("part", "Eval/list_eval_partition.txt"),
      )
  }
  try:
    headers = {
        "cat": "image_name  category_label",
        "attr": "image_name  attribute_labels",
        "bbox": "image_name  x_1  y_1  x_2  y_2",
        "lm": "image_name  clothes_type  landmark_visibility_1 ...",
        "part": "image_name  evaluation_status",
    }
    for k, f in names.items():
      f.write(f"{rows}\n{headers[k]}\n")
    triples = "  0 146 102  0 173 095  0 094 242  0 205 255  0 136 229  0 177 232"
    for i in range(rows):
      name = f"img/Sheer_Pleated-Front_Blouse_{i // 500:04d}/img_{i:08d}.jpg"
      pad = f"{name:<70}"
      names["cat"].write(f"{pad}{1 + i % 50:>3d}\n")
      names["attr"].write(f"{pad}{pool[i % ROW_POOL]}\n")
      names["bbox"].write(f"{pad}072 079 232 273\n")
      names["lm"].write(f"{pad} 1{triples}\n")
      names["part"].write(f"{pad}{('train', 'val', 'test')[i % 3]}\n")
  finally:
    for f in names.values():
      f.close()
  return root / "Anno/list_attr_img.txt"


def stream(manual_dir: pathlib.Path) -> tuple[int, int]:
  """Parses every joined row; returns (rows, positive labels) as a checksum."""
  bench = records.Benchmark("category_attribute", manual_dir)
  rows = positives = 0
  for joined in bench.joined_rows():
    bench.splits_of(joined)
    positives += int((bench.annotation(joined)["attributes"] == 1).sum())
    rows += 1
  return rows, positives


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m fashionnet_jax.benchmarks.attr_file_memory",
      description=__doc__.split("\n\n")[0],
  )
  parser.add_argument(
      "--rows",
      type=int,
      default=289_222,
      help="images (rows of list_attr_img.txt); default: the" " real 289,222",
  )
  parser.add_argument(
      "--tracemalloc", action="store_true", help="also report tracemalloc's peak (slower)"
  )
  parser.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed)")
  args = parser.parse_args(argv)
  if args.rows < 1:
    parser.error("--rows must be at least 1")
  with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
    manual_dir = pathlib.Path(tmp)
    t0 = time.perf_counter()
    attr_file = write_category_benchmark(manual_dir, args.rows)
    write_s = time.perf_counter() - t0
    rss_before = _peak_rss_mb()
    if args.tracemalloc:
      tracemalloc.start()
    t0 = time.perf_counter()
    rows, positives = stream(manual_dir)
    parse_s = time.perf_counter() - t0
    result = {
        "rows": rows,
        "attr_file_mb": round(os.path.getsize(attr_file) / 2**20, 1),
        "write_s": round(write_s, 1),
        "parse_s": round(parse_s, 2),
        "rows_per_s": round(rows / parse_s),
        "peak_rss_mb_before_parse": round(rss_before, 1),
        "peak_rss_mb_after_parse": round(_peak_rss_mb(), 1),
        "positives": positives,
    }
    if args.tracemalloc:
      result["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
      tracemalloc.stop()
  print(json.dumps(result))


if __name__ == "__main__":
  main()
