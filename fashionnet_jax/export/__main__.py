r"""Export a trained FashionNet as a TF SavedModel (for TF Serving or TensorFlow).

  python -m fashionnet_jax.export --workdir /tmp/fashionnet_demo --out /tmp/fashionnet_savedmodel/1

Signatures: `serving_default` takes image files' bytes (`image_bytes`: string
[B], JPEG or PNG, the whole image), `predict_images` takes uint8 [B, S, S, 3].
TF Serving wants a numbered version folder: --out MODEL_BASE/1. A bad workdir,
or an --out that is a non-empty folder: one line, exit 2.
"""

from __future__ import annotations

import json
import os

from fashionnet_jax import console  # first: quiet before TensorFlow loads
from fashionnet_jax.cli import Parser, UsageError, add_model_arguments, add_verbose_argument
from fashionnet_jax.errors import exit_on_user_error


def build_parser():
  parser = Parser(
      prog="python -m fashionnet_jax.export",
      description="Write a trained FashionNet as a TF SavedModel.",
  )
  add_model_arguments(parser)
  parser.add_argument("--out", required=True, help="SavedModel folder to write (new or empty)")
  add_verbose_argument(parser)
  return parser


@exit_on_user_error
def main(argv=None):
  args = build_parser().parse_args(argv)
  console.set_verbose(args.verbose)
  if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
    raise UsageError(f"--out {args.out}: exists and is not an empty folder")
  parent = os.path.dirname(os.path.abspath(args.out))
  if os.path.exists(parent) and not os.access(parent, os.W_OK):
    raise UsageError(f"--out {args.out}: {parent} is not writable")
  console.import_tensorflow()  # without its load-time banners
  from fashionnet_jax.export.savedmodel import export_savedmodel
  from fashionnet_jax.inference.predictor import Predictor

  predictor = Predictor(workdir=args.workdir, checkpoint=args.checkpoint)
  try:
    summary = export_savedmodel(predictor, args.out)
  except PermissionError as e:
    raise UsageError(f"--out {args.out}: {e}") from None
  print(json.dumps({"out": args.out, **summary}), flush=True)


if __name__ == "__main__":
  main()
