r"""Category, attributes and landmarks of arbitrary photos, with a trained FashionNet.

  python -m fashionnet_jax.predict --workdir /tmp/fashionnet_demo photo1.jpg photo2.png
  python -m fashionnet_jax.predict --checkpoint DIR/checkpoints/400 photo.jpg \
      --bbox 72,79,232,273 --visualize /tmp/predictions --top-k 5

Prints one JSON line per image on stdout, in the order given:

  {"image": ..., "category": [{"name", "probability"}, ...top-k],
   "attributes": [{"name", "type", "probability"}, ...top-k],
   "clothes_type": "upper" | "lower" | "full",
   "landmarks": [{"name", "x", "y", "visible", "probability_visible", "applies"}, x8],
   "bbox": [x1, y1, x2, y2] | null, "crop": "bbox" | "whole image", "width": W, "height": H,
   "trained_on": "synthetic DeepFashion (demo)" | "DeepFashion <benchmark>"}

Landmark x, y are pixels of the original image. `clothes_type` is the type of the
most probable category (list_category_cloth.txt); `applies` marks the slots that
type uses (upper 0,1,2,3,6,7; lower 4,5,6,7; full all), as in the annotations.
With --bbox the network sees the bbox plus the run's eval margin, cropped as
evaluation crops a dataset image; without, the whole image (`"crop"` says
which: the rule of `inference.images.crop_rule`, the same in `retrieve` and
`serve`). A file that cannot be read is
reported on stderr (one line naming it) and the others are still predicted;
a model trained on the synthetic demo data says so on stderr, once;
the exit status is then 1. Usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable

from fashionnet_jax import console  # first: quiet before TensorFlow loads
from fashionnet_jax.cli import Parser, UsageError, add_model_arguments, add_verbose_argument
from fashionnet_jax.errors import exit_on_user_error
from fashionnet_jax.inference import images
from fashionnet_jax.inference.describe import LabelSpace, predict_files


def build_parser() -> argparse.ArgumentParser:
  parser = Parser(
      prog="python -m fashionnet_jax.predict",
      description="Category, attributes and landmarks of photos (one JSON line each).",
  )
  parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any PIL format)")
  add_model_arguments(parser)
  parser.add_argument(
      "--bbox",
      action="append",
      metavar="x1,y1,x2,y2",
      help="clothes bounding box in pixels; once for all images or once per "
      "image, in order (default: the whole image)",
  )
  parser.add_argument(
      "--visualize", metavar="OUT_DIR", help="also draw each prediction to OUT_DIR/<image name>.png"
  )
  parser.add_argument(
      "--top-k",
      "--top_k",
      dest="top_k",
      type=int,
      default=5,
      help="categories and attributes listed per image (default 5)",
  )
  parser.add_argument(
      "--batch-size",
      "--batch_size",
      dest="batch_size",
      type=int,
      default=32,
      help="images per forward pass (default 32)",
  )
  add_verbose_argument(parser)
  return parser


def visualize_path(out_dir, image_path, taken: set) -> str:
  """OUT_DIR/<stem>.png, numbered when two inputs share a stem."""
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
  console.set_verbose(args.verbose)
  try:
    if args.top_k < 1 or args.batch_size < 1:
      raise UsageError("--top-k and --batch-size must be >= 1")
    bboxes = images.bboxes_for(args.bbox, len(args.images))
    from fashionnet_jax.inference.predictor import CheckpointNotFoundError, Predictor

    try:
      predictor = Predictor(workdir=args.workdir, checkpoint=args.checkpoint)
    except CheckpointNotFoundError as e:
      raise UsageError(str(e)) from None
  except (UsageError, images.BBoxError) as e:
    print(f"{parser.prog}: error: {e}", file=stderr)
    return 2

  note = LabelSpace.of(predictor).note()
  if note:
    print(note, file=stderr, flush=True)
  failed, taken = 0, set()
  if args.visualize:
    os.makedirs(args.visualize, exist_ok=True)
  for path, record, error in predict_files(
      predictor, args.images, bboxes, top_k=args.top_k, batch_size=args.batch_size
  ):
    if error is not None:
      print(f"error: {error}", file=stderr, flush=True)
      failed += 1
      continue
    print(json.dumps(record), file=stdout, flush=True)
    if args.visualize:
      from fashionnet_jax.inference import visualize

      visualize.draw_prediction(path, record).save(visualize_path(args.visualize, path, taken))
  if failed:
    print(f"{failed} of {len(args.images)} images failed", file=stderr)
  return 1 if failed else 0


@exit_on_user_error
def main():
  sys.exit(run())


if __name__ == "__main__":
  main()
