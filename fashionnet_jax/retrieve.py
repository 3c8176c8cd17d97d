r"""Clothes retrieval over your own gallery: build an embedding index, then query it.

  python -m fashionnet_jax.retrieve index --workdir /tmp/fashionnet_inshop \
      --images /data/gallery [--bboxes /data/gallery_bboxes.txt] --out /tmp/gallery_index
  python -m fashionnet_jax.retrieve index --workdir /tmp/fashionnet_inshop \
      --from_tfds gallery [--images "MANUAL_DIR/In-shop Clothes Retrieval Benchmark/Img"] \
      --out /tmp/inshop_gallery
  python -m fashionnet_jax.retrieve query --index /tmp/gallery_index photo.jpg --k 10 \
      [--bbox x1,y1,x2,y2] --grid /tmp/results.png

Every image is cropped by one rule (`inference.images.crop_rule`, the same in
`predict` and `serve`): an image with a bbox is cropped exactly as evaluation
crops a dataset image (the bbox plus the run's `input.crop_margin` per side);
an image without one is taken whole. `--bboxes FILE` gives the gallery's bboxes:
a released `list_bbox*.txt` (names relative to --images, e.g. `img/...` with
--images the benchmark's `Img/`) or plain `image x1 y1 x2 y2` rows (integer
pixels); gallery images it does not name are taken whole. `--from_tfds SPLIT`
indexes a split of the run's TFDS dataset with its own bboxes, through the eval
pipeline itself (`data.pipeline.create_eval_iterator`); its --images, optional,
is the folder the records' `image/filename` are relative to (for thumbnails
and --grid).

`index` walks --images recursively, embeds every image `--batch-size` at a time
and writes
  OUT/embeddings.npy   float32 [N, D], L2-normalised FashionNet embeddings
  OUT/paths.txt        the N image paths, relative to --images, one a line
  OUT/crops.jsonl      per image: {"crop": "bbox", "bbox": [x1, y1, x2, y2]} or
                       {"crop": "whole image", "bbox": null}
  OUT/meta.json        the checkpoint used, the images folder, the bboxes' source, counts
  OUT/skipped.txt      unreadable files and why (reported on stderr too)
The work is saved in chunks (OUT/chunks/) as it goes: an interrupted run, rerun
with the same arguments, continues after the last finished chunk. A bbox from
--bboxes that misses its image stops the run with one line naming the file and line.

`query` embeds each query with the index's checkpoint (or --workdir/--checkpoint),
ranks the gallery by cosine similarity with `Index.nearest` (as `serve` does)
and prints one JSON line per query:
  {"query": path, "bbox": [x1, y1, x2, y2] | null, "crop": "bbox" | "whole image",
   "results": [{"rank": 1, "path": ..., "score": ...}, ...]}
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from fashionnet_jax import console  # first: quiet before TensorFlow loads
from fashionnet_jax.cli import Parser, UsageError, add_model_arguments, add_verbose_argument
from fashionnet_jax.errors import FashionNetError, exit_on_user_error, one_line
from fashionnet_jax.inference import images as images_lib
from fashionnet_jax.inference.gallery import (
    build_index,
    build_tfds_index,
    embed_files,
    same_model,
)
from fashionnet_jax.inference.index import Index
from fashionnet_jax.models import embedding_width


def query_index(predictor, index: Index, query_paths, k: int, batch_size: int = 32, bboxes=None):
  """Yields (path, results or None, error or None, crop kind or None) per query, in order.

  `bboxes`: per query a pixel bbox or None (`images.crop_rule`: whole image).
  """
  embeddings, kept, errors, kinds = embed_files(
      predictor, list(query_paths), batch_size, bboxes=bboxes
  )
  errors = dict(errors)
  results = {}
  if kept:
    k = min(k, len(index.paths))
    scores, indices = index.nearest(embeddings, k)
    for row, i in enumerate(kept):
      results[i] = [
          {"rank": r + 1, "path": index.paths[j], "score": float(s)}
          for r, (s, j) in enumerate(zip(scores[row], indices[row]))
      ]
  kinds = dict(zip(kept, kinds))
  for i, path in enumerate(query_paths):
    yield path, results.get(i), errors.get(i), kinds.get(i)


def build_parser() -> argparse.ArgumentParser:
  parser = Parser(
      prog="python -m fashionnet_jax.retrieve",
      description="Index a folder of clothes images, then find the nearest ones.",
  )
  sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
  index = sub.add_parser("index", help="embed every image under a folder (resumable)")
  add_model_arguments(index)
  index.add_argument(
      "--images",
      help="gallery folder, walked recursively (with --from_tfds: "
      "optional, the folder the records' image/filename are relative to, "
      "for thumbnails and grids)",
  )
  crops = index.add_mutually_exclusive_group()
  crops.add_argument(
      "--bboxes",
      metavar="FILE",
      help="bboxes to crop by as evaluation does: a released list_bbox*.txt or "
      "`image x1 y1 x2 y2` rows, names relative to --images (images it "
      "does not name: whole image)",
  )
  crops.add_argument(
      "--from_tfds",
      "--from-tfds",
      dest="from_tfds",
      metavar="SPLIT",
      help="index SPLIT of the run's TFDS dataset (e.g. gallery) with its own "
      "bboxes, through the eval pipeline (in batches of the run's "
      "eval_batch_size)",
  )
  index.add_argument("--out", required=True, help="index folder to write (or resume)")
  index.add_argument(
      "--chunk-size",
      "--chunk_size",
      dest="chunk_size",
      type=int,
      default=1024,
      help="images saved per chunk: the unit of resumption (default 1024)",
  )
  index.add_argument(
      "--batch-size",
      "--batch_size",
      dest="batch_size",
      type=int,
      default=32,
      help="images per forward pass",
  )
  add_verbose_argument(index)

  query = sub.add_parser("query", help="rank the index's images for each query image")
  query.add_argument("images", nargs="+", metavar="IMAGE", help="query image files")
  query.add_argument("--index", required=True, help="folder written by `retrieve index`")
  query.add_argument("--k", type=int, default=10, help="results per query (default 10)")
  query.add_argument("--grid", metavar="OUT.png", help="draw queries beside their results")
  query.add_argument(
      "--bbox",
      action="append",
      metavar="x1,y1,x2,y2",
      help="query bounding box in pixels; once for all queries or once per "
      "query, in order (default: the whole image)",
  )
  model = query.add_mutually_exclusive_group()
  model.add_argument("--workdir", help="override the index's run (must be the same model)")
  model.add_argument("--checkpoint", help="override the index's checkpoint")
  query.add_argument(
      "--batch-size",
      "--batch_size",
      dest="batch_size",
      type=int,
      default=32,
      help="images per forward pass",
  )
  add_verbose_argument(query)
  return parser


def _predictor(workdir=None, checkpoint=None):
  from fashionnet_jax.inference.predictor import CheckpointNotFoundError, Predictor

  try:
    return Predictor(workdir=workdir, checkpoint=checkpoint)
  except CheckpointNotFoundError as e:
    raise UsageError(str(e)) from None


def _run_index(args, stdout, stderr) -> int:
  if args.chunk_size < 1 or args.batch_size < 1:
    raise UsageError("--chunk-size and --batch-size must be >= 1")
  if not args.images and not args.from_tfds:
    raise UsageError("give --images FOLDER (or --from_tfds SPLIT)")
  predictor = _predictor(args.workdir, args.checkpoint)
  try:
    if args.from_tfds:
      meta = build_tfds_index(
          predictor,
          args.from_tfds,
          args.out,
          images_root=args.images,
          chunk_size=args.chunk_size,
          log=stderr,
      )
    else:
      meta = build_index(
          predictor,
          args.images,
          args.out,
          bboxes=args.bboxes,
          chunk_size=args.chunk_size,
          batch_size=args.batch_size,
          log=stderr,
      )
  except KeyboardInterrupt:
    print(f"interrupted: rerun the same command to continue {args.out}", file=stderr)
    return 130
  print(
      f"indexed {meta['num_images']} images into {args.out} ({meta['num_cropped']} cropped "
      f"by their bbox, {meta['num_whole']} whole); {meta['num_skipped']} unreadable skipped "
      f"(listed in {args.out}/skipped.txt)",
      file=stderr,
  )
  if meta.get("unmatched_bboxes"):
    print(
        f"note: {meta['unmatched_bboxes']} rows of {args.bboxes} name no image under "
        f"{args.images}",
        file=stderr,
    )
  return 0  # skipping unreadable files is the documented behaviour, and reported


def _run_query(args, stdout, stderr) -> int:
  if args.k < 1 or args.batch_size < 1:
    raise UsageError("--k and --batch-size must be >= 1")
  index = Index(args.index)
  if args.workdir or args.checkpoint:
    predictor = _predictor(args.workdir, args.checkpoint)
    if not same_model(predictor, index.meta["model"]):
      print(
          f"warning: the index was built with {index.meta['model']}; its embeddings may not "
          "be comparable with this model's",
          file=stderr,
      )
  else:
    model = index.meta["model"]
    predictor = _predictor(
        checkpoint=model.get("checkpoint")
        or os.path.join(model["workdir"], "checkpoints", str(model["step"]))
    )
  index.check_width(embedding_width(predictor.config.model))
  bboxes = images_lib.bboxes_for(args.bbox, len(args.images))
  failed, rows = 0, []
  for i, (path, results, error, kind) in enumerate(
      query_index(predictor, index, args.images, args.k, args.batch_size, bboxes)
  ):
    if error is not None:
      print(f"error: {error}", file=stderr, flush=True)
      failed += 1
      continue
    bbox = None if bboxes is None else [float(v) for v in bboxes[i]]
    print(
        json.dumps({"query": path, "bbox": bbox, "crop": kind, "results": results}),
        file=stdout,
        flush=True,
    )
    rows.append((path, [(index.absolute(r["path"]), r["path"], r["score"]) for r in results]))
  if args.grid and rows and index.meta.get("images") is None:
    print(f"warning: no --grid: {args.index} was built from TFDS without --images", file=stderr)
  elif args.grid and rows:
    from fashionnet_jax.inference import visualize

    os.makedirs(os.path.dirname(os.path.abspath(args.grid)), exist_ok=True)
    visualize.draw_retrieval_grid(rows).save(args.grid)
  return 1 if failed else 0


def run(argv=None, stdout=None, stderr=None) -> int:
  """The command line; returns the exit status (0, 1 something unreadable, 2 usage)."""
  stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
  parser = build_parser()
  args = parser.parse_args(argv)
  console.set_verbose(args.verbose)
  try:
    if args.command == "index":
      return _run_index(args, stdout, stderr)
    return _run_query(args, stdout, stderr)
  except FashionNetError as e:  # usage, a bad bbox file or bbox
    print(f"{parser.prog} {args.command}: error: {one_line(e)}", file=stderr)
    return 2


@exit_on_user_error
def main():
  sys.exit(run())


if __name__ == "__main__":
  main()
