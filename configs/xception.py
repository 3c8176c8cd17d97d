r"""FashionNet with an Xception backbone (entry and middle flow shared, exit flow per branch).

The source's first proposed improvement, "ResNet or Xception" in place of VGG-16
(issue 25; models/xception.py says where it is cut and why). CPU demo size (the demo's
optimiser, AdamW at 1e-3, as for the other backbones):

  python -m fashionnet_jax.main --config=configs/xception.py --workdir=/tmp/fashionnet_xception

Full size (configs/full_size.py): Keras' ImageNet weights, converted once,

  python -m fashionnet_jax.weights \
      --source=xception_weights_tf_dim_ordering_tf_kernels_notop.h5 --out=DIR
  python -m fashionnet_jax.main --config=configs/xception.py:gpu --workdir=RUN \
      --config.init_from=DIR/xception_imagenet.npz

The learning rate is the shared rule (configs/full_size.py): mmfashion's 1e-3 per 256
images, scaled with the batch (5e-4 at a GPU's 128, 1e-3 at a v3-8's 256), SGD with
momentum 0.9. The Keras file has no fc layers: fc6_global, fc6_pose and fc7_pose start
at random and, like every layer the weight file does not fill, learn at the new-layer
rate (10x), as on ResNet-50. Crops stay 224x224 (Keras trained Xception at 299) so the
backbones compare on the same input; the exit flow's map is then 7x7, as ResNet-50's.
"""

from configs import default


def get_config(arg=None):
  config = default.get_config(arg)
  config.model.backbone = "xception"
  return config
