r"""Export a trained FashionNet as a TF SavedModel (for TF Serving or TensorFlow).

  python -m fashionnet_jax.export --workdir /tmp/fashionnet_demo --out /tmp/fashionnet_savedmodel/1

Signatures: `serving_default` takes image files' bytes (`image_bytes`: string
[B], JPEG or PNG, the whole image, up to --max-pixels), `predict_images` takes uint8
[B, S, S, 3].
TF Serving wants a numbered version folder: --out MODEL_BASE/1 (new or empty).
Written into a hidden sibling, .1.tmp-XXXXXXXX, then renamed to --out: no partial version is seen.
A bad workdir, a blank or non-empty --out, a full disk or unwritable parent: one line, exit 2.
"""

from __future__ import annotations

import json

from fashionnet_jax import console  # first: quiet before TensorFlow loads
from fashionnet_jax.cli import Parser, UsageError, add_model_arguments, add_verbose_argument
from fashionnet_jax.errors import exit_on_user_error
from fashionnet_jax.export.publish import check_out, publish


def build_parser():
  parser = Parser(
      prog="python -m fashionnet_jax.export",
      description="Write a trained FashionNet as a TF SavedModel.",
  )
  add_model_arguments(parser)
  parser.add_argument(
      "--out",
      required=True,
      help="SavedModel version folder to write, e.g. MODEL_BASE/1 (new or empty)",
  )
  parser.add_argument(
      "--max-pixels",
      dest="max_pixels",
      type=int,
      default=50_000_000,
      help="largest image serving_default decodes, in pixels, read from its header "
      "(default 50M, the server's; larger: refused before decoding)",
  )
  add_verbose_argument(parser)
  return parser


@exit_on_user_error
def main(argv=None):
  args = build_parser().parse_args(argv)
  console.set_verbose(args.verbose)
  if args.max_pixels < 1:
    raise UsageError(f"--max-pixels {args.max_pixels}: must be >= 1")
  check_out(args.out)  # before the slow loads
  console.import_tensorflow()  # without its load-time banners
  from fashionnet_jax.export.savedmodel import export_savedmodel
  from fashionnet_jax.inference.predictor import Predictor

  predictor = Predictor(workdir=args.workdir, checkpoint=args.checkpoint)
  summary = publish(
      args.out, lambda folder: export_savedmodel(predictor, folder, max_pixels=args.max_pixels)
  )
  print(json.dumps({"out": args.out, **summary}), flush=True)


if __name__ == "__main__":
  main()
