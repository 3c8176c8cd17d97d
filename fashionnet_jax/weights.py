r"""Converts downloaded ImageNet weights into the .npz that `config.init_from` loads.

  python -m fashionnet_jax.weights --source vgg16-397923af.pth --out DIR [--backbone vgg16]

writes DIR/<backbone>_imagenet.npz. Sources: torchvision `vgg16-397923af.pth` /
`resnet50-*.pth` (the `[torch]` extra) and Keras
`vgg16_weights_tf_dim_ordering_tf_kernels*.h5` /
`xception_weights_tf_dim_ordering_tf_kernels_notop.h5`:

  python -m fashionnet_jax.weights \
      --source xception_weights_tf_dim_ordering_tf_kernels_notop.h5 --out DIR

The conversion itself is `models.pretrained`; nothing is downloaded.
"""

import argparse
import os
import sys

from fashionnet_jax.errors import exit_on_user_error
from fashionnet_jax.models.pretrained import WeightImportError, convert, guess_backbone, save_converted
from fashionnet_jax.schema import BACKBONES


@exit_on_user_error
def main(argv=None):
  parser = argparse.ArgumentParser(
      prog="python -m fashionnet_jax.weights",
      description="Convert downloaded ImageNet weights (torchvision .pth, Keras VGG16 or Xception "
      ".h5) into the .npz that config.init_from loads. Nothing is downloaded.",
  )
  parser.add_argument(
      "--source",
      required=True,
      help="vgg16-397923af.pth, resnet50-*.pth, vgg16_weights_tf_dim_ordering_tf_kernels*.h5 or "
      "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
  )
  parser.add_argument("--out", required=True, help="output folder")
  parser.add_argument(
      "--backbone",
      choices=BACKBONES,
      default=None,
      help="default: resnet50 or xception if the file name says resnet or xception, else vgg16",
  )
  args = parser.parse_args(argv)
  backbone = args.backbone or guess_backbone(args.source)
  params = convert(args.source, backbone)  # a WeightImportError is one line, exit 2
  try:
    out = save_converted(params, os.path.join(args.out, f"{backbone}_imagenet.npz"))
  except OSError as e:
    raise WeightImportError(f"--out {args.out}: cannot write there ({e.strerror or e})") from None
  count = sum(v.size for v in params.values())
  print(f"{backbone}: {len(params)} tensors, {count:,} values -> {out}")
  if backbone == "vgg16" and "fc6/kernel" not in params:
    print("note: no fc6/fc7 in this file (a notop checkpoint); only the convs will be imported")
  return 0


if __name__ == "__main__":
  sys.exit(main())
