"""Builds a retrieval index folder (`retrieve index`): embeddings of a gallery, cropped as
evaluation crops.

`build_index(predictor, images_root, out, bboxes=FILE)` embeds a folder of
image files, each cropped by `images.crop_rule` (the bbox from FILE plus the
run's eval margin, or the whole image); `build_tfds_index(predictor, split,
out)` embeds a split of the run's TFDS dataset through the eval pipeline
itself. Both save chunks as they go (an interrupted build resumes) and write
the folder `inference.index.Index` reads: embeddings.npy, paths.txt,
crops.jsonl, skipped.txt, meta.json.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys

import numpy as np

from fashionnet_jax.cli import UsageError
from fashionnet_jax.errors import one_line
from fashionnet_jax.inference import images as images_lib
from fashionnet_jax.inference.index import read_bbox_file
from fashionnet_jax.models import embedding_width
from fashionnet_jax.models.embedding import l2_normalize

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CHUNKS_DIR = "chunks"
INDEX_VERSION = 2  # 2: crops.jsonl, bboxes


class IndexBBoxError(UsageError):
  """A bbox from --bboxes that misses its image: one line naming the file and line."""


def list_images(root: str) -> list[str]:
  """Image files under `root` (by extension, recursively), relative, sorted."""
  found = []
  for folder, dirs, files in os.walk(root):
    dirs.sort()
    for name in files:
      if name.lower().endswith(IMAGE_EXTENSIONS):
        found.append(os.path.relpath(os.path.join(folder, name), root))
  return sorted(found)


def model_identity(predictor) -> dict:
  """The model an index was built with: its run, step and the step folder it was read from
  (checkpoints/ or best/: the step chosen on validation, which checkpoints/ may have pruned)."""
  return {
      "workdir": os.path.abspath(str(predictor.workdir)),
      "step": int(predictor.step),
      "checkpoint": os.path.abspath(str(predictor.checkpoint)),
  }


def same_model(predictor, identity: dict) -> bool:
  """Whether `predictor` is the model of `identity` (an index's meta["model"]; indexes
  written before "checkpoint" was recorded are matched by run and step)."""
  ours = model_identity(predictor)
  return all(ours[k] == identity.get(k, ours[k]) for k in ours) and all(
      k in identity for k in ("workdir", "step")
  )


def _chunk_key(lines) -> str:
  """Names a chunk by its content, so a changed folder never reuses a stale chunk."""
  return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _crop_entry(kind: str, bbox) -> dict:
  """One line of crops.jsonl."""
  return {
      "crop": kind,
      "bbox": [round(float(v), 2) for v in bbox] if kind == images_lib.CROP_BBOX else None,
  }


def embed_files(predictor, paths, batch_size=32, progress=None, bboxes=None, where=None):
  """Embeds image files `batch_size` at a time, each cropped by `images.crop_rule`.

  Args:
    bboxes: per path a pixel bbox (x1, y1, x2, y2) or None (whole image); None: all whole.
    where: per path the "file:line" its bbox came from, or None: such a bbox that
      misses its image raises IndexBBoxError instead of costing only that image.

  Returns:
    (embeddings [n, D] of the readable files, their indices, [(index, error)],
    the crop kind of each embedded file).
  """
  bboxes = [None] * len(paths) if bboxes is None else list(bboxes)
  margin = images_lib.crop_margin(predictor.config)
  rows, kept, errors, kinds = [], [], [], []
  for start in range(0, len(paths), batch_size):
    batch = []
    for i in range(start, min(start + batch_size, len(paths))):
      try:
        loaded = images_lib.load_image(paths[i], predictor.image_size, bboxes[i], margin)
      except images_lib.BBoxError as e:
        if where is not None and where[i] is not None:
          raise IndexBBoxError(f"{where[i]}: {e}") from None
        errors.append((i, str(e)))
        continue
      except images_lib.ImageError as e:
        errors.append((i, str(e)))
        continue
      batch.append(loaded.image)
      kept.append(i)
      kinds.append(loaded.crop_kind)
    if batch:
      rows.append(predictor.predict_uint8(np.stack(batch))["embedding"])
    if progress is not None:
      progress.update(min(batch_size, len(paths) - start))
  dim = embedding_width(predictor.config.model)
  embeddings = np.concatenate(rows) if rows else np.zeros((0, dim), np.float32)
  return embeddings.astype(np.float32), kept, errors, kinds


def _save_chunk(path, embeddings, paths, skipped, crops=()):
  """Atomic: a chunk file exists only once it is whole (write, then rename)."""
  tmp = path + ".tmp.npz"
  np.savez(
      tmp,
      embeddings=embeddings,
      paths=np.array(paths, dtype=str),
      skipped=np.array(skipped, dtype=str),
      crops=np.array([json.dumps(c) for c in crops], dtype=str),
  )
  os.replace(tmp, path)


def _open_index(out: str, meta: dict) -> str:
  """Starts (or resumes) the index folder `out` for `meta`; returns its chunks folder.

  Resuming needs the same model, images and bbox source (else: choose a new --out).
  """
  meta_path = os.path.join(out, "meta.json")
  if os.path.exists(meta_path):
    previous = json.loads(open(meta_path).read())
    for key, what in (
        ("model", "built with"),
        ("images", "of"),
        ("bboxes", "cropped by"),
        ("tfds", "of"),
    ):
      if previous.get(key) != meta.get(key):
        raise UsageError(
            f"{meta_path}: this index was {what} {previous.get(key)}, not "
            f"{meta.get(key)}; choose a new --out"
        )
  chunks_dir = os.path.join(out, CHUNKS_DIR)
  os.makedirs(chunks_dir, exist_ok=True)
  with open(meta_path, "w") as f:
    json.dump(meta, f, indent=1)
  return chunks_dir


def _embed_chunks(out, meta, keys, sizes, embed_chunk, dim, log) -> dict:
  """Runs embed_chunk(n, progress) -> (embeddings, paths, crops, skipped) for every chunk
  not saved yet, then writes the index's files and its finished meta."""
  from tqdm import tqdm

  chunks_dir = os.path.join(out, CHUNKS_DIR)
  files = [os.path.join(chunks_dir, f"{n:05d}-{key}.npz") for n, key in enumerate(keys)]
  done = sum(os.path.exists(f) for f in files)
  if done:
    print(f"resuming: {done} of {len(files)} chunks already embedded", file=log)
  # Chunks of an earlier, different listing of the folder are stale.
  for name in set(os.listdir(chunks_dir)) - {os.path.basename(f) for f in files}:
    os.remove(os.path.join(chunks_dir, name))
  with tqdm(total=sum(sizes), unit="img", desc="embedding", file=log, disable=None) as progress:
    progress.update(sum(size for size, f in zip(sizes, files) if os.path.exists(f)))
    for n, file in enumerate(files):
      if os.path.exists(file):
        continue
      embeddings, paths, crops, skipped = embed_chunk(n, progress)
      for line in skipped:
        progress.write(f"skipped: {line.split(chr(9), 1)[-1]}", file=log)
      _save_chunk(file, np.asarray(l2_normalize(embeddings)), paths, skipped, crops)

  parts = [np.load(f) for f in files]
  embeddings = (
      np.concatenate([p["embeddings"] for p in parts]) if parts else np.zeros((0, dim), np.float32)
  )
  paths = [str(p) for part in parts for p in part["paths"]]
  crops = [json.loads(str(c)) for part in parts for c in part["crops"]]
  skipped = [str(s) for part in parts for s in part["skipped"]]
  np.save(os.path.join(out, "embeddings.npy"), embeddings.astype(np.float32))
  for name, lines in (
      ("paths.txt", paths),
      ("skipped.txt", skipped),
      ("crops.jsonl", [json.dumps(c) for c in crops]),
  ):
    with open(os.path.join(out, name), "w") as f:
      f.writelines(line + "\n" for line in lines)
  num_cropped = sum(c["crop"] == images_lib.CROP_BBOX for c in crops)
  meta.update(
      complete=True,
      num_images=len(paths),
      num_skipped=len(skipped),
      num_cropped=num_cropped,
      num_whole=len(paths) - num_cropped,
      embedding_dim=int(embeddings.shape[1]),
  )
  with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
  return meta


def _base_meta(predictor, images_root) -> dict:
  return {
      "version": INDEX_VERSION,
      "model": model_identity(predictor),
      "images": os.path.abspath(images_root) if images_root else None,
      "crop_margin": images_lib.crop_margin(predictor.config),
      "image_size": int(predictor.image_size),
      "complete": False,
  }


def build_index(
    predictor,
    images_root: str,
    out: str,
    *,
    bboxes: str | None = None,
    chunk_size: int = 1024,
    batch_size: int = 32,
    log=sys.stderr,
) -> dict:
  """Embeds every image under images_root into the index folder `out`; resumable.

  `bboxes` is a bbox file (`index.read_bbox_file`): the images it names are
  cropped as evaluation crops them, the others taken whole (`images.crop_rule`).
  Returns the meta dict (also written to out/meta.json); meta["unmatched_bboxes"]
  counts the file's rows that name no image under images_root.
  """
  if not os.path.isdir(images_root):
    raise UsageError(f"--images {images_root}: not a folder")
  boxes = read_bbox_file(bboxes) if bboxes else {}
  meta = _base_meta(predictor, images_root)
  meta["bboxes"] = os.path.abspath(bboxes) if bboxes else None
  _open_index(out, meta)

  relative = list_images(images_root)
  found = [boxes.get(p.replace(os.sep, "/")) for p in relative]  # (bbox, "file:line") or None
  chunks = [
      range(i, min(i + chunk_size, len(relative))) for i in range(0, len(relative), chunk_size)
  ]
  keys = [
      _chunk_key(f"{relative[i]}\t{found[i][0] if found[i] else ''}" for i in c) for c in chunks
  ]

  def embed_chunk(n, progress):
    chunk = chunks[n]
    embeddings, kept, errors, kinds = embed_files(
        predictor,
        [os.path.join(images_root, relative[i]) for i in chunk],
        batch_size,
        progress,
        [found[i][0] if found[i] else None for i in chunk],
        [found[i][1] if found[i] else None for i in chunk],
    )
    paths = [relative[chunk[j]] for j in kept]
    crops = [
        _crop_entry(kind, found[chunk[j]] and found[chunk[j]][0]) for j, kind in zip(kept, kinds)
    ]
    return embeddings, paths, crops, [f"{relative[chunk[j]]}\t{e}" for j, e in errors]

  meta = _embed_chunks(
      out,
      meta,
      keys,
      [len(c) for c in chunks],
      embed_chunk,
      embedding_width(predictor.config.model),
      log,
  )
  meta["unmatched_bboxes"] = len(boxes) - sum(f is not None for f in found)
  return meta


class _Slice:
  """Records start..stop of a data source, as a source (one chunk of a TFDS split)."""

  def __init__(self, source, start, stop):
    self.source, self.start, self.stop = source, start, stop

  def __len__(self):
    return self.stop - self.start

  def __getitem__(self, index):
    return self.source[self.start + int(index)]


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def build_tfds_index(
    predictor,
    split: str,
    out: str,
    *,
    images_root: str | None = None,
    chunk_size: int = 1024,
    log=sys.stderr,
) -> dict:
  """Embeds `split` of the run's TFDS dataset into the index folder `out`, as evaluation does.

  The images go through the eval pipeline itself (`create_eval_iterator`: each
  record's own bbox plus the config's crop margin), in chunks of `chunk_size`
  records (resumable). Paths are the records' `image/filename`.
  """
  from PIL import Image

  from fashionnet_jax.data import pipeline, prepare

  config = predictor.config
  if not prepare.is_prepared(config):
    raise UsageError(
        f"--from_tfds {split}: {config.dataset.name} is not built in "
        f"{prepare.data_dir(config)} (the run's dataset.data_dir)"
    )
  if images_root is not None and not os.path.isdir(images_root):
    raise UsageError(f"--images {images_root}: not a folder")
  try:
    source = pipeline.open_source(config, split)
  except (ValueError, KeyError, OSError) as e:
    raise UsageError(f"--from_tfds {split}: {one_line(e)}") from None
  meta = _base_meta(predictor, images_root)
  meta.update(
      bboxes="tfds",
      tfds={
          "dataset": str(config.dataset.name),
          "split": split,
          "data_dir": str(prepare.data_dir(config)),
      },
  )
  _open_index(out, meta)
  info = getattr(source, "dataset_info", None)
  name = f"{getattr(info, 'full_name', config.dataset.name)}/{split}/{len(source)}"
  chunks = [(i, min(i + chunk_size, len(source))) for i in range(0, len(source), chunk_size)]
  keys = [
      _chunk_key([name, str(start), str(stop), str(meta["crop_margin"])]) for start, stop in chunks
  ]

  def embed_chunk(n, progress):
    view = _Slice(source, *chunks[n])
    rows = []
    for batch in pipeline.create_eval_iterator(
        config, split, source=view, process_index=0, process_count=1
    ):
      image = batch["image"]
      outputs = predictor.predict_uint8(image) if image.dtype == np.uint8 else predictor(image)
      rows.append(outputs["embedding"][batch["mask"]])
      progress.update(int(batch["mask"].sum()))
    paths, crops = [], []
    for i in range(len(view)):
      record = view[i]
      paths.append(_text(record["image/filename"]))
      if "bbox" in record:
        width, height = Image.open(io.BytesIO(record["image"])).size  # the header only
        ymin, xmin, ymax, xmax = np.asarray(record["bbox"], np.float64)
        crops.append(
            _crop_entry(
                images_lib.CROP_BBOX, (xmin * width, ymin * height, xmax * width, ymax * height)
            )
        )
      else:
        crops.append(_crop_entry(images_lib.CROP_WHOLE_IMAGE, None))
    return np.concatenate(rows).astype(np.float32), paths, crops, []

  return _embed_chunks(
      out,
      meta,
      keys,
      [stop - start for start, stop in chunks],
      embed_chunk,
      embedding_width(config.model),
      log,
  )
