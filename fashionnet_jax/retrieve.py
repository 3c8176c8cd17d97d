r"""Clothes retrieval over your own gallery: build an embedding index, then query it.

  python -m fashionnet_jax.retrieve index --workdir /tmp/fashionnet_inshop \
      --images /data/gallery --out /tmp/gallery_index
  python -m fashionnet_jax.retrieve query --index /tmp/gallery_index photo.jpg --k 10 \
      --grid /tmp/results.png

`index` walks --images recursively, embeds every image (whole image, as
`predict` without a bbox) `--batch-size` at a time and writes
  OUT/embeddings.npy   float32 [N, D], L2-normalised FashionNet embeddings
  OUT/paths.txt        the N image paths, relative to --images, one a line
  OUT/meta.json        the checkpoint used, the images folder, counts
  OUT/skipped.txt      unreadable files and why (reported on stderr too)
The work is saved in chunks (OUT/chunks/) as it goes: an interrupted run, rerun
with the same arguments, continues after the last finished chunk.

`query` embeds each query with the index's checkpoint (or --workdir/--checkpoint),
ranks the gallery by cosine similarity with `evaluation.search.topk_search`
and prints one JSON line per query:
  {"query": path, "results": [{"rank": 1, "path": ..., "score": ...}, ...]}
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np

from fashionnet_jax.cli import Parser, UsageError, add_model_arguments
from fashionnet_jax.errors import exit_on_user_error
from fashionnet_jax.inference.index import Index
from fashionnet_jax.models import embedding_width

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CHUNKS_DIR = "chunks"
INDEX_VERSION = 1


def list_images(root: str) -> list[str]:
  """Image files under `root` (by extension, recursively), relative, sorted."""
  found = []
  for folder, dirs, files in os.walk(root):
    dirs.sort()
    for name in files:
      if name.lower().endswith(IMAGE_EXTENSIONS):
        found.append(os.path.relpath(os.path.join(folder, name), root))
  return sorted(found)


def _model_identity(predictor) -> dict:
  return {"workdir": os.path.abspath(str(predictor.workdir)), "step": int(predictor.step)}


def _chunk_key(paths) -> str:
  """Names a chunk by its content, so a changed folder never reuses a stale chunk."""
  return hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]


def embed_files(predictor, paths, batch_size=32, progress=None):
  """(embeddings [n, D] of the readable files, their indices, [(index, error)])."""
  from fashionnet_jax.inference.images import ImageError, load_image
  rows, kept, errors = [], [], []
  for start in range(0, len(paths), batch_size):
    images = []
    for i in range(start, min(start + batch_size, len(paths))):
      try:
        images.append(load_image(paths[i], predictor.image_size).image)
        kept.append(i)
      except ImageError as e:
        errors.append((i, str(e)))
    if images:
      rows.append(predictor.predict_uint8(np.stack(images))["embedding"])
    if progress is not None:
      progress.update(min(batch_size, len(paths) - start))
  dim = embedding_width(predictor.config.model)
  embeddings = np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)
  return embeddings.astype(np.float32), kept, errors


def _save_chunk(path, embeddings, paths, skipped):
  """Atomic: a chunk file exists only once it is whole (write, then rename)."""
  tmp = path + ".tmp.npz"
  np.savez(tmp, embeddings=embeddings, paths=np.array(paths, dtype=str),
           skipped=np.array(skipped, dtype=str))
  os.replace(tmp, path)


def build_index(predictor, images_root: str, out: str, *, chunk_size: int = 1024,
                batch_size: int = 32, log=sys.stderr) -> dict:
  """Embeds every image under images_root into the index folder `out`; resumable.

  Returns the meta dict (also written to out/meta.json).
  """
  from tqdm import tqdm

  from fashionnet_jax.evaluation.search import l2_normalize

  if not os.path.isdir(images_root):
    raise UsageError(f"--images {images_root}: not a folder")
  identity = _model_identity(predictor)
  meta_path = os.path.join(out, "meta.json")
  chunks_dir = os.path.join(out, CHUNKS_DIR)
  if os.path.exists(meta_path):
    previous = json.loads(open(meta_path).read())
    if previous.get("model") != identity:
      raise UsageError(f"{meta_path}: this index was built with {previous.get('model')}, not "
                       f"{identity}; choose a new --out")
    if previous.get("images") != os.path.abspath(images_root):
      raise UsageError(f"{meta_path}: this index is of {previous.get('images')}, not "
                       f"{os.path.abspath(images_root)}; choose a new --out")
  os.makedirs(chunks_dir, exist_ok=True)
  meta = {"version": INDEX_VERSION, "model": identity,
          "images": os.path.abspath(images_root), "complete": False}
  with open(meta_path, "w") as f:
    json.dump(meta, f, indent=1)

  relative = list_images(images_root)
  chunks = [relative[i:i + chunk_size] for i in range(0, len(relative), chunk_size)]
  files = [os.path.join(chunks_dir, f"{n:05d}-{_chunk_key(c)}.npz") for n, c in enumerate(chunks)]
  done = sum(os.path.exists(f) for f in files)
  if done:
    print(f"resuming: {done} of {len(chunks)} chunks already embedded", file=log)
  # Chunks of an earlier, different listing of the folder are stale.
  for name in set(os.listdir(chunks_dir)) - {os.path.basename(f) for f in files}:
    os.remove(os.path.join(chunks_dir, name))

  with tqdm(total=len(relative), unit="img", desc="embedding", file=log,
            disable=None) as progress:
    progress.update(sum(len(c) for c, f in zip(chunks, files) if os.path.exists(f)))
    for chunk, file in zip(chunks, files):
      if os.path.exists(file):
        continue
      absolute = [os.path.join(images_root, p) for p in chunk]
      embeddings, kept, errors = embed_files(predictor, absolute, batch_size, progress)
      for _, error in errors:
        progress.write(f"skipped: {error}", file=log)
      _save_chunk(file, np.asarray(l2_normalize(embeddings)), [chunk[i] for i in kept],
                  [f"{chunk[i]}\t{e}" for i, e in errors])

  parts = [np.load(f) for f in files]
  dim = embedding_width(predictor.config.model)
  embeddings = (np.concatenate([p["embeddings"] for p in parts]) if parts
                else np.zeros((0, dim), np.float32))
  paths = [str(p) for part in parts for p in part["paths"]]
  skipped = [str(s) for part in parts for s in part["skipped"]]
  np.save(os.path.join(out, "embeddings.npy"), embeddings.astype(np.float32))
  with open(os.path.join(out, "paths.txt"), "w") as f:
    f.writelines(p + "\n" for p in paths)
  with open(os.path.join(out, "skipped.txt"), "w") as f:
    f.writelines(s + "\n" for s in skipped)
  meta.update(complete=True, num_images=len(paths), num_skipped=len(skipped),
              embedding_dim=int(embeddings.shape[1]), image_size=int(predictor.image_size))
  with open(meta_path, "w") as f:
    json.dump(meta, f, indent=1)
  return meta


def query_index(predictor, index: Index, query_paths, k: int, batch_size: int = 32):
  """Yields (path, results or None, error or None) per query, in order."""
  from fashionnet_jax.evaluation.search import topk_search
  embeddings, kept, errors = embed_files(predictor, list(query_paths), batch_size)
  errors = dict(errors)
  results = {}
  if kept:
    k = min(k, len(index.paths))
    scores, indices = topk_search(embeddings, index.embeddings, k)
    scores, indices = np.asarray(scores), np.asarray(indices)
    for row, i in enumerate(kept):
      results[i] = [{"rank": r + 1, "path": index.paths[j], "score": float(s)}
                    for r, (s, j) in enumerate(zip(scores[row], indices[row]))]
  for i, path in enumerate(query_paths):
    yield path, results.get(i), errors.get(i)


def build_parser() -> argparse.ArgumentParser:
  parser = Parser(prog="python -m fashionnet_jax.retrieve",
                   description="Index a folder of clothes images, then find the nearest ones.")
  sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
  index = sub.add_parser("index", help="embed every image under a folder (resumable)")
  add_model_arguments(index)
  index.add_argument("--images", required=True, help="gallery folder, walked recursively")
  index.add_argument("--out", required=True, help="index folder to write (or resume)")
  index.add_argument("--chunk-size", "--chunk_size", dest="chunk_size", type=int, default=1024,
                     help="images saved per chunk: the unit of resumption (default 1024)")
  index.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)

  query = sub.add_parser("query", help="rank the index's images for each query image")
  query.add_argument("images", nargs="+", metavar="IMAGE")
  query.add_argument("--index", required=True, help="folder written by `retrieve index`")
  query.add_argument("--k", type=int, default=10, help="results per query (default 10)")
  query.add_argument("--grid", metavar="OUT.png", help="draw queries beside their results")
  model = query.add_mutually_exclusive_group()
  model.add_argument("--workdir", help="override the index's run (must be the same model)")
  model.add_argument("--checkpoint", help="override the index's checkpoint")
  query.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32)
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
  predictor = _predictor(args.workdir, args.checkpoint)
  try:
    meta = build_index(predictor, args.images, args.out, chunk_size=args.chunk_size,
                       batch_size=args.batch_size, log=stderr)
  except KeyboardInterrupt:
    print(f"interrupted: rerun the same command to continue {args.out}", file=stderr)
    return 130
  print(f"indexed {meta['num_images']} images into {args.out}; "
        f"{meta['num_skipped']} unreadable skipped (listed in {args.out}/skipped.txt)",
        file=stderr)
  return 0  # skipping unreadable files is the documented behaviour, and reported


def _run_query(args, stdout, stderr) -> int:
  if args.k < 1 or args.batch_size < 1:
    raise UsageError("--k and --batch-size must be >= 1")
  index = Index(args.index)
  if args.workdir or args.checkpoint:
    predictor = _predictor(args.workdir, args.checkpoint)
    if _model_identity(predictor) != index.meta["model"]:
      print(f"warning: the index was built with {index.meta['model']}; its embeddings may not "
            "be comparable with this model's", file=stderr)
  else:
    model = index.meta["model"]
    predictor = _predictor(checkpoint=os.path.join(model["workdir"], "checkpoints",
                                                   str(model["step"])))
  index.check_width(embedding_width(predictor.config.model))
  failed, rows = 0, []
  for path, results, error in query_index(predictor, index, args.images, args.k,
                                          args.batch_size):
    if error is not None:
      print(f"error: {error}", file=stderr, flush=True)
      failed += 1
      continue
    print(json.dumps({"query": path, "results": results}), file=stdout, flush=True)
    rows.append((path, [(index.absolute(r["path"]), r["path"], r["score"]) for r in results]))
  if args.grid and rows:
    from fashionnet_jax.inference import visualize
    os.makedirs(os.path.dirname(os.path.abspath(args.grid)), exist_ok=True)
    visualize.draw_retrieval_grid(rows).save(args.grid)
  return 1 if failed else 0


def run(argv=None, stdout=None, stderr=None) -> int:
  """The command line; returns the exit status (0, 1 something unreadable, 2 usage)."""
  stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    if args.command == "index":
      return _run_index(args, stdout, stderr)
    return _run_query(args, stdout, stderr)
  except UsageError as e:
    print(f"{parser.prog} {args.command}: error: {e}", file=stderr)
    return 2


@exit_on_user_error
def main():
  sys.exit(run())


if __name__ == "__main__":
  main()
