r"""Category, attributes and landmarks of arbitrary photos, with a trained FashionNet.

  python -m fashionnet_jax.predict --workdir /tmp/fashionnet_demo photo1.jpg photo2.png
  python -m fashionnet_jax.predict --checkpoint DIR/checkpoints/400 photo.jpg \
      --bbox 72,79,232,273 --visualize /tmp/predictions --top-k 5

Prints one JSON line per image on stdout, in the order given:

  {"image": ..., "category": [{"name", "probability"}, ...top-k],
   "attributes": [{"name", "type", "probability"}, ...top-k],
   "clothes_type": "upper" | "lower" | "full",
   "landmarks": [{"name", "x", "y", "visible", "probability_visible", "applies"}, x8],
   "bbox": [x1, y1, x2, y2] | null, "width": W, "height": H}

Landmark x, y are pixels of the original image. `clothes_type` is the type of the
most probable category (list_category_cloth.txt); `applies` marks the slots that
type uses (upper 0,1,2,3,6,7; lower 4,5,6,7; full all), as in the annotations.
Without --bbox the network sees the whole image. A file that cannot be read is
reported on stderr (one line naming it) and the others are still predicted;
the exit status is then 1. Usage errors exit with 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from fashionnet_jax import synthetic_vocab
from fashionnet_jax.data.annotations import CLOTHES_TYPE_NAMES, LANDMARK_NAMES, SLOTS_BY_CLOTHES_TYPE
from fashionnet_jax.evaluate import ATTRIBUTE_TYPE_NAMES, FINE_ATTRIBUTE_TYPE_NAMES


class UsageError(ValueError):
  """A command-line mistake: one line on stderr, exit status 2."""


def _softmax(x, axis=-1):
  x = np.asarray(x, np.float64)
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


class LabelSpace:
  """Names and types of the network's outputs, from the run's labels.json.

  A run on a benchmark without category names (In-shop) still has the
  contract's 50 DeepFashion categories; attributes without names are not reported.
  """

  def __init__(self, labels: dict, num_categories: int, num_attributes: int):
    categories = list(labels.get("categories") or [])
    if not categories and num_categories == len(synthetic_vocab.CATEGORIES):
      categories = [name for name, _ in synthetic_vocab.CATEGORIES]
    if len(categories) != num_categories:
      categories = [f"category_{i + 1}" for i in range(num_categories)]
    self.categories = categories
    # The category -> clothes type map of list_category_cloth.txt (1 upper, 2 lower, 3 full).
    self.category_types = [synthetic_vocab.CATEGORY_TYPE.get(name) for name in categories]
    names = list(labels.get("attribute_names") or [])
    types = list(labels.get("attribute_types") or [])
    if len(names) != num_attributes:
      names, types = [], []
    type_names = FINE_ATTRIBUTE_TYPE_NAMES if num_attributes == 26 else ATTRIBUTE_TYPE_NAMES
    self.attribute_names = names
    self.attribute_types = [type_names.get(int(t), str(t)) for t in types] or [None] * len(names)

  def clothes_type(self, category_probabilities) -> int | None:
    """1-based clothes type of the most probable category with a known type."""
    for index in np.argsort(-category_probabilities, kind="stable"):
      if self.category_types[index] is not None:
        return int(self.category_types[index])
    return None


def describe(outputs: dict, index: int, loaded, labels: LabelSpace, top_k: int,
             bbox=None) -> dict:
  """The JSON record of image `index` of a batch of network outputs."""
  from fashionnet_jax.inference import landmarks_to_pixels

  category_p = _softmax(outputs["category_logits"][index])
  order = np.argsort(-category_p, kind="stable")[:top_k]
  category = [{"name": labels.categories[i], "probability": round(float(category_p[i]), 6)}
              for i in order]

  attributes = []
  if labels.attribute_names:
    attribute_p = _sigmoid(outputs["attribute_logits"][index])
    for i in np.argsort(-attribute_p, kind="stable")[:top_k]:
      attributes.append({"name": labels.attribute_names[i], "type": labels.attribute_types[i],
                         "probability": round(float(attribute_p[i]), 6)})

  clothes_type = labels.clothes_type(category_p)
  applies = set(SLOTS_BY_CLOTHES_TYPE.get(clothes_type, range(len(LANDMARK_NAMES))))
  xy = landmarks_to_pixels(outputs["landmarks"][index], loaded.crop, loaded.size)
  p_visible = _softmax(outputs["visibility_logits"][index])[:, 0]  # index 0: visible
  landmarks = [
      {"name": name, "x": round(float(xy[s, 0]), 2), "y": round(float(xy[s, 1]), 2),
       "visible": bool(p_visible[s] >= 0.5), "probability_visible": round(float(p_visible[s]), 6),
       "applies": s in applies}
      for s, name in enumerate(LANDMARK_NAMES)]
  return {
      "image": loaded.path,
      "category": category,
      "attributes": attributes,
      "clothes_type": CLOTHES_TYPE_NAMES[clothes_type - 1] if clothes_type else None,
      "landmarks": landmarks,
      "bbox": None if bbox is None else [float(v) for v in bbox],
      "width": loaded.size[0],
      "height": loaded.size[1],
  }


def predict_files(predictor, paths: Sequence[str], bboxes=None, *, top_k: int = 5,
                  batch_size: int = 32) -> Iterator[tuple[str, dict | None, str | None]]:
  """Yields (path, record, None) or (path, None, error line) per path, in order.

  Images are read and run `batch_size` at a time; an unreadable file costs only
  its own record.
  """
  from fashionnet_jax.inference import ImageError, load_image

  config = predictor.config
  labels = LabelSpace(predictor.labels, int(config.model.num_categories),
                      int(config.model.num_attributes))
  margin = float(config.input.get("crop_margin", 0.1))
  bboxes = list(bboxes) if bboxes is not None else [None] * len(paths)
  for start in range(0, len(paths), batch_size):
    chunk = list(range(start, min(start + batch_size, len(paths))))
    loaded, errors = {}, {}
    for i in chunk:
      try:
        loaded[i] = load_image(paths[i], predictor.image_size, bboxes[i], margin)
      except ImageError as e:
        errors[i] = str(e)
    good = [i for i in chunk if i in loaded]
    outputs = predictor.predict_uint8(np.stack([loaded[i].image for i in good])) if good else {}
    for i in chunk:
      if i in errors:
        yield paths[i], None, errors[i]
      else:
        yield paths[i], describe(outputs, good.index(i), loaded[i], labels, top_k, bboxes[i]), None


def parse_bbox(text: str) -> tuple[float, float, float, float]:
  """'x1,y1,x2,y2' in pixels → floats, with x1 < x2 and y1 < y2."""
  parts = text.split(",")
  try:
    values = tuple(float(p) for p in parts)
  except ValueError:
    values = ()
  if len(values) != 4 or not all(np.isfinite(values)):
    raise UsageError(f"--bbox {text!r}: expected four numbers x1,y1,x2,y2 (pixels)")
  x1, y1, x2, y2 = values
  if not (x1 < x2 and y1 < y2):
    raise UsageError(f"--bbox {text!r}: need x1 < x2 and y1 < y2")
  return values


class _Parser(argparse.ArgumentParser):
  """argparse whose errors are one line (exit 2), without the usage block."""

  def error(self, message):
    self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog="python -m fashionnet_jax.predict",
                   description="Category, attributes and landmarks of photos (one JSON line each).")
  parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any PIL format)")
  model = parser.add_mutually_exclusive_group(required=True)
  model.add_argument("--workdir", help="training run folder (latest checkpoint)")
  model.add_argument("--checkpoint", help="one checkpoint: WORKDIR/checkpoints/STEP")
  parser.add_argument("--bbox", action="append", metavar="x1,y1,x2,y2",
                      help="clothes bounding box in pixels; once for all images or once per "
                           "image, in order (default: the whole image)")
  parser.add_argument("--visualize", metavar="OUT_DIR",
                      help="also draw each prediction to OUT_DIR/<image name>.png")
  parser.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=5,
                      help="categories and attributes listed per image (default 5)")
  parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=32,
                      help="images per forward pass (default 32)")
  return parser


def _bboxes(args):
  if not args.bbox:
    return None
  boxes = [parse_bbox(b) for b in args.bbox]
  if len(boxes) == 1:
    return boxes * len(args.images)
  if len(boxes) != len(args.images):
    raise UsageError(f"{len(boxes)} --bbox for {len(args.images)} images: give one for all "
                     "or one per image")
  return boxes


def visualize_path(out_dir, image_path, taken: set) -> str:
  """OUT_DIR/<stem>.png, numbered when two inputs share a stem."""
  import os
  stem = os.path.splitext(os.path.basename(image_path))[0] or "image"
  name, n = stem, 1
  while name in taken:
    n += 1
    name = f"{stem}_{n}"
  taken.add(name)
  return os.path.join(out_dir, f"{name}.png")


def run(argv: Iterable[str] | None = None, stdout=None, stderr=None) -> int:
  """The command line; returns the exit status (0, 1 some image failed, 2 usage)."""
  stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    if args.top_k < 1 or args.batch_size < 1:
      raise UsageError("--top-k and --batch-size must be >= 1")
    bboxes = _bboxes(args)
    from fashionnet_jax.inference import CheckpointNotFoundError, Predictor
    try:
      predictor = Predictor(workdir=args.workdir, checkpoint=args.checkpoint)
    except CheckpointNotFoundError as e:
      raise UsageError(str(e)) from None
  except UsageError as e:
    print(f"{parser.prog}: error: {e}", file=stderr)
    return 2

  failed, taken = 0, set()
  if args.visualize:
    import os
    os.makedirs(args.visualize, exist_ok=True)
  for path, record, error in predict_files(predictor, args.images, bboxes, top_k=args.top_k,
                                           batch_size=args.batch_size):
    if error is not None:
      print(f"error: {error}", file=stderr, flush=True)
      failed += 1
      continue
    print(json.dumps(record), file=stdout, flush=True)
    if args.visualize:
      from fashionnet_jax import visualize
      visualize.draw_prediction(path, record).save(visualize_path(args.visualize, path, taken))
  if failed:
    print(f"{failed} of {len(args.images)} images failed", file=stderr)
  return 1 if failed else 0


def main():
  sys.exit(run())


if __name__ == "__main__":
  main()
